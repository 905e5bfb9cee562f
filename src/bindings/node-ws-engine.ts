/**
 * The `ws` engine of the `--http` listener (edge-engine.ts): node:http for
 * requests, the `ws` package for WebSockets on REPLICATION_PATH. It runs
 * wherever Node does; engine-choice.ts picks it where no native
 * uWebSockets.js build loads. Set to behave as uws-engine.ts does: uWS's HTTP
 * limits, no compression, no limit of its own on what is buffered (the hub
 * bounds it), liveness left to the core, a port in use refused.
 *
 * A `ws` socket is adapted to the core's EdgeSocket: buffered amount is
 * ws's (socket queue + its own), cork is the TCP socket's, and drain is the
 * TCP socket's 'drain'.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerOptions as HttpServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type ServerOptions, type WebSocket } from 'ws';
import {
  bodyBytes,
  HTTP_IDLE_TIMEOUT_MS,
  HTTP_MAX_HEADER_BYTES,
  REPLICATION_PATH,
  type AcceptedUpgrade,
  type EdgeBridge,
  type EdgeCore,
  type EdgeEngine,
  type EdgeEngineFactory,
  type EdgeSocket,
  type EdgeTls,
  type HttpReply,
  type HttpRequestHead,
} from './edge-engine.js';
import { ReadTurns } from './read-turns.js';
import { tlsServerOptions } from './tls-files.js';

export const nodeWsEngine: EdgeEngineFactory = (core, tls) => new NodeWsEngine(core, tls);

class NodeWsEngine implements EdgeEngine {
  private readonly server: Server;
  /** The same server when it serves TLS, for its certificate; null: plaintext. */
  private readonly secure: HttpsServer | null;
  private readonly wss: WebSocketServer;
  /** The subprotocol the core chose, for ws's handleProtocols during handleUpgrade. */
  private readonly chosen = new WeakMap<IncomingMessage, string>();
  /** No socket takes more than its share of a turn (uWS 20.30 can pause no WebSocket: there, sockets are read as uWS reads them). */
  private readonly turns = new ReadTurns();

  constructor(
    private readonly core: EdgeCore,
    tls: EdgeTls | null,
  ) {
    const bridge = core.bridge;
    const httpOptions: HttpServerOptions = {
      maxHeaderSize: HTTP_MAX_HEADER_BYTES,
      keepAliveTimeout: HTTP_IDLE_TIMEOUT_MS,
      headersTimeout: HTTP_IDLE_TIMEOUT_MS,
      requestTimeout: HTTP_IDLE_TIMEOUT_MS,
      // Timeouts are checked this often (default 30 s, coarser than the limits).
      connectionsCheckingInterval: 1000,
      // A write past the bridge's high-water mark then returns false, so the socket's 'drain' follows.
      highWaterMark: bridge.sendHighWaterBytes,
    };
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      core.serve(requestHead(req), (r) => {
        if (res.destroyed) return;
        const headers: Record<string, string | number> = { ...r.headers };
        if (r.status !== 204) headers['content-length'] = bodyBytes(r.body);
        res.writeHead(r.status, headers);
        // Node sends no body for HEAD by itself.
        res.end(r.body);
      });
    };
    // node:https's Server has node:http's API (listen, closeAllConnections, 'upgrade'), on TLS.
    this.secure = tls === null ? null : createHttpsServer({ ...httpOptions, ...tlsServerOptions(tls.options) }, onRequest);
    this.server = this.secure === null ? createServer(httpOptions, onRequest) : (this.secure as unknown as Server);
    // closeTimeout is in ws 8.23, not in @types/ws 8.18.
    const wsOptions: ServerOptions & { closeTimeout: number } = {
      noServer: true,
      maxPayload: bridge.maxPayloadBytes,
      perMessageDeflate: false,
      // A peer that does not finish the closing handshake is as gone as one that answers no ping.
      closeTimeout: bridge.pingTimeoutMs,
      handleProtocols: (_offered, req) => this.chosen.get(req) || false,
    };
    this.wss = new WebSocketServer(wsOptions);
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head, bridge));
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const failed = (err: Error): void => reject(err);
      this.server.once('error', failed);
      this.server.listen({ host, port }, () => {
        this.server.off('error', failed);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  setTls(tls: EdgeTls): void {
    if (this.secure === null) throw new TypeError('this listener was started without TLS: a certificate can only replace another');
    this.secure.setSecureContext(tlsServerOptions(tls.options));
  }

  stopListening(): void {
    if (this.server.listening) this.server.close();
  }

  closeAll(): void {
    for (const ws of this.wss.clients) ws.terminate();
    this.server.closeAllConnections();
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, bridge: EdgeBridge): void {
    // A peer that resets the connection mid-handshake; ws's own handlers take over once open.
    socket.on('error', () => {});
    const { path } = splitUrl(req.url);
    // As uWS: only a WebSocket key on the bridge's path is an upgrade; anything else is a plain request.
    if (path !== REPLICATION_PATH || header(req, 'sec-websocket-key').length !== 24) {
      this.core.serve(requestHead(req), (r) => writeRaw(socket, r));
      return;
    }
    const answer = bridge.upgrade({
      origin: header(req, 'origin'),
      host: header(req, 'host'),
      protocols: header(req, 'sec-websocket-protocol'),
      // Several Cookie headers (HTTP/2 style) join with '; ', as one would read.
      cookie: Array.isArray(req.headers.cookie) ? req.headers.cookie.join('; ') : (req.headers.cookie ?? ''),
      // HOST:PORT as TCP connections are logged (uWS 20.30 gives no port).
      remoteAddress: `${req.socket.remoteAddress ?? ''}:${req.socket.remotePort ?? ''}`,
    });
    if ('refused' in answer) {
      writeRaw(socket, answer.refused);
      return;
    }
    this.chosen.set(req, answer.accepted.protocol);
    this.wss.handleUpgrade(req, socket, head, (ws) => this.open(ws, socket, answer.accepted, bridge));
  }

  private open(ws: WebSocket, socket: Duplex, accepted: AcceptedUpgrade, bridge: EdgeBridge): void {
    const events = bridge.link(new WsSocket(ws, socket), accepted);
    const read = events.pacesReading === true ? null : this.turns.meter(ws);
    // binaryType is nodebuffer: every message is one Buffer.
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      events.message(data, isBinary);
      read?.(data.length);
    });
    ws.on('pong', () => events.heard());
    socket.on('drain', () => events.drain());
    ws.on('close', () => events.socketClosed());
    // Bad UTF-8 or a message past maxPayload: ws closes the socket itself, and 'close' follows.
    ws.on('error', () => {});
    events.start();
  }
}

