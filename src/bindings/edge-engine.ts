/**
 * The seam of the `--http` listener: everything it decides (routes, access,
 * limits, framing, congestion, liveness: http-app.ts, ws-bridge.ts) is made
 * once on this side; an engine (uws-engine.ts, node-ws-engine.ts) only moves
 * requests, upgrades and messages between its sockets and that one core.
 *
 *     engine -> core   serve(request, reply)             any HTTP request
 *                      bridge.upgrade(request)           WS /replication: refused (an HTTP reply) or accepted
 *                      bridge.link(socket, accepted)     the open socket's events: start, message, drain, heard, socketClosed
 *     core -> engine   EdgeSocket                        send, cork, getBufferedAmount, end, close, ping
 *
 * EdgeSocket is uWebSockets.js's own socket shape, so uWS sockets pass as
 * they are and its fast path has no wrapper; `ws` is adapted to it.
 */
import type { ServerTlsOptions } from './tls-files.js';

export const REPLICATION_PATH = '/replication';

export const WS_ENGINE_CHOICES = ['auto', 'uws', 'ws'] as const;
export type WsEngineChoice = (typeof WS_ENGINE_CHOICES)[number];
export type WsEngineName = Exclude<WsEngineChoice, 'auto'>;

/**
 * A request's header block at most (its request line and headers), as
 * node:http's default: browsers with cookies stay well inside it. Past it:
 * 431. node:http counts it itself; the uws engine sums what uWS parsed.
 * (uWebSockets.js 20.30 also drops, silently, a header block over 4 KiB that
 * arrives in more than one read: docs/websocket.md.)
 */
export const HTTP_MAX_HEADER_BYTES = 16 * 1024;
/** uWebSockets.js 20.30's: an idle keep-alive connection, or one that sends its headers too slowly, is closed after 10 s; node:http is set the same. */
export const HTTP_IDLE_TIMEOUT_MS = 10_000;

/** The answer to a request whose header block is over HTTP_MAX_HEADER_BYTES (node:http sends its own, empty). */
export const HEADERS_TOO_LARGE: HttpReply = {
  status: 431,
  headers: { 'content-type': 'text/plain; charset=utf-8' },
  body: `request headers over the limit of ${HTTP_MAX_HEADER_BYTES} bytes\n`,
  headOnly: false,
};

/** The part of an open WebSocket the core uses (uWS's names). */
export interface EdgeSocket {
  /** One whole message. */
  send(message: Uint8Array | string, isBinary: boolean): unknown;
  /** Runs `cb`; what it sends goes out in as few writes as the engine can. */
  cork(cb: () => void): unknown;
  /** Bytes sent that the kernel has not taken yet. */
  getBufferedAmount(): number;
  /** The closing handshake, after what was sent. */
  end(code: number): void;
  /** Closes at once, dropping anything unsent. */
  close(): void;
  ping(): unknown;
  /** Stops reading the socket until resumeReading() (the peer meets TCP backpressure); absent where the engine cannot (uWS 20.30). */
  pauseReading?(): void;
  resumeReading?(): void;
}

/** What an engine tells the core about one open WebSocket. */
export interface SocketEvents {
  /** Once the engine routes the socket's events here: the core accepts the connection (and may close it at once). */
  start(): void;
  /** A whole message; `data` is valid only during the call. */
  message(data: Buffer, isBinary: boolean): void;
  /** The send buffer went down. */
  drain(): void;
  /** A pong. */
  heard(): void;
  /** The socket is gone, whoever closed it; nothing is sent to it after this. */
  socketClosed(): void;
  /** True where the core reads the socket's messages at its own pace (pausing it by pauseReading): the engine then does not meter them. */
  readonly pacesReading?: boolean;
}

/** An upgrade request's headers ('' when absent) and peer. */
export interface UpgradeRequest {
  origin: string;
  host: string;
  /** Sec-WebSocket-Protocol as sent: the offered subprotocols, comma-separated. */
  protocols: string;
  /** The Cookie header as sent (where a browser's credential may be: --auth-cookie). */
  cookie: string;
  remoteAddress: string;
}

export type SocketMode = 'text' | 'msgpack' | 'status';

/** An upgrade the core takes: the engine completes it with `protocol` ('' for none) and hands this back to link(). */
export interface AcceptedUpgrade {
  mode: SocketMode;
  protocol: string;
  remoteAddress: string;
  /** The upgrade carried an Origin: a browser page opened it. */
  fromPage: boolean;
  /** The secret in the configured auth cookie: the connection starts authenticated with it. */
  cookieSecret?: string;
}

export type UpgradeAnswer = { refused: HttpReply } | { accepted: AcceptedUpgrade };

/** The WebSocket side of the core (WsBridge). */
export interface EdgeBridge {
  /** Messages past this are not read: the engine closes the socket itself. */
  readonly maxPayloadBytes: number;
  /** The send buffer's high-water mark (the engine's drain must come once the buffer is back under it). */
  readonly sendHighWaterBytes: number;
  /** Liveness bound: also how long a closing handshake may take. */
  readonly pingTimeoutMs: number;
  upgrade(request: UpgradeRequest): UpgradeAnswer;
  link(socket: EdgeSocket, accepted: AcceptedUpgrade): SocketEvents;
}

export interface HttpReply {
  status: number;
  /** Lower-case names; Content-Length is the engine's. */
  headers: Readonly<Record<string, string>>;
  body: string | Uint8Array;
  /** HEAD: the headers, Content-Length included, without the body. */
  headOnly: boolean;
}

/** What the core reads of an HTTP request: its line and the headers that decide the answer ('' when absent). */
export interface HttpRequestHead {
  method: string;
  path: string;
  /** The text after `?` ('' for none), undecoded. */
  query: string;
  origin: string;
  host: string;
}

export interface EdgeCore {
  readonly bridge: EdgeBridge;
  /** Answers an HTTP request (anything but an upgrade on REPLICATION_PATH); `reply` is called once, maybe later. */
  serve(request: HttpRequestHead, reply: (r: HttpReply) => void): void;
}

export interface EdgeEngine {
  /** Resolves with the bound port (port 0: one the OS picked); rejects with why when the address cannot be had. */
  listen(host: string, port: number): Promise<number>;
  /** With TLS: serve connections accepted from now on with this certificate (already checked); open ones keep theirs. */
  setTls(tls: EdgeTls): void;
  /** Stops accepting; open sockets stay. */
  stopListening(): void;
  /** Closes every socket still open, HTTP and WebSocket. */
  closeAll(): void;
}

/**
 * A TLS listener's certificate, both as the files it came from (uWS reads
 * them itself) and as their checked contents (node:https takes these).
 */
export interface EdgeTls {
  files: { cert: string; key: string; ca: string | null };
  options: ServerTlsOptions;
}

/** `tls`: serve HTTPS and wss:// (with a CA in it, client certificates are required); null: plaintext. */
export type EdgeEngineFactory = (core: EdgeCore, tls: EdgeTls | null) => EdgeEngine;

export function bodyBytes(body: string | Uint8Array): number {
  return typeof body === 'string' ? Buffer.byteLength(body) : body.length;
}
