/**
 * The browser's replication client: the same session core as the Node client
 * (src/core/client-connection.ts: positions per stream, batches, resume
 * after a cut) and the same backoff (src/core/backoff.ts), over a WebSocket
 * to the gateway's /replication. Built into /client.js by src/browser/build.ts.
 *
 *     const client = new ReplicationClient({ streams: ['events'], auth: token });
 *     client.on('rows', ({ stream, token, rows }) => console.log(stream, token, rows));
 *     client.start();
 *
 * It reconnects until close(), each time REPLICATE-ing every stream from the
 * last token it delivered, so nothing is lost or delivered twice across cuts.
 * Liveness is the server's business (it pings the socket); this side still
 * sends PING lines, which a background tab may send late without harm.
 */
import { Backoff, type BackoffOptions } from '../core/backoff.js';
import { ClientConnection, DEFAULT_PING_INTERVAL_MS, type ClientConnectionSink } from '../core/client-connection.js';
import type { ClientTransport, TransportFactory } from '../core/client-transport.js';
import type { ProtocolError } from '../core/errors.js';
import type { RowBatch } from '../core/row-batch.js';
import { wsClientTransport, type WebSocketConstructor } from './ws-transport.js';

export interface BrowserClientOptions {
  /** ws:// or wss:// URL of /replication (default: the page's own host). */
  url?: string;
  /** Streams to follow: names (from NOW), or name -> token to start after. */
  streams?: readonly string[] | Readonly<Record<string, number | 'NOW'>>;
  /** Sent as AUTH on every connect. */
  auth?: string;
  /** Sent as NAME. */
  name?: string;
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** Instead of url: makes one transport per connection attempt (tests). */
  transport?: TransportFactory;
  /** The WebSocket class (default: globalThis.WebSocket). */
  WebSocket?: WebSocketConstructor;
}

export interface RowsEvent {
  stream: string;
  token: number;
  /** The rows' values. */
  rows: unknown[];
  batch: RowBatch;
}

export interface ClientEvents {
  rows: (event: RowsEvent) => void;
  position: (event: { stream: string; token: number }) => void;
  connected: (event: { serverName: string }) => void;
  disconnected: (event: { reason: string; retryInMs: number }) => void;
  /** ERROR from the server, a wrong remote, a ping timeout, bad input. */
  error: (event: { code: string; message: string }) => void;
}

type Listeners = { [K in keyof ClientEvents]: Set<ClientEvents[K]> };

export class ReplicationClient {
  private readonly conn: ClientConnection;
  private readonly makeTransport: TransportFactory;
  private readonly backoff: Backoff;
  private readonly tickMs: number;
  private readonly listeners: Listeners = {
    rows: new Set(),
    position: new Set(),
    connected: new Set(),
    disconnected: new Set(),
    error: new Set(),
  };
  private transport: ClientTransport | null = null;
  private state: 'idle' | 'connecting' | 'open' | 'waiting' | 'closed' = 'idle';
  private openedAtMs: number | null = null;
  private tickTimer: ReturnType<typeof setInterval> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private closedWaiters: (() => void)[] = [];
  /** Connections made, for pages and tests that show it. */
  connects = 0;

  constructor(options: BrowserClientOptions = {}) {
    this.makeTransport =
      options.transport ?? wsClientTransport({ url: options.url ?? defaultUrl(), ...(options.WebSocket ? { WebSocket: options.WebSocket } : {}) });
    this.backoff = new Backoff(options.backoff);
    const pingIntervalMs = options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    this.tickMs = Math.max(5, Math.min(1000, Math.floor(pingIntervalMs / 5)));
    const sink: ClientConnectionSink = {
      write: (chunks) => this.transport?.write(chunks) ?? false,
      close: (reason) => {
        this.report(reason.code, reason.message);
        this.transport?.close();
      },
      server: (serverName) => this.emit('connected', { serverName }),
      rows: (batch) => this.emit('rows', { stream: batch.stream, token: batch.token, rows: batch.values(), batch }),
      position: (stream, token) => this.emit('position', { stream, token }),
      remoteError: (message) => this.report('REMOTE_ERROR', message),
      sync: () => {},
      forwarded: () => {},
    };
    this.conn = new ClientConnection(sink, {
      ...(options.name !== undefined ? { name: options.name } : {}),
      ...(options.auth !== undefined ? { auth: options.auth } : {}),
      pingIntervalMs,
      ...(options.pingTimeoutMs !== undefined ? { pingTimeoutMs: options.pingTimeoutMs } : {}),
    });
    const streams = options.streams ?? [];
    const now = Date.now();
    if (Array.isArray(streams)) for (const s of streams as readonly string[]) this.conn.follow(s, undefined, now);
    else for (const [s, from] of Object.entries(streams as Record<string, number | 'NOW'>)) this.conn.follow(s, from, now);
  }

