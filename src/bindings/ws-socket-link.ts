/**
 * What every WebSocket of the bridge shares, replication and status alike:
 * liveness judged by the server (a ping when the socket has been quiet for
 * the ping interval, a close when nothing at all, not even a pong, came for
 * the ping timeout), and the close rules.
 *
 * Engines differ in when a close completes: uWS runs its close handler
 * inside end() and close(), `ws` once the handshake is done. So `closed` is
 * set only by socketClosed() (nothing is sent after it), and `ending` marks
 * a socket that end() is still flushing.
 */
import { keepAliveAction, type KeepAliveTimings } from '../core/keep-alive.js';
import type { EdgeSocket, SocketEvents } from './edge-engine.js';

/** What a link needs of the bridge. */
export interface LinkHost extends KeepAliveTimings {
  readonly clock: () => number;
  readonly sendHighWaterBytes: number;
  track(link: SocketLink): void;
  forget(link: SocketLink): void;
}

export abstract class SocketLink implements SocketEvents {
  closed = false;
  /** end() was called: the engine sends what it holds, then closes by itself. */
  ending = false;
  private lastHeardMs: number;
  private lastPingMs: number;

  constructor(
    protected readonly host: LinkHost,
    protected readonly ws: EdgeSocket,
  ) {
    this.lastHeardMs = this.lastPingMs = host.clock();
  }

  start(): void {
    // Tracked first: accepting may close the socket at once (uWS: inside this call).
    this.host.track(this);
    this.accept();
  }

  abstract message(data: Buffer, isBinary: boolean): void;

  drain(): void {}

  /** A pong (or any sign of life): the peer is there, whatever its timers do. */
  heard(): void {
    this.lastHeardMs = this.host.clock();
  }

  socketClosed(): void {
    this.closed = true;
    this.host.forget(this);
  }

  /** Closes at once, dropping anything unsent. */
  destroy(): void {
    if (!this.closed) this.ws.close();
  }

  /** The gateway stops: cut the socket, unless end() is still sending its last words (the engine's closeAll ends those). */
  shutdown(): void {
    if (!this.ending) this.destroy();
  }

  /** The bridge's sweep: pings a quiet socket, times out a silent one. */
  tick(now: number): void {
    if (this.closed || this.ending) return;
    // The engine answers every ping with a pong, so silence always counts; and a
    // ping only probes a quiet socket: anything heard answers as well as a pong.
    const due = keepAliveAction(
      now,
      { lastHeardMs: this.lastHeardMs, lastSentMs: Math.max(this.lastPingMs, this.lastHeardMs), timeoutArmed: true },
      this.host,
    );
    if (due === 'time-out') {
      this.timedOut();
    } else if (due === 'ping') {
      this.lastPingMs = now;
      this.ws.ping();
    }
  }

  /** Accepts the connection behind the socket (the hub's, or the status feed's). */
  protected abstract accept(): void;

  protected timedOut(): void {
    this.destroy();
  }

  /** The closing handshake after what was sent. */
  protected endSocket(): void {
    if (this.closed || this.ending) return;
    this.ending = true;
    this.ws.cork(() => this.ws.end(1000));
  }

  protected belowHighWater(): boolean {
    return this.closed || this.ws.getBufferedAmount() < this.host.sendHighWaterBytes;
  }
}
