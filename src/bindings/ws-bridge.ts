/**
 * uWebSockets.js edge of the hub: each WebSocket on `/replication` becomes a
 * ServerConnection, the same state machine, commands, errors and limits as
 * TCP (src/bindings/tcp-server.ts). This file only moves bytes:
 *
 *     text mode (default, or subprotocol `replication`): a text message holds
 *         one or more whole lines each way (small parts joined up to 16 KiB,
 *         larger ones a message each)
 *     binary mode (subprotocol `replication.msgpack`): MessagePack frames
 *         (src/bindings/ws-msgpack.ts); text messages are still read as lines
 *     status (subprotocol `replication.status`): the read-only status feed
 *
 * Liveness is judged here, not by the browser: the bridge sends WebSocket
 * pings itself (browsers throttle the timers that would send PING lines in
 * background tabs, but answer pings at once) and closes a socket that has
 * sent nothing, not even a pong, for the ping timeout. Backpressure follows
 * uWS's buffered amount: a write that leaves it above the high-water mark
 * returns false, the hub queues (with its congestion limits, then `ERROR
 * Failed to keep up`) and resumes on uWS's drain. uWS throws on a closed
 * socket, so every call checks the link's `closed` flag, set by the close
 * handler (which uWS also runs inside end() and close()).
 */
import uWS from 'uWebSockets.js';
import type { ReplicationHub } from '../core/hub.js';
import type { ServerConnection } from '../core/server-connection.js';
import type { Transport } from '../core/transport.js';
import { ProtocolError } from '../core/errors.js';
import { originAllowed } from './ws-access.js';
import { MsgpackCodec, type RdataTranscoder } from './ws-msgpack.js';
import type { StatusFeed } from './status-feed.js';
import { StatusLink } from './ws-status-link.js';

export const TEXT_PROTOCOL = 'replication';
export const MSGPACK_PROTOCOL = 'replication.msgpack';
export const STATUS_PROTOCOL = 'replication.status';
export const REPLICATION_PATH = '/replication';

/** Above this many bytes buffered in uWS, a write reports backpressure (like a socket's highWaterMark). */
export const DEFAULT_SEND_HIGH_WATER_BYTES = 256 * 1024;
/** Small parts are joined into messages of up to this many bytes; larger parts go as messages of their own. */
const JOIN_MAX_BYTES = 16 * 1024;

type Mode = 'text' | 'msgpack' | 'status';

export interface WsBridgeOptions {
  /** Origins allowed besides the listener's own; `*` allows any (default: none). */
  allowOrigins?: readonly string[];
  /** Large RDATA runs for binary subscribers are transcoded here (an EncoderPool); default inline. */
  transcoder?: RdataTranscoder | null;
  /** The status feed served to `replication.status` sockets; without it they are refused. */
  statusFeed?: StatusFeed | null;
  /** WebSocket ping period (default: the hub's pingIntervalMs). */
  pingIntervalMs?: number;
  /** Silence (no message, no pong) after which a socket is closed (default: the hub's pingTimeoutMs). */
  pingTimeoutMs?: number;
  sendHighWaterBytes?: number;
  clock?: () => number;
}

export interface SocketData {
  mode: Mode;
  kind: string;
  remoteAddress: string;
  link: WsLink | StatusLink | null;
}

export type Socket = uWS.WebSocket<SocketData>;

export class WsBridge {
  readonly maxMessageBytes: number;
  readonly pingIntervalMs: number;
  readonly pingTimeoutMs: number;
  readonly sendHighWaterBytes: number;
  readonly codec: MsgpackCodec;
  readonly clock: () => number;
  private readonly allowOrigins: readonly string[];
  private readonly statusFeed: StatusFeed | null;
  private readonly links = new Set<WsLink | StatusLink>();
  private readonly sweepTimer: NodeJS.Timeout;
  /** Sockets refused by the origin check (for tests and metrics). */
  refusedOrigins = 0;

