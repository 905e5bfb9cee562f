/**
 * A `replication.status` WebSocket of the bridge (src/bindings/ws-bridge.ts):
 * the status feed's JSON snapshots out, `AUTH`/`PING` lines in. A snapshot
 * that finds the socket still busy with earlier ones is skipped; a newer one
 * follows. Pinged and timed out like replication sockets (ws-socket-link.ts).
 */
import type { EdgeSocket } from './edge-engine.js';
import type { StatusFeed, StatusSession, StatusSink } from './status-feed.js';
import { SocketLink, type LinkHost } from './ws-socket-link.js';

/** Longest message a status socket may send (AUTH lines are short). */
const MAX_STATUS_MESSAGE_BYTES = 4096;

export class StatusLink extends SocketLink implements StatusSink {
  session: StatusSession | null = null;

  constructor(
    host: LinkHost,
    ws: EdgeSocket,
    private readonly feed: StatusFeed,
    /** The token the upgrade's auth cookie carried. */
    private readonly cookieSecret: string | undefined,
  ) {
    super(host, ws);
  }

  /** Sends one snapshot unless the socket is still busy with earlier ones (a newer one follows anyway). */
  send(text: string): boolean {
    if (this.closed || !this.belowHighWater()) return false;
    this.ws.cork(() => this.ws.send(text, false));
    return true;
  }

  end(): void {
    this.endSocket();
  }

  message(data: Buffer, _isBinary: boolean): void {
    if (this.closed) return;
    this.heard();
    if (data.length > MAX_STATUS_MESSAGE_BYTES) {
      this.session?.refuse('message too long for the status feed');
      return;
    }
    this.session?.receive(data.toString('utf8'));
  }

  override socketClosed(): void {
    super.socketClosed();
    this.session?.closed();
  }

  protected accept(): void {
    this.session = this.feed.accept(this, this.cookieSecret);
  }
}
