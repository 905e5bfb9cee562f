/**
 * The WebSocket side of the `--http` listener: each WebSocket on
 * `/replication` becomes a ServerConnection, the same state machine,
 * commands, errors and limits as TCP (src/bindings/tcp-server.ts). This file
 * decides, for every engine (edge-engine.ts), who may connect and how bytes
 * are framed and paced:
 *
 *     text mode (default, or subprotocol `replication`): a text message holds
 *         one or more whole lines each way (small parts joined up to 16 KiB,
 *         larger ones a message each)
 *     binary mode (subprotocol `replication.msgpack`): the MessagePack dialect's
 *         frames (src/core/dialects/msgpack-frames.ts, cached per chunk in
 *         ws-msgpack.ts); text messages are still read as lines
 *     status (subprotocol `replication.status`): the read-only status feed
 *
 * Liveness is judged here, not by the browser (ws-socket-link.ts).
 * Backpressure follows the engine's buffered amount: a write that leaves it
 * at or above the high-water mark returns false, the hub queues (with its
 * congestion limits, then `ERROR Failed to keep up`) and resumes on the
 * engine's drain.
 */
import type { ReplicationHub } from '../core/hub.js';
import type { ServerConnection } from '../core/server-connection.js';
import type { Transport } from '../core/transport.js';
import { ProtocolError } from '../core/errors.js';
import { MSGPACK_TRANSPORT } from '../core/followed-streams.js';
import type { AcceptedUpgrade, EdgeBridge, EdgeSocket, HttpReply, SocketEvents, SocketMode, UpgradeAnswer, UpgradeRequest } from './edge-engine.js';
import { cookieValue, originAllowed } from './ws-access.js';
import { MsgpackCodec, type RdataTranscoder } from './ws-msgpack.js';
import type { StatusFeed } from './status-feed.js';
import { StatusLink } from './ws-status-link.js';
import { SocketLink, type LinkHost } from './ws-socket-link.js';
import { READ_BYTES_PER_TURN, ReadTurns } from './read-turns.js';

export const TEXT_PROTOCOL = 'replication';
export const MSGPACK_PROTOCOL = 'replication.msgpack';
export const STATUS_PROTOCOL = 'replication.status';

/** At or above this many bytes buffered in the engine, a write reports backpressure (like a socket's highWaterMark). */
export const DEFAULT_SEND_HIGH_WATER_BYTES = 256 * 1024;
/** Small parts are joined into messages of up to this many bytes; larger parts go as messages of their own. */
const JOIN_MAX_BYTES = 16 * 1024;
/** Lines a socket that cannot be paused (uWS) may have received and not yet had read, before it is cut. */
export const DEFAULT_MAX_UNREAD_BYTES = 16 * 1024 * 1024;

export interface WsBridgeOptions {
  /** Origins allowed besides the listener's own; `*` allows any (default: none). */
  allowOrigins?: readonly string[];
  /** The cookie whose value a replication socket authenticates with, as by AUTH (default: none read). */
  authCookie?: string | null;
  /** Large RDATA runs for binary subscribers are transcoded here (an EncoderPool); default inline. */
  transcoder?: RdataTranscoder | null;
  /** The status feed served to `replication.status` sockets; without it they are refused. */
  statusFeed?: StatusFeed | null;
  /** WebSocket ping period (default: the hub's pingIntervalMs). */
  pingIntervalMs?: number;
  /** Silence (no message, no pong) after which a socket is closed (default: the hub's pingTimeoutMs). */
  pingTimeoutMs?: number;
  sendHighWaterBytes?: number;
  /** Bytes of lines received and not yet read past which a socket that cannot be paused is cut (default 16 MiB). */
  maxUnreadBytes?: number;
  clock?: () => number;
}

export class WsBridge implements EdgeBridge, LinkHost {
  readonly maxMessageBytes: number;
  readonly maxPayloadBytes: number;
  readonly pingIntervalMs: number;
  readonly pingTimeoutMs: number;
  readonly sendHighWaterBytes: number;
  readonly maxUnreadBytes: number;
  /** What each socket's lines may take of one event-loop turn (read-turns.ts). */
  readonly turns = new ReadTurns();
  readonly codec: MsgpackCodec;
  readonly clock: () => number;
  private readonly allowOrigins: readonly string[];
  private readonly authCookie: string | null;
  private readonly statusFeed: StatusFeed | null;
  private readonly links = new Set<SocketLink>();
  private readonly sweepTimer: NodeJS.Timeout;
  /** Sockets refused by the origin check (for tests and metrics). */
  refusedOrigins = 0;

