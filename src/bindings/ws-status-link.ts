/**
 * A `replication.status` WebSocket of the bridge (src/bindings/ws-bridge.ts):
 * the status feed's JSON snapshots out, `AUTH`/`PING` lines in. A snapshot
 * that finds the socket still busy with earlier ones is skipped; a newer one
 * follows. Pinged and timed out like replication sockets.
 */
import type { StatusSession } from './status-feed.js';
import type { Socket, WsBridge } from './ws-bridge.js';

/** A `replication.status` socket: JSON snapshots out, AUTH in. */
export class StatusLink {
  closed = false;
  session: StatusSession | null = null;
  private lastHeardMs: number;
  private lastPingMs: number;

  constructor(
    private readonly bridge: WsBridge,
    private readonly ws: Socket,
  ) {
    this.lastHeardMs = this.lastPingMs = bridge.clock();
  }

  /** Sends one snapshot unless the socket is still busy with earlier ones (a newer one follows anyway). */
  send(text: string): boolean {
    if (this.closed || this.ws.getBufferedAmount() >= this.bridge.sendHighWaterBytes) return false;
    this.ws.cork(() => this.ws.send(text, false));
    return true;
  }

  end(): void {
    if (!this.closed) this.ws.cork(() => this.ws.end(1000));
  }

  destroy(): void {
    if (!this.closed) this.ws.close();
  }

  message(message: ArrayBuffer, _isBinary: boolean): void {
    if (this.closed) return;
    this.lastHeardMs = this.bridge.clock();
    if (message.byteLength > 4096) {
      this.session?.refuse('message too long for the status feed');
      return;
    }
    this.session?.receive(Buffer.from(message).toString('utf8'));
  }

  drain(): void {}

  heard(): void {
    this.lastHeardMs = this.bridge.clock();
  }

  socketClosed(): void {
    this.closed = true;
    this.session?.closed();
  }

  tick(now: number): void {
    if (this.closed) return;
    if (now - this.lastHeardMs > this.bridge.pingTimeoutMs) {
      this.destroy();
      return;
    }
    if (now - this.lastPingMs >= this.bridge.pingIntervalMs && now - this.lastHeardMs >= this.bridge.pingIntervalMs) {
      this.lastPingMs = now;
      this.ws.ping();
    }
  }
}
