/**
 * The browser's replication client: the same session core as the Node client
 * (src/core/client-connection.ts: positions per stream, batches, resume
 * after a cut) and the same reconnecting loop and backoff
 * (src/core/session-loop.ts, src/core/backoff.ts), over a WebSocket to the
 * gateway's /replication. Built into /client.js by src/browser/build.ts.
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
import type { BackoffOptions } from '../core/backoff.js';
import type { TransportFactory } from '../core/client-transport.js';
import type { InstanceFollow } from '../core/instance-follows.js';
import type { RowBatch } from '../core/row-batch.js';
import { SessionLoop } from '../core/session-loop.js';
import { systemScheduler } from '../bindings/system-scheduler.js';
import { wsClientTransport, type WebSocketConstructor } from './ws-transport.js';

export interface BrowserClientOptions {
  /** ws:// or wss:// URL of /replication (default: the page's own host). */
  url?: string;
  /** Streams to follow: names (from NOW), or name -> token to start after. */
  streams?: readonly string[] | Readonly<Record<string, number | 'NOW'>>;
  /**
   * Streams of today's Synapse dialect, per writer instance ('*': every
   * writer), from a gateway following a Synapse deployment; not also in `streams`.
   */
  instances?: readonly InstanceFollow[];
  /** Sent as AUTH on every connect. */
  auth?: string;
  /** Sent as NAME. */
  name?: string;
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** A bad credential, an unknown or forbidden stream: 'stop' (default, a `stopped` event) or 'retry' every backoff.refusedMs. */
  onRefused?: 'stop' | 'retry';
  /** Instead of url: makes one transport per connection attempt (tests). */
  transport?: TransportFactory;
  /** The WebSocket class (default: globalThis.WebSocket). */
  WebSocket?: WebSocketConstructor;
  /** Ask the gateway for its log's generation on every connect; 'generation' when a reconnect brings another. */
  followGeneration?: boolean;
}

export interface RowsEvent {
  stream: string;
  /** The writer of a stream followed per instance; null for a v1 stream. */
  instance: string | null;
  token: number;
  /** The rows' values. */
  rows: unknown[];
  batch: RowBatch;
}

export interface ClientEvents {
  rows: (event: RowsEvent) => void;
  /** `instance`: as in RowsEvent; a token below the pair's last one is that writer's reset. */
  position: (event: { stream: string; instance: string | null; token: number }) => void;
  connected: (event: { serverName: string }) => void;
  disconnected: (event: { reason: string; retryInMs: number }) => void;
  /** ERROR from the server (a refusal with its own code, else REMOTE_ERROR), a wrong remote, a ping timeout, bad input. */
  error: (event: { code: string; message: string }) => void;
  /** A refusal retrying cannot cure stopped the client (onRefused 'stop'). */
  stopped: (event: { code: string; message: string }) => void;
  /** With followGeneration: the gateway's log is another generation (its tokens started over; null: none). */
  generation: (event: { previous: string | null; current: string | null }) => void;
}

type Listeners = { [K in keyof ClientEvents]: Set<ClientEvents[K]> };

/** The reconnecting loop of src/core/session-loop.ts, with a page's listeners for its events and no log. */
export class ReplicationClient {
  private readonly loop: SessionLoop;
  private readonly listeners: Listeners = {
    rows: new Set(),
    position: new Set(),
    connected: new Set(),
    disconnected: new Set(),
    error: new Set(),
    stopped: new Set(),
    generation: new Set(),
  };
  /** Connections made, for pages and tests that show it. */
  connects = 0;

  constructor(options: BrowserClientOptions = {}) {
    this.loop = new SessionLoop({
      transport:
        options.transport ?? wsClientTransport({ url: options.url ?? defaultUrl(), ...(options.WebSocket ? { WebSocket: options.WebSocket } : {}) }),
      scheduler: systemScheduler,
      backoff: options.backoff,
      onRefused: options.onRefused,
      connection: {
        name: options.name,
        auth: options.auth,
        pingIntervalMs: options.pingIntervalMs,
        pingTimeoutMs: options.pingTimeoutMs,
        followGeneration: options.followGeneration ?? false,
      },
      events: {
        connecting: () => {
          this.connects++;
        },
        connected: (serverName) => this.emit('connected', { serverName }),
        disconnected: (reason, retryInMs) => this.emit('disconnected', { reason, retryInMs }),
        error: (err) => this.emit('error', { code: err.code, message: err.message }),
        stopped: (err) => this.emit('stopped', { code: err.code, message: err.message }),
        rows: (batch) => this.emit('rows', { stream: batch.stream, instance: batch.instance, token: batch.token, rows: batch.values(), batch }),
        position: (stream, token, _before, instance) => this.emit('position', { stream, instance: instance ?? null, token }),
        generation: (previous, current) => this.emit('generation', { previous, current }),
      },
    });
    const streams = options.streams ?? [];
    const now = Date.now();
    if (Array.isArray(streams)) for (const s of streams as readonly string[]) this.loop.conn.follow(s, undefined, now);
    else for (const [s, from] of Object.entries(streams as Record<string, number | 'NOW'>)) this.loop.conn.follow(s, from, now);
    for (const f of options.instances ?? []) this.loop.conn.followInstance(f.stream, f.instance, f.from, now);
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
    this.loop.start();
    return this;
  }

  /** Follows `stream` after `from` (or NOW); without `from` a followed stream keeps its position. */
  follow(stream: string, from?: number | 'NOW'): void {
    this.loop.conn.follow(stream, from, Date.now());
  }

  /** Follows writer `instance` of `stream` (or every writer: '*') after `from` (or NOW), as the Node client's followInstance. */
  followInstance(stream: string, instance: string, from?: number | 'NOW'): void {
    this.loop.conn.followInstance(stream, instance, from, Date.now());
  }

  /** The last token delivered per stream (a batch's token, or a POSITION), null before any. */
  positions(): Record<string, number | null> {
    return this.loop.conn.positions();
  }

  /** The last token per (stream, instance) of the streams followed per instance. */
  instancePositions(): Record<string, Record<string, number | null>> {
    return this.loop.conn.instancePositions();
  }

  get connected(): boolean {
    return this.loop.state === 'open';
  }

  /** Stops reconnecting and closes; resolves once closed. */
  close(): Promise<void> {
    return this.loop.close();
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