  constructor(
    readonly hub: ReplicationHub,
    options: WsBridgeOptions = {},
  ) {
    // A message is at most one line of the hub's limit (with its LF).
    this.maxMessageBytes = hub.options.maxLineBytes + 1;
    // Up to twice that is read, so an oversized message gets ERROR and a close;
    // beyond it the engine closes the socket itself without reading it.
    this.maxPayloadBytes = Math.min(2 ** 31 - 1, this.maxMessageBytes * 2);
    this.pingIntervalMs = options.pingIntervalMs ?? hub.options.pingIntervalMs;
    this.pingTimeoutMs = options.pingTimeoutMs ?? hub.options.pingTimeoutMs;
    this.sendHighWaterBytes = options.sendHighWaterBytes ?? DEFAULT_SEND_HIGH_WATER_BYTES;
    this.maxUnreadBytes = options.maxUnreadBytes ?? DEFAULT_MAX_UNREAD_BYTES;
    this.allowOrigins = options.allowOrigins ?? [];
    this.authCookie = options.authCookie ?? null;
    this.codec = new MsgpackCodec(options.transcoder ?? null);
    this.statusFeed = options.statusFeed ?? null;
    this.clock = options.clock ?? Date.now;
    // One clock for every socket (DESIGN.md principle 6).
    this.sweepTimer = setInterval(() => this.sweep(), Math.max(10, Math.min(1000, Math.floor(this.pingIntervalMs / 2))));
    this.sweepTimer.unref();
  }

  /** Open WebSockets (replication and status). */
  get socketCount(): number {
    return this.links.size;
  }

  /** Who may open a socket, in which mode: the Origin allow-list, then the offered subprotocols. */
  upgrade(request: UpgradeRequest): UpgradeAnswer {
    const { origin, host } = request;
    if (!originAllowed(origin, host, this.allowOrigins)) {
      this.refusedOrigins++;
      return { refused: plainReply(403, `origin ${origin} is not allowed\n`) };
    }
    const protocols = request.protocols.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
    let mode: SocketMode = 'text';
    let protocol = '';
    if (protocols.includes(MSGPACK_PROTOCOL)) [mode, protocol] = ['msgpack', MSGPACK_PROTOCOL];
    else if (protocols.includes(STATUS_PROTOCOL)) [mode, protocol] = ['status', STATUS_PROTOCOL];
    else if (protocols.includes(TEXT_PROTOCOL)) protocol = TEXT_PROTOCOL;
    if (mode === 'status' && this.statusFeed === null) return { refused: plainReply(404, 'no status feed here\n') };
    const cookieSecret = this.authCookie === null ? null : cookieValue(request.cookie, this.authCookie);
    return {
      accepted: { mode, protocol, remoteAddress: request.remoteAddress, fromPage: origin !== '', ...(cookieSecret !== null ? { cookieSecret } : {}) },
    };
  }

  link(socket: EdgeSocket, accepted: AcceptedUpgrade): SocketEvents {
    if (accepted.mode === 'status') return new StatusLink(this, socket, this.statusFeed!, accepted.cookieSecret);
    return new WsLink(this, socket, accepted);
  }

  track(link: SocketLink): void {
    this.links.add(link);
  }

  forget(link: SocketLink): void {
    this.links.delete(link);
  }

  /** Stops the ping sweep and closes every socket at once (after the hub said why). */
  close(): void {
    clearInterval(this.sweepTimer);
    for (const link of [...this.links]) link.shutdown();
  }

  /** Pings quiet sockets and closes those silent past the timeout. */
  private sweep(): void {
    const now = this.clock();
    for (const link of this.links) link.tick(now);
  }
}

function plainReply(status: number, body: string): HttpReply {
  return { status, headers: { 'content-type': 'text/plain' }, body, headOnly: false };
}

/**
 * One replication WebSocket: the Transport under its ServerConnection.
 *
 * Its lines are read as a TCP socket's are (read-turns.ts): about 64 KiB a
 * turn, a message over that in pieces of whole lines over several turns,
 * the socket paused meanwhile where the engine can. A writer's lines are
 * read at once, as on TCP. A socket the engine cannot pause that gets
 * maxUnreadBytes ahead of its reading is cut.
 */