  constructor(
    readonly hub: ReplicationHub,
    options: WsBridgeOptions = {},
  ) {
    // A message is at most one line of the hub's limit (with its LF); see behavior().
    this.maxMessageBytes = hub.options.maxLineBytes + 1;
    this.pingIntervalMs = options.pingIntervalMs ?? hub.options.pingIntervalMs;
    this.pingTimeoutMs = options.pingTimeoutMs ?? hub.options.pingTimeoutMs;
    this.sendHighWaterBytes = options.sendHighWaterBytes ?? DEFAULT_SEND_HIGH_WATER_BYTES;
    this.allowOrigins = options.allowOrigins ?? [];
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

  /** The route's settings and handlers, for `app.ws(REPLICATION_PATH, bridge.behavior())`. */
  behavior(): uWS.WebSocketBehavior<SocketData> {
    return {
      // Up to twice the limit reaches us, so an oversized message gets ERROR and a close;
      // beyond that uWS closes the socket itself (code 1006) without reading it.
      maxPayloadLength: Math.min(2 ** 31 - 1, this.maxMessageBytes * 2),
      // 0: no uWS limit, so no message is ever dropped; the hub bounds what is queued.
      maxBackpressure: 0,
      closeOnBackpressureLimit: 0,
      // Liveness is judged by sweep(), off one clock.
      idleTimeout: 0,
      sendPingsAutomatically: false,
      compression: uWS.DISABLED,
      upgrade: (res, req, context) => this.upgrade(res, req, context),
      open: (ws) => this.open(ws),
      message: (ws, message, isBinary) => ws.getUserData().link?.message(message, isBinary),
      drain: (ws) => ws.getUserData().link?.drain(),
      pong: (ws) => ws.getUserData().link?.heard(),
      close: (ws) => {
        const link = ws.getUserData().link;
        if (link !== null) {
          this.links.delete(link);
          link.socketClosed();
        }
      },
    };
  }

  /** Stops the ping sweep and closes every socket at once (after the hub said why). */
  close(): void {
    clearInterval(this.sweepTimer);
    for (const link of [...this.links]) link.destroy();
  }

  private upgrade(res: uWS.HttpResponse, req: uWS.HttpRequest, context: uWS.us_socket_context_t): void {
    // The request is only valid in this callback: read everything now.
    const key = req.getHeader('sec-websocket-key');
    const offered = req.getHeader('sec-websocket-protocol');
    const extensions = req.getHeader('sec-websocket-extensions');
    const origin = req.getHeader('origin');
    const host = req.getHeader('host');
    if (!originAllowed(origin, host, this.allowOrigins)) {
      this.refusedOrigins++;
      res.writeStatus('403 Forbidden').writeHeader('Content-Type', 'text/plain').end(`origin ${origin} is not allowed\n`);
      return;
    }
    const protocols = offered.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
    let mode: Mode = 'text';
    let chosen = '';
    if (protocols.includes(MSGPACK_PROTOCOL)) [mode, chosen] = ['msgpack', MSGPACK_PROTOCOL];
    else if (protocols.includes(STATUS_PROTOCOL)) [mode, chosen] = ['status', STATUS_PROTOCOL];
    else if (protocols.includes(TEXT_PROTOCOL)) chosen = TEXT_PROTOCOL;
    if (mode === 'status' && this.statusFeed === null) {
      res.writeStatus('404 Not Found').end('no status feed here\n');
      return;
    }
    const data: SocketData = {
      mode,
      kind: mode === 'msgpack' ? 'ws-msgpack' : 'ws',
      remoteAddress: Buffer.from(res.getRemoteAddressAsText()).toString('latin1'),
      link: null,
    };
    res.upgrade(data, key, chosen, extensions, context);
  }

  private open(ws: Socket): void {
    const data = ws.getUserData();
    if (data.mode === 'status') {
      const link = new StatusLink(this, ws);
      data.link = link;
      this.links.add(link);
      link.session = this.statusFeed!.accept(link);
      return;
    }
    const link = new WsLink(this, ws, data.mode);
    data.link = link;
    this.links.add(link);
    // accept() may close at once (too many connections): the link then tells the connection.
    link.attach(this.hub.accept(link, data.kind, data.remoteAddress));
  }

  /** Pings quiet sockets and closes those silent past the timeout. */
  private sweep(): void {
    const now = this.clock();
    for (const link of this.links) link.tick(now);
  }
}

/** One replication WebSocket: the Transport under its ServerConnection. */
class WsLink implements Transport {
  closed = false;
  private conn: ServerConnection | null = null;
  private lastHeardMs: number;
  private lastPingMs: number;
  /** Binary mode: flushes waiting for frames from the pool, sent in order; null when none. */
  private pending: (Buffer | Promise<Buffer>)[][] | null = null;
  private endWhenSent = false;

