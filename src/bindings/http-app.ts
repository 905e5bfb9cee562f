/**
 * The gateway's `--http` listener, the same on every engine (edge-engine.ts):
 *
 *     GET /              the status page (dist/static/status.html)
 *     GET /client.js     the browser client, one ES module (dist/static/client.js)
 *     GET /healthz       `ok`, unless the gateway gives its own handler
 *     GET <path>         any other route the gateway gives (/metrics, /congestion, /connections)
 *     WS  /replication   the WebSocket bridge (src/bindings/ws-bridge.ts)
 *
 * Other methods (HEAD too) and paths go to the gateway's fallback. With
 * `tls` it serves HTTPS and wss:// on either engine. Off loopback it refuses
 * to listen without TLS and a subscriber token unless told otherwise
 * (src/core/open-door.ts).
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { ConnectionInfo, DisconnectReason } from '../core/hub-types.js';
import { hubOf, type ReplicationServer } from '../server.js';
import { openDoorRefusal } from '../core/open-door.js';
import type { EdgeEngine, EdgeTls, HttpReply, HttpRequestHead } from './edge-engine.js';
import { chooseEngine, type ChosenEngine } from './engine-choice.js';
import { loadServerTls, type ServerTlsOptions } from './tls-files.js';
import { originAllowed } from './ws-access.js';
import { WsBridge, type WsBridgeOptions } from './ws-bridge.js';
import { StatusFeed, type StatusFeedOptions } from './status-feed.js';

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

/** `query` is the text after `?` ('' for none). */
export type FallbackHandler = (method: string, path: string, query: string) => Promise<FallbackAnswer>;

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
  /** What moves the bytes (default: chooseEngine('auto')). */
  engine?: ChosenEngine;
  /** Serve HTTPS and wss:// with these PEM files (with `ca`, client certificates are required); default plaintext. */
  tls?: HttpTlsFiles;
  /** Off loopback, plaintext is meant (`--insecure`). */
  insecure?: boolean;
  /** Off loopback, reads without a subscriber token are meant (`--anonymous-read`). */
  anonymousRead?: boolean;
}

/** Paths of the PEM files, and the flags' prefix for messages (`--http-tls` by default). */
export interface HttpTlsFiles {
  cert: string;
  key: string;
  ca?: string | null;
  flagPrefix?: string;
}

const DEFAULT_STATIC_DIR = new URL('../../static/', import.meta.url);
const TEXT_TYPE = 'text/plain; charset=utf-8';
const CLIENT_JS = '/client.js';

export class HttpListener {
  readonly bridge: WsBridge;
  readonly statusFeed: StatusFeed | null;
  /** The engine in use and why it was chosen. */
  readonly engine: ChosenEngine;
  private readonly edge: EdgeEngine;
  private readonly getRoutes = new Map<string, HttpHandler>();
  private readonly fallback: FallbackHandler | null;
  private readonly staticDir: URL;
  private readonly allowOrigins: readonly string[];
  private bound: AddressInfo | null = null;
  private closing: Promise<void> | null = null;
  private readonly closeGraceMs: number;
  private readonly onDisconnect: (conn: ConnectionInfo, reason: DisconnectReason, detail: string) => void;
  private readonly tls: boolean;
  private readonly insecure: boolean;
  private readonly anonymousRead: boolean;

  constructor(
    private readonly server: ReplicationServer,
    options: HttpListenerOptions = {},
  ) {
    // First: an engine that cannot run throws before anything is started.
    this.engine = options.engine ?? chooseEngine('auto');
    const hub = hubOf(server);
    this.staticDir = options.staticDir ?? DEFAULT_STATIC_DIR;
    this.closeGraceMs = options.closeGraceMs ?? 250;
    this.statusFeed = options.status === false ? null : new StatusFeed(hub, options.status ?? {});
    this.bridge = new WsBridge(hub, { ...options, statusFeed: this.statusFeed });
    this.onDisconnect = (conn, reason, detail) => this.statusFeed?.recordDisconnect(conn, reason, detail);
    server.on('disconnect', this.onDisconnect);
    this.fallback = options.fallback ?? null;
    this.allowOrigins = options.allowOrigins ?? [];
    if (this.statusFeed !== null) {
      const page = (): HttpResponseBody => this.staticFile('status.html', 'text/html; charset=utf-8');
      this.getRoutes.set('/', page).set('/index.html', page);
    }
    this.getRoutes.set(CLIENT_JS, () => this.staticFile('client.js', 'text/javascript; charset=utf-8'));
    if (this.fallback === null) this.getRoutes.set('/healthz', () => ({ body: 'ok\n' }));
    for (const [path, handler] of Object.entries(options.routes ?? {})) this.getRoutes.set(path, handler);
    // Browsers ask for it on every page: an empty answer keeps their consoles clean.
    this.getRoutes.set('/favicon.ico', () => ({ status: 204, body: '' }));
    this.tls = options.tls !== undefined;
    this.insecure = options.insecure ?? false;
    this.anonymousRead = options.anonymousRead ?? false;
    const tls = options.tls === undefined ? null : edgeTls(options.tls);
    this.edge = this.engine.create({ bridge: this.bridge, serve: (request, reply) => this.serve(request, reply) }, tls);
  }

