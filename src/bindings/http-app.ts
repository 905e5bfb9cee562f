/**
 * The gateway's `--http` listener on uWebSockets.js:
 *
 *     GET /              the status page (dist/static/status.html)
 *     GET /client.js     the browser client, one ES module (dist/static/client.js)
 *     GET /healthz       `ok`, unless the gateway gives its own handler
 *     GET <path>         any other route the gateway gives (/metrics, /congestion)
 *     WS  /replication   the WebSocket bridge (src/bindings/ws-bridge.ts)
 *
 * It refuses to listen off loopback unless subscribers must AUTH with a
 * token (src/bindings/ws-access.ts).
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import uWS from 'uWebSockets.js';
import type { ReplicationHub } from '../core/hub.js';
import type { ConnectionInfo, DisconnectReason } from '../core/hub-types.js';
import { assertListenAllowed } from './ws-access.js';
import { REPLICATION_PATH, WsBridge, type WsBridgeOptions } from './ws-bridge.js';
import { StatusFeed, type StatusFeedOptions } from './status-feed.js';

/** What the listener needs of a ReplicationServer: its hub and its disconnect events. */
export interface HubSource {
  readonly hub: ReplicationHub;
  on(event: 'disconnect', listener: (conn: ConnectionInfo, reason: DisconnectReason, detail: string) => void): unknown;
  off(event: 'disconnect', listener: (conn: ConnectionInfo, reason: DisconnectReason, detail: string) => void): unknown;
}

export interface HttpResponseBody {
  status?: number;
  contentType?: string;
  /** More headers (lower-case names); `content-type` here wins over contentType. */
  headers?: Record<string, string>;
  body: string | Uint8Array;
}

export type HttpHandler = () => HttpResponseBody | Promise<HttpResponseBody>;

/** An answer from the gateway's own routes (src/gateway/http-routes.ts), for any other path. */
export interface FallbackAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export type FallbackHandler = (method: string, path: string) => Promise<FallbackAnswer>;

export interface HttpListenerOptions extends WsBridgeOptions {
  /** GET routes by exact path, e.g. `{ '/metrics': () => ..., '/healthz': () => ... }`. */
  routes?: Readonly<Record<string, HttpHandler>>;
  /** Every other request (the gateway's /metrics, /healthz, /congestion, its 404 and 405). */
  fallback?: FallbackHandler;
  /** How long close() lets sockets send what they were last given (`ERROR server shutting down`). */
  closeGraceMs?: number;
  /** Options of the status feed (or false: no status page and feed). */
  status?: StatusFeedOptions | false;
  /** Where status.html and client.js are (default: dist/static, written by src/browser/build.ts). */
  staticDir?: URL;
}

const DEFAULT_STATIC_DIR = new URL('../../static/', import.meta.url);

export class HttpListener {
  readonly bridge: WsBridge;
  readonly statusFeed: StatusFeed | null;
  private readonly app: uWS.TemplatedApp;
  private readonly staticDir: URL;
  private listenSocket: uWS.us_listen_socket | null = null;
  private bound: AddressInfo | null = null;
  private closing: Promise<void> | null = null;
  private readonly closeGraceMs: number;
  private readonly onDisconnect: (conn: ConnectionInfo, reason: DisconnectReason, detail: string) => void;

  constructor(
    private readonly source: HubSource,
    options: HttpListenerOptions = {},
  ) {
    const hub = source.hub;
    this.staticDir = options.staticDir ?? DEFAULT_STATIC_DIR;
    this.closeGraceMs = options.closeGraceMs ?? 250;
    this.statusFeed = options.status === false ? null : new StatusFeed(hub, options.status ?? {});
    this.bridge = new WsBridge(hub, { ...options, statusFeed: this.statusFeed });
    this.onDisconnect = (conn, reason, detail) => this.statusFeed?.recordDisconnect(conn, reason, detail);
    source.on('disconnect', this.onDisconnect);
    this.app = uWS.App();
    this.app.ws(REPLICATION_PATH, this.bridge.behavior());
    if (this.statusFeed !== null) {
      this.app.get('/', (res) => this.serveFile(res, 'status.html', 'text/html; charset=utf-8'));
      this.app.get('/index.html', (res) => this.serveFile(res, 'status.html', 'text/html; charset=utf-8'));
    }
    this.app.get('/client.js', (res) => this.serveFile(res, 'client.js', 'text/javascript; charset=utf-8'));
    const fallback = options.fallback;
    const routes: Record<string, HttpHandler> = { ...(fallback ? {} : { '/healthz': () => ({ body: 'ok\n' }) }), ...options.routes };
    for (const [path, handler] of Object.entries(routes)) this.app.get(path, (res) => this.serveHandler(res, handler));
    // Browsers ask for it on every page: an empty answer keeps their consoles clean.
    this.app.get('/favicon.ico', (res) => {
      res.writeStatus('204 No Content').end();
    });
    this.app.any('/*', (res, req) => {
      if (fallback === undefined) {
        res.writeStatus('404 Not Found').writeHeader('Content-Type', 'text/plain').end('not found\n');
        return;
      }
      const method = req.getCaseSensitiveMethod().toUpperCase();
      const path = req.getUrl();
      this.serveHandler(
        res,
        async () => {
          const a = await fallback(method, path);
          return { status: a.status, headers: a.headers, body: a.body };
        },
        method === 'HEAD',
      );
    });
  }