  constructor(
    private readonly bridge: WsBridge,
    private readonly ws: Socket,
    private readonly mode: 'text' | 'msgpack',
  ) {
    this.lastHeardMs = this.lastPingMs = bridge.clock();
  }

  attach(conn: ServerConnection): void {
    this.conn = conn;
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

  end(): void {
    if (this.closed) return;
    if (this.pending !== null) {
      this.endWhenSent = true;
      return;
    }
    this.ws.cork(() => this.ws.end(1000));
  }

  destroy(): void {
    if (!this.closed) this.ws.close();
  }

  // ------------------------------------------------------------ uWS events

  message(message: ArrayBuffer, isBinary: boolean): void {
    const conn = this.conn;
    if (this.closed || conn === null) return;
    this.lastHeardMs = this.bridge.clock();
    const size = message.byteLength;
    if (size > this.bridge.maxMessageBytes) {
      conn.fail(new ProtocolError('LINE_TOO_LONG', `message too long: over the limit of ${this.bridge.maxMessageBytes} bytes`));
      return;
    }
    let lines: Buffer;
    if (isBinary && this.mode === 'msgpack') {
      try {
        lines = this.bridge.codec.framesToLines(Buffer.from(message));
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        conn.fail(err);
        return;
      }
    } else {
      // A copy: uWS frees the ArrayBuffer when this callback returns, and a
      // writer's rows are stored as views of what it received. The LF makes
      // a message whole lines even when its last line has none.
      const view = new Uint8Array(message);
      const needsLf = size === 0 || view[size - 1] !== 0x0a;
      lines = Buffer.allocUnsafe(size + (needsLf ? 1 : 0));
      lines.set(view);
      if (needsLf) lines[size] = 0x0a;
    }
    conn.receive(lines);
  }

  drain(): void {
    if (this.closed || this.pending !== null || !this.belowHighWater()) return;
    this.conn?.drained();
  }

  /** A pong (or any sign of life): the peer is there, whatever its timers do. */
  heard(): void {
    if (this.closed) return;
    this.lastHeardMs = this.bridge.clock();
    // An empty chunk only refreshes the connection's receive time (messages are whole lines, so nothing is pending).
    this.conn?.receive(EMPTY);
  }

  socketClosed(): void {
    this.closed = true;
    this.pending = null;
    this.conn?.transportClosed();
  }

  tick(now: number): void {
    if (this.closed) return;
    if (now - this.lastHeardMs > this.bridge.pingTimeoutMs) {
      if (this.conn?.open) this.conn.close('ping_timeout', 'ping timeout');
      else this.destroy();
      return;
    }
    if (now - this.lastPingMs >= this.bridge.pingIntervalMs && now - this.lastHeardMs >= this.bridge.pingIntervalMs) {
      this.lastPingMs = now;
      this.ws.ping();
    }
  }

  // ------------------------------------------------------------ sending

  private belowHighWater(): boolean {
    return this.closed || this.ws.getBufferedAmount() < this.bridge.sendHighWaterBytes;
  }

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
    if (this.endWhenSent) this.ws.cork(() => this.ws.end(1000));
    else if (this.belowHighWater()) this.conn?.drained();
  }
}

const EMPTY = Buffer.alloc(0);