  on<K extends keyof ClientEvents>(event: K, listener: ClientEvents[K]): this {
    (this.listeners[event] as Set<ClientEvents[K]>).add(listener);
    return this;
  }

  off<K extends keyof ClientEvents>(event: K, listener: ClientEvents[K]): this {
    (this.listeners[event] as Set<ClientEvents[K]>).delete(listener);
    return this;
  }

  /** Connects, and keeps reconnecting until close(). */
  start(): this {
    if (this.state === 'idle') this.connect();
    return this;
  }

  /** Follows `stream` after `from` (or NOW); without `from` a followed stream keeps its position. */
  follow(stream: string, from?: number | 'NOW'): void {
    this.conn.follow(stream, from, Date.now());
  }

  /** The last token delivered per stream (a batch's token, or a POSITION), null before any. */
  positions(): Record<string, number | null> {
    return this.conn.positions();
  }

  get connected(): boolean {
    return this.state === 'open';
  }

  /** Stops reconnecting and closes; resolves once closed. */
  close(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    const transport = this.transport;
    this.state = 'closed';
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.stopTicking();
    this.conn.close();
    if (transport === null) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.closedWaiters.push(resolve));
    transport.close();
    return done;
  }

  private connect(): void {
    this.state = 'connecting';
    this.openedAtMs = null;
    this.connects++;
    const transport = this.makeTransport();
    this.transport = transport;
    transport.connect({
      open: () => {
        if (this.transport !== transport || this.state !== 'connecting') return;
        this.state = 'open';
        this.openedAtMs = Date.now();
        this.conn.connected(this.openedAtMs);
        this.tickTimer = setInterval(() => this.conn.tick(Date.now()), this.tickMs);
      },
      data: (chunk) => {
        if (this.transport === transport) this.conn.data(chunk, Date.now());
      },
      drain: () => {},
      close: (reason) => {
        if (this.transport !== transport) return;
        this.transport = null;
        this.lost(reason);
      },
    });
  }

  private lost(reason: string): void {
    this.stopTicking();
    this.conn.disconnected();
    if (this.state === 'closed') {
      for (const resolve of this.closedWaiters.splice(0)) resolve();
      return;
    }
    const retryInMs = this.backoff.next({
      now: Date.now(),
      openedAtMs: this.openedAtMs,
      serverSeen: this.conn.serverSeen,
      wrongRemote: this.conn.wrongRemote,
    });
    this.state = 'waiting';
    this.emit('disconnected', { reason, retryInMs });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.state === 'waiting') this.connect();
    }, retryInMs);
  }

  private stopTicking(): void {
    if (this.tickTimer !== null) clearInterval(this.tickTimer);
    this.tickTimer = null;
  }

  private report(code: ProtocolError['code'] | string, message: string): void {
    this.emit('error', { code, message });
  }

  private emit<K extends keyof ClientEvents>(event: K, value: Parameters<ClientEvents[K]>[0]): void {
    for (const listener of this.listeners[event]) {
      try {
        (listener as (v: typeof value) => void)(value);
      } catch (err) {
        // A listener's bug must not break the session; surface it where a page looks.
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
}

/** ws(s)://<this page's host>/replication. */
function defaultUrl(): string {
  const loc = (globalThis as { location?: { protocol: string; host: string } }).location;
  if (loc === undefined) throw new TypeError('a replication client outside a page needs `url`');
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/replication`;
}