  /** Starts listening (port 0 picks a free port); refuses a non-loopback host without a subscriber token. */
  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const { credentials, requireAuth } = this.source.hub.options;
      assertListenAllowed(host, credentials, requireAuth);
      this.app.listen(host, port, (socket) => {
        if (socket === false) {
          reject(new Error(`cannot listen for HTTP on ${host}:${port}`));
          return;
        }
        this.listenSocket = socket;
        const bound = uWS.us_socket_local_port(socket as unknown as uWS.us_socket);
        this.bound = { address: host, family: host.includes(':') ? 'IPv6' : 'IPv4', port: bound };
        resolve(this.bound);
      });
    });
  }

  address(): AddressInfo | null {
    return this.bound;
  }

  /**
   * Stops listening, closes the status feed and every WebSocket the hub has
   * not closed, and after a short grace (for the `ERROR server shutting down`
   * that ReplicationServer.close() just wrote) every HTTP socket.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.listenSocket !== null) uWS.us_listen_socket_close(this.listenSocket);
      this.listenSocket = null;
      this.source.off('disconnect', this.onDisconnect);
      this.statusFeed?.close();
      this.bridge.close();
      await new Promise((resolve) => setTimeout(resolve, this.closeGraceMs));
      // Idle keep-alive HTTP connections too (App.close is in this uWS build, not in its typings).
      (this.app as unknown as { close?: () => void }).close?.();
    })();
    return this.closing;
  }

  private serveFile(res: uWS.HttpResponse, name: string, contentType: string): void {
    let body: Buffer;
    try {
      // Read per request: small files, and a rebuilt client is served without a restart.
      body = readFileSync(new URL(name, this.staticDir));
    } catch {
      res
        .writeStatus('404 Not Found')
        .writeHeader('Content-Type', 'text/plain')
        .end(`${name} is not built: run \`npm run build\`\n`);
      return;
    }
    res.writeHeader('Content-Type', contentType).writeHeader('Cache-Control', 'no-cache').end(body);
  }

  private serveHandler(res: uWS.HttpResponse, handler: HttpHandler, headOnly = false): void {
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const reply = (r: HttpResponseBody): void => {
      if (aborted) return;
      res.cork(() => {
        res.writeStatus(statusLine(r.status ?? 200));
        const headers: Record<string, string> = { 'content-type': r.contentType ?? 'text/plain; charset=utf-8', ...r.headers };
        for (const [name, value] of Object.entries(headers)) res.writeHeader(name, value);
        if (headOnly) res.endWithoutBody(typeof r.body === 'string' ? Buffer.byteLength(r.body) : r.body.length);
        else res.end(r.body);
      });
    };
    const fail = (err: unknown): void => {
      reply({ status: 500, body: `${err instanceof Error ? err.message : String(err)}\n` });
    };
    try {
      const result = handler();
      if (result instanceof Promise) result.then(reply, fail);
      else reply(result);
    } catch (err) {
      fail(err);
    }
  }
}

function statusLine(status: number): string {
  const text: Record<number, string> = {
    200: 'OK',
    204: 'No Content',
    404: 'Not Found',
    405: 'Method Not Allowed',
    500: 'Internal Server Error',
    503: 'Service Unavailable',
  };
  return `${status} ${text[status] ?? 'Status'}`;
}