  /**
   * Starts listening (port 0 picks a free port); refuses a port in use, and
   * off loopback an open door (no TLS, no subscriber token: src/core/open-door.ts).
   */
  async listen(host: string, port: number): Promise<AddressInfo> {
    const { credentials, requireAuth } = hubOf(this.server).limits;
    const refusal = openDoorRefusal({
      flag: '--http',
      host,
      port,
      tls: this.tls,
      subscriberCredential: requireAuth && credentials.hasSubscriber,
      insecure: this.insecure,
      anonymousRead: this.anonymousRead,
    });
    if (refusal !== null) throw new Error(refusal);
    let bound: number;
    try {
      bound = await this.edge.listen(host, port);
    } catch (err) {
      throw new Error(`cannot listen for HTTP on ${host}:${port}: ${(err as Error).message}`);
    }
    this.bound = { address: host, family: host.includes(':') ? 'IPv6' : 'IPv4', port: bound };
    return this.bound;
  }

  address(): AddressInfo | null {
    return this.bound;
  }

  /**
   * Reads and checks new PEM files and serves connections accepted from now
   * on with them (returned); open ones keep theirs. Throws (TlsFilesError) and
   * keeps the certificate in use when a file is bad. Only for a listener made with `tls`.
   */
  setTls(files: HttpTlsFiles): ServerTlsOptions {
    if (!this.tls) throw new TypeError('this listener was started without TLS: a certificate can only replace another');
    const tls = edgeTls(files);
    this.edge.setTls(tls);
    return tls.options;
  }

  /**
   * Stops listening, closes the status feed and every WebSocket the hub has
   * not closed, and after a short grace (for the `ERROR server shutting down`
   * that ReplicationServer.close() just wrote) every HTTP socket.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.edge.stopListening();
      this.server.off('disconnect', this.onDisconnect);
      this.statusFeed?.close();
      this.bridge.close();
      await new Promise((resolve) => setTimeout(resolve, this.closeGraceMs));
      this.edge.closeAll();
    })();
    return this.closing;
  }

  /** One request, on any engine: a GET (or HEAD) route, else the gateway's fallback (or 404). */
  private serve(request: HttpRequestHead, reply: (r: HttpReply) => void): void {
    const { method, path, query } = request;
    const headOnly = method === 'HEAD';
    const cors = path === CLIENT_JS ? this.corsFor(request) : null;
    const send = (r: HttpResponseBody): void =>
      reply({ status: r.status ?? 200, headers: { 'content-type': r.contentType ?? TEXT_TYPE, ...r.headers, ...cors }, body: r.body, headOnly });
    const fail = (err: unknown): void => send({ status: 500, body: `${err instanceof Error ? err.message : String(err)}\n` });
    const handler = (method === 'GET' || headOnly ? this.getRoutes.get(path) : undefined) ?? this.fallbackFor(method, path, query);
    try {
      const result = handler();
      if (result instanceof Promise) result.then(send, fail);
      else send(result);
    } catch (err) {
      fail(err);
    }
  }

  /**
   * /client.js for a page of another origin (a dashboard elsewhere, as
   * docs/websocket.md shows): allowed for the origins --allow-origin names,
   * the same ones that may open /replication.
   */
  private corsFor(request: HttpRequestHead): Record<string, string> | null {
    if (request.origin === '' || !originAllowed(request.origin, request.host, this.allowOrigins)) return null;
    return { 'access-control-allow-origin': request.origin, vary: 'Origin' };
  }

  private fallbackFor(method: string, path: string, query: string): HttpHandler {
    const fallback = this.fallback;
    if (fallback === null) return () => ({ status: 404, contentType: 'text/plain', body: 'not found\n' });
    return () => fallback(method, path, query);
  }

  private staticFile(name: string, contentType: string): HttpResponseBody {
    try {
      // Read per request: small files, and a rebuilt client is served without a restart.
      return { contentType, headers: { 'cache-control': 'no-cache' }, body: readFileSync(new URL(name, this.staticDir)) };
    } catch {
      return { status: 404, contentType: 'text/plain', body: `${name} is not built: run \`npm run build\`\n` };
    }
  }
}

/** The files read and checked (throws TlsFilesError), for the engine. */
function edgeTls(files: HttpTlsFiles): EdgeTls {
  const checked = { cert: files.cert, key: files.key, ca: files.ca ?? null };
  return { files: checked, options: loadServerTls({ ...checked, flagPrefix: files.flagPrefix ?? '--http-tls' }) };
}
