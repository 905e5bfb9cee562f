/**
 * What ReplicationClient and ReplicationWriter share: the reconnecting loop
 * of src/core/session-loop.ts, bound to Node: an EventEmitter for its events,
 * pino for its log lines, TCP as the default transport, the real timers.
 * Errors are reported as 'error' events (only when someone listens, so an
 * unhandled one never crashes a worker); the reconnecting stops at close(),
 * or at a refusal retrying cannot cure ('stopped', unless onRefused is 'retry').
 * Events are typed: `on('rowz', ...)` does not compile.
 */
import { EventEmitter } from 'node:events';
import { pino, type Logger } from 'pino';
import { systemScheduler } from './bindings/system-scheduler.js';
import { tcpClientTransport, type TcpClientTransportOptions } from './bindings/tcp-client-transport.js';
import type { ClientTlsOptions } from './bindings/tls-files.js';
import type { BackoffOptions } from './core/backoff.js';
import type { ClientConnection, ClientConnectionOptions } from './core/client-connection.js';
import type { TransportFactory } from './core/client-transport.js';
import type { ClientActionCommand } from './core/commands.js';
import type { ProtocolError } from './core/errors.js';
import type { RowBatch } from './core/row-batch.js';
import { SessionLoop } from './core/session-loop.js';

export interface SessionOptions {
  host?: string;
  port?: number;
  /**
   * Connect to host:port with TLS: `true` checks the server's certificate
   * against the system's CAs; `{ ca }` against that CA (PEM) instead, `cert`
   * and `key` present a client certificate, `servername` is the name the
   * certificate must carry (default: `host`). Default: plaintext.
   */
  tls?: true | ClientTlsOptions;
  /** Instead of host and port: makes one transport per connection attempt. */
  transport?: TransportFactory;
  /** Sent as NAME. */
  name?: string;
  /** The server name to insist on (SERVER); another name is `ERROR Wrong remote` and a long backoff. */
  serverName?: string;
  /** Sent as AUTH on every connect (the gateway's credential; a Synapse master knows no AUTH). */
  auth?: string;
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
  /** Keep-alive check period (default pingIntervalMs / 5, at most 1000 ms). */
  tickMs?: number;
  backoff?: BackoffOptions;
  maxQueuedCommands?: number;
  maxLineBytes?: number;
  /**
   * A wrong SERVER name, a bad credential, an unknown or forbidden stream:
   * 'stop' (default) stops the client with a 'stopped' event; 'retry' keeps
   * trying every `backoff.refusedMs` (default 30 s).
   */
  onRefused?: 'stop' | 'retry';
  logger?: Logger;
}

/** Events of every session: ReplicationClient and ReplicationWriter add their own. */
export interface SessionEvents {
  /** SERVER came with the expected name. */
  connected: [serverName: string];
  /** The connection is gone; the next try is in retryInMs. */
  disconnected: [reason: string, retryInMs: number];
  /** Wrong remote, ping timeout, bad input, or ERROR from the server: `code` says which (docs/client.md). */
  error: [err: ProtocolError];
  /** A refusal retrying cannot cure stopped the client (it is closed; `err.code` says why). */
  stopped: [err: ProtocolError];
  /** The server's SYNC (data). */
  sync: [data: string];
}

/** The reconnecting loop shared by readers and writers; `E` is the subclass's full event map. */
export abstract class ReplicationSession<E extends SessionEvents & Record<keyof E, unknown[]>> extends EventEmitter<E> {
  protected readonly conn: ClientConnection;
  protected readonly log: Logger;
  private readonly loop: SessionLoop;

  constructor(options: SessionOptions, connOptions: ClientConnectionOptions) {
    super();
    if (options.transport === undefined && options.port === undefined) {
      throw new TypeError('a replication client needs `port` (and `host`) or `transport`');
    }
    this.log = options.logger ?? pino({ level: 'silent' });
    this.loop = new SessionLoop({
      transport: options.transport ?? tcpClientTransport(tcpTarget(options)),
      scheduler: systemScheduler,
      log: this.log,
      backoff: options.backoff,
      tickMs: options.tickMs,
      onRefused: options.onRefused,
      connection: {
        name: options.name,
        expectedServerName: options.serverName,
        auth: options.auth,
        pingIntervalMs: options.pingIntervalMs,
        pingTimeoutMs: options.pingTimeoutMs,
        maxQueuedCommands: options.maxQueuedCommands,
        maxLineBytes: options.maxLineBytes,
        ...connOptions,
      },
      events: {
        connected: (serverName) => this.fire('connected', serverName),
        disconnected: (reason, retryInMs) => this.fire('disconnected', reason, retryInMs),
        error: (err) => this.reportError(err),
        stopped: (err) => this.fire('stopped', err),
        rows: (batch) => this.onRows(batch),
        position: (stream, token, before, instance) => this.onPosition(stream, token, before, instance),
        sync: (data) => this.fire('sync', data),
        forwarded: (cmd) => this.onForwarded(cmd),
        generation: (previous, current) => this.onGeneration(previous, current),
        open: () => this.onOpen(),
        drain: () => this.onDrain(),
        transportClosed: () => this.onDisconnected(),
        closed: () => this.onClosed(),
      },
    });
    this.conn = this.loop.conn;
  }

  /** Connects, and keeps reconnecting until close(). */
  start(): this {
    this.loop.start();
    return this;
  }

  /** Stops reconnecting and closes the connection; resolves once it is closed. */
  close(): Promise<void> {
    return this.loop.close();
  }

  /** Stops reading the socket (the server's keep-alive timeout is then not ours to enforce). */
  pause(): void {
    this.loop.pause();
  }

  resume(): void {
    this.loop.resume();
  }

  /** Commands dropped because too many were made while disconnected. */
  get droppedCommands(): number {
    return this.conn.droppedCommands;
  }

  protected reportError(err: ProtocolError): void {
    if (this.shared.listenerCount('error') > 0) this.fire('error', err);
  }

  /** This emitter seen through the events every session has (E extends SessionEvents). */
  private get shared(): EventEmitter<SessionEvents> {
    return this as unknown as EventEmitter<SessionEvents>;
  }

  private fire<K extends keyof SessionEvents>(event: K, ...args: SessionEvents[K]): void {
    (this.shared.emit as (event: K, ...args: SessionEvents[K]) => boolean).call(this, event, ...args);
  }

  // ---------------------------------------------------------------- hooks

  protected abstract onRows(batch: RowBatch): void;
  protected abstract onPosition(stream: string, token: number, before: number | null, instance?: string): void;
  protected onForwarded(_cmd: ClientActionCommand): void {}
  protected onGeneration(_previous: string | null, _current: string | null): void {}
  protected onOpen(): void {}
  protected onDrain(): void {}
  protected onDisconnected(): void {}
  protected onClosed(): void {}
}

/** The TCP (or TLS) transport's options from a session's `host`, `port` and `tls`. */
export function tcpTarget(options: Pick<SessionOptions, 'host' | 'port' | 'tls'>): TcpClientTransportOptions {
  return { host: options.host ?? '127.0.0.1', port: options.port!, ...(options.tls !== undefined ? { tls: options.tls } : {}) };
}