class WsLink extends SocketLink implements Transport {
  readonly pacesReading = true;
  private conn: ServerConnection | null = null;
  private readonly mode: 'text' | 'msgpack';
  /** Binary mode: flushes waiting for frames from the pool, sent in order; null when none. */
  private pending: (Buffer | Promise<Buffer>)[][] | null = null;
  private endWhenSent = false;
  /** Lines received and not yet read, oldest first: the rest of a message past this turn's share, and what came after it. */
  private unread: Buffer[] = [];
  private unreadBytes = 0;
  /** This turn's share is read: the rest waits for the next turn. */
  private turnDone = false;
  /** This link holds the engine's reading paused (pauseReading), until what is unread is read. */
  private holdsReading = false;
  /** Counts what is read of this turn's share (the meter pauses, then resumes next turn). */
  private readonly metered: (bytes: number) => void;

  constructor(
    private readonly bridge: WsBridge,
    ws: EdgeSocket,
    private readonly accepted: AcceptedUpgrade,
  ) {
    super(bridge, ws);
    this.mode = accepted.mode === 'msgpack' ? 'msgpack' : 'text';
    this.metered = bridge.turns.meter({
      pause: () => {
        this.turnDone = true;
      },
      resume: () => {
        this.turnDone = false;
        this.readUnread();
      },
    });
  }

  protected accept(): void {
    const { fromPage, cookieSecret } = this.accepted;
    const conn = this.bridge.hub.accept(this, this.mode === 'msgpack' ? MSGPACK_TRANSPORT : 'ws', this.accepted.remoteAddress, {
      fromPage,
      ...(cookieSecret !== undefined ? { secret: cookieSecret } : {}),
    });
    this.conn = conn;
    // accept() may close at once (too many connections), before conn was known here.
    if (this.closed) conn.transportClosed();
  }

  // ------------------------------------------------------------ Transport

  write(chunks: Buffer[]): boolean {
    if (this.closed) return true;
    if (this.mode === 'text') {
      this.send(chunks, false);
      return this.belowHighWater();
    }
    const frames = chunks.map((c) => this.bridge.codec.frames(c));
    if (this.pending === null && frames.every((f): f is Buffer => Buffer.isBuffer(f))) {
      this.send(frames, true);
      return this.belowHighWater();
    }
    // Frames still on the pool: later writes wait behind them, in order.
    (this.pending ??= []).push(frames);
    if (this.pending.length === 1) void this.sendPending();
    return false;
  }

  unsentBytes(): number {
    return this.closed ? 0 : this.ws.getBufferedAmount();
  }

  end(): void {
    if (this.closed) return;
    if (this.pending !== null) {
      this.endWhenSent = true;
      return;
    }
    this.endSocket();
  }

  // ------------------------------------------------------------ socket events

  message(data: Buffer, isBinary: boolean): void {
    const conn = this.conn;
    if (this.closed || conn === null || !conn.open) return;
    super.heard();
    const size = data.length;
    if (size > this.bridge.maxMessageBytes) {
      this.refuseMessage(conn, new ProtocolError('LINE_TOO_LONG', `message too long: over the limit of ${this.bridge.maxMessageBytes} bytes`));
      return;
    }
    let lines: Buffer;
    if (isBinary && this.mode === 'msgpack') {
      try {
        lines = this.bridge.codec.dialect.toLines(data);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        this.refuseMessage(conn, err);
        return;
      }
    } else {
      // A copy: the engine's buffer is valid only in this call (uWS frees it),
      // and a writer's rows are stored as views of what it received. The LF
      // makes a message whole lines even when its last line has none.
      const needsLf = size === 0 || data[size - 1] !== 0x0a;
      lines = Buffer.allocUnsafe(size + (needsLf ? 1 : 0));
      lines.set(data);
      if (needsLf) lines[size] = 0x0a;
    }
    if (this.unreadBytes === 0 && conn.role === 'writer') {
      conn.receive(lines);
      return;
    }
    this.unread.push(lines);
    this.unreadBytes += lines.length;
    if (this.unreadBytes > this.bridge.maxUnreadBytes) {
      this.dropUnread();
      conn.fail(new ProtocolError('SENDING_TOO_FAST', `sending faster than the gateway reads: over ${this.bridge.maxUnreadBytes} bytes received and not yet read`));
      return;
    }
    this.readUnread();
  }