const TEXT_FRAME = { binary: false, compress: false };
const BINARY_FRAME = { binary: true, compress: false };

/** A `ws` WebSocket as the core's EdgeSocket. */
class WsSocket implements EdgeSocket {
  constructor(
    private readonly ws: WebSocket,
    private readonly socket: Duplex,
  ) {}

  pauseReading(): void {
    this.ws.pause();
  }

  resumeReading(): void {
    this.ws.resume();
  }

  send(message: Uint8Array | string, isBinary: boolean): void {
    this.ws.send(message, isBinary ? BINARY_FRAME : TEXT_FRAME);
  }

  cork(cb: () => void): void {
    this.socket.cork();
    try {
      cb();
    } finally {
      this.socket.uncork();
    }
  }

  getBufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  end(code: number): void {
    this.ws.close(code);
  }

  close(): void {
    this.ws.terminate();
  }

  ping(): void {
    this.ws.ping();
  }
}

function requestHead(req: IncomingMessage): HttpRequestHead {
  const { path, query } = splitUrl(req.url);
  return { method: req.method ?? 'GET', path, query, origin: header(req, 'origin'), host: header(req, 'host') };
}

function splitUrl(url: string | undefined): { path: string; query: string } {
  const raw = url ?? '/';
  const q = raw.indexOf('?');
  return q === -1 ? { path: raw, query: '' } : { path: raw.slice(0, q), query: raw.slice(q + 1) };
}

function header(req: IncomingMessage, name: string): string {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : (value ?? '');
}

/** An HTTP answer written on a socket node:http gave up (an upgrade request), then the close. */
function writeRaw(socket: Duplex, r: HttpReply): void {
  const lines = [`HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? ''}`];
  for (const [name, value] of Object.entries(r.headers)) lines.push(`${name}: ${value}`);
  lines.push(`content-length: ${bodyBytes(r.body)}`, 'connection: close', '', '');
  const head = Buffer.from(lines.join('\r\n'), 'latin1');
  socket.end(r.headOnly ? head : Buffer.concat([head, typeof r.body === 'string' ? Buffer.from(r.body) : r.body]), () => socket.destroy());
}
