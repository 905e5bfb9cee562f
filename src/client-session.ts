/**
 * What ReplicationClient and ReplicationWriter share: one ClientConnection
 * session (src/core/client-connection.ts) run over a transport that is
 * replaced on every reconnect, with one timer for keep-alive and one for the
 * backoff. Errors are reported as 'error' events (only when someone listens,
 * so an unhandled one never crashes a worker) and never stop the
 * reconnecting; close() does.
 */
import { EventEmitter } from 'node:events';
import { pino, type Logger } from 'pino';
import { tcpClientTransport } from './bindings/tcp-client-transport.js';
import { Backoff, type BackoffOptions } from './core/backoff.js';
import {
  ClientConnection,
  DEFAULT_PING_INTERVAL_MS,
  type ClientConnectionOptions,
  type ClientConnectionSink,
} from './core/client-connection.js';
import type { ClientTransport, TransportFactory } from './core/client-transport.js';
import type { ClientActionCommand } from './core/commands.js';
import { ProtocolError } from './core/errors.js';
import type { RowBatch } from './core/row-batch.js';


export interface SessionOptions {
  host?: string;
  port?: number;
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
  logger?: Logger;
}

type SessionState = 'idle' | 'connecting' | 'open' | 'waiting' | 'closed';

/** The reconnecting loop shared by readers and writers. */
export abstract class ReplicationSession extends EventEmitter {
  protected readonly conn: ClientConnection;
  protected readonly log: Logger;
  private readonly makeTransport: TransportFactory;
  private readonly backoff: Backoff;
  private readonly tickMs: number;
  private transport: ClientTransport | null = null;
  private state: SessionState = 'idle';
  private openedAtMs: number | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private pauses = 0;
  private closedWaiters: (() => void)[] = [];

  constructor(options: SessionOptions, connOptions: ClientConnectionOptions) {
    super();
    if (options.transport === undefined && options.port === undefined) {
      throw new TypeError('a replication client needs `port` (and `host`) or `transport`');
    }
    this.makeTransport =
      options.transport ?? tcpClientTransport({ host: options.host ?? '127.0.0.1', port: options.port! });
    this.log = options.logger ?? pino({ level: 'silent' });
    this.backoff = new Backoff(options.backoff);
    const pingIntervalMs = options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    this.tickMs = options.tickMs ?? Math.max(5, Math.min(1000, Math.floor(pingIntervalMs / 5)));
    const sink: ClientConnectionSink = {
      write: (chunks) => this.transport?.write(chunks) ?? false,
      close: (reason) => {
        this.log.warn({ code: reason.code, message: reason.message }, 'closing the replication connection');
        this.reportError(reason);
        this.transport?.close();
      },
      server: (serverName) => {
        this.log.info({ serverName }, 'replication connected');
        this.emit('connected', serverName);
      },
      rows: (batch) => this.onRows(batch),
      position: (stream, token) => this.onPosition(stream, token),
      remoteError: (message) => {
        this.log.warn({ message }, 'replication server sent ERROR');
        this.reportError(new ProtocolError('REMOTE_ERROR', message));
      },
      sync: (data) => this.emit('sync', data),
      forwarded: (cmd) => this.onForwarded(cmd),
    };
    this.conn = new ClientConnection(sink, {
      name: options.name,
      expectedServerName: options.serverName,
      auth: options.auth,
      pingIntervalMs,
      pingTimeoutMs: options.pingTimeoutMs,
      maxQueuedCommands: options.maxQueuedCommands,
      maxLineBytes: options.maxLineBytes,
      ...connOptions,
    });
  }

  /** Connects, and keeps reconnecting until close(). */
  start(): this {
    if (this.state === 'idle') this.connect();
    return this;
  }

  /** Stops reconnecting and closes the connection; resolves once it is closed. */
  close(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    const wasConnected = this.transport !== null;
    this.state = 'closed';
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.stopTicking();
    this.conn.close();
    this.onClosed();
    if (!wasConnected) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.closedWaiters.push(resolve));
    this.transport?.close();
    return done;
  }

  /** Stops reading the socket (the server's keep-alive timeout is then not ours to enforce). */
  pause(): void {
    if (this.pauses++ === 0) this.applyPause();
  }

  resume(): void {
    if (this.pauses === 0) return;
    if (--this.pauses === 0 && this.transport !== null) {
      this.conn.resumeReading(Date.now());
      this.transport.resume?.();
    }
  }

  /** Commands dropped because too many were made while disconnected. */
  get droppedCommands(): number {
    return this.conn.droppedCommands;
  }

  private applyPause(): void {
    if (this.transport === null) return;
    this.conn.pauseReading();
    this.transport.pause?.();
  }

  private connect(): void {
    this.state = 'connecting';
    this.openedAtMs = null;
    const transport = this.makeTransport();
    this.transport = transport;
    transport.connect({
      open: () => {
        if (this.transport !== transport || this.state !== 'connecting') return;
        this.state = 'open';
        this.openedAtMs = Date.now();
        this.conn.connected(this.openedAtMs);
        if (this.pauses > 0) this.applyPause();
        this.startTicking();
        this.onOpen();
      },
      data: (chunk) => {
        if (this.transport === transport) this.conn.data(chunk, Date.now());
      },
      drain: () => {
        if (this.transport === transport) this.onDrain();
      },
      close: (reason) => {
        if (this.transport !== transport) return;
        this.transport = null;
        this.lost(reason);
      },
    });
  }

  private lost(reason: string): void {
    this.stopTicking();
    const wasOpen = this.openedAtMs !== null;
    this.conn.disconnected();
    this.onDisconnected();
    if (this.state === 'closed') {
      for (const resolve of this.closedWaiters.splice(0)) resolve();
      return;
    }
    const now = Date.now();
    const delayMs = this.backoff.next({
      now,
      openedAtMs: this.openedAtMs,
      serverSeen: this.conn.serverSeen,
      wrongRemote: this.conn.wrongRemote,
    });
    this.state = 'waiting';
    this.log.info({ reason, retryInMs: delayMs, wasOpen }, wasOpen ? 'replication connection lost' : 'replication connect failed');
    this.emit('disconnected', reason, delayMs);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.state === 'waiting') this.connect();
    }, delayMs);
  }

  private startTicking(): void {
    this.tickTimer = setInterval(() => this.conn.tick(Date.now()), this.tickMs);
  }

  private stopTicking(): void {
    if (this.tickTimer !== null) clearInterval(this.tickTimer);
    this.tickTimer = null;
  }

  protected reportError(err: ProtocolError): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  // ---------------------------------------------------------------- hooks

  protected abstract onRows(batch: RowBatch): void;
  protected abstract onPosition(stream: string, token: number): void;
  protected onForwarded(_cmd: ClientActionCommand): void {}
  protected onOpen(): void {}
  protected onDrain(): void {}
  protected onDisconnected(): void {}
  protected onClosed(): void {}
}