  /** Hands unread lines to the connection, in pieces of whole lines, until this turn's share is read. */
  private readUnread(): void {
    const conn = this.conn;
    while (conn !== null && conn.open && !this.turnDone && this.unread.length > 0) {
      const head = this.unread[0]!;
      const writer = conn.role === 'writer';
      const end = writer ? head.length : pieceEnd(head);
      if (end === head.length) this.unread.shift();
      else this.unread[0] = head.subarray(end);
      this.unreadBytes -= end;
      conn.receive(end === head.length ? head : head.subarray(0, end));
      if (!writer) this.metered(end);
    }
    if (conn === null || !conn.open) this.dropUnread();
    const hold = this.unread.length > 0;
    if (hold !== this.holdsReading) {
      this.holdsReading = hold;
      if (hold) this.ws.pauseReading?.();
      else this.ws.resumeReading?.();
    }
  }

  private dropUnread(): void {
    this.unread = [];
    this.unreadBytes = 0;
  }

  /** Everything unread, at once: the socket is gone, or a bad message came after it. */
  private readAllUnread(): void {
    const unread = this.unread;
    this.dropUnread();
    for (const lines of unread) this.conn?.receive(lines);
  }

  /** A bad message: what came before it is read first, as the lines before a bad line are; then the ERROR and the close. */
  private refuseMessage(conn: ServerConnection, err: ProtocolError): void {
    this.readAllUnread();
    if (conn.open) conn.fail(err);
  }

  override drain(): void {
    if (this.closed || this.pending !== null || !this.belowHighWater()) return;
    this.conn?.drained();
  }

  override heard(): void {
    if (this.closed) return;
    super.heard();
    // An empty chunk only refreshes the connection's receive time (messages are whole lines, so nothing is pending).
    this.conn?.receive(EMPTY);
  }

  override socketClosed(): void {
    super.socketClosed();
    this.pending = null;
    // What the peer sent before it closed is read, as a TCP socket's last bytes are (nothing is sent back now).
    this.readAllUnread();
    this.conn?.transportClosed();
  }

  protected override timedOut(): void {
    if (this.conn?.open) this.conn.close('ping_timeout', 'ping timeout');
    else this.destroy();
  }

  // ------------------------------------------------------------ sending

  /**
   * Whole lines (or frames) as messages: a run of small parts is joined into
   * one message of up to JOIN_MAX_BYTES, a larger part (each is whole lines)
   * goes as a message of its own, uncopied, so readers never reassemble
   * fragments.
   */
  private send(parts: Buffer[], isBinary: boolean): void {
    if (parts.length === 0) return;
    this.ws.cork(() => {
      let i = 0;
      while (i < parts.length) {
        const first = parts[i]!;
        if (first.length >= JOIN_MAX_BYTES) {
          this.ws.send(first, isBinary);
          i++;
          continue;
        }
        let end = i + 1;
        let total = first.length;
        while (end < parts.length && total + parts[end]!.length <= JOIN_MAX_BYTES) total += parts[end++]!.length;
        this.ws.send(end === i + 1 ? first : Buffer.concat(parts.slice(i, end), total), isBinary);
        i = end;
      }
    });
  }

  /** Binary mode: sends waiting flushes in order as their frames arrive, then resumes the hub. */
  private async sendPending(): Promise<void> {
    try {
      while (this.pending !== null && this.pending.length > 0) {
        const frames = await Promise.all(this.pending[0]!);
        if (this.closed || this.pending === null) return;
        this.send(frames, true);
        this.pending.shift();
      }
    } catch {
      // Frames could not be made even inline: the client reconnects and resumes.
      this.destroy();
      return;
    }
    this.pending = null;
    if (this.closed) return;
    if (this.endWhenSent) this.endSocket();
    else if (this.belowHighWater()) this.conn?.drained();
  }
}

const EMPTY = Buffer.alloc(0);

/** Where the first piece of `lines` (whole lines, ending in LF) ends: one turn's share, or one line longer than that. */
function pieceEnd(lines: Buffer): number {
  if (lines.length <= READ_BYTES_PER_TURN) return lines.length;
  const lf = lines.lastIndexOf(0x0a, READ_BYTES_PER_TURN - 1);
  return (lf === -1 ? lines.indexOf(0x0a, READ_BYTES_PER_TURN) : lf) + 1;
}
