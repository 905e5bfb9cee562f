/**
 * The reconnecting loop under every replication client: the Node one
 * (src/client-session.ts, base of ReplicationClient and ReplicationWriter)
 * and the browser one (src/browser/client.ts). One ClientConnection session
 * (src/core/client-connection.ts, which speaks the wire lines) runs over a
 * transport that is replaced on every reconnect, with one timer for
 * keep-alive and one for the backoff (src/core/backoff.ts).
 *
 *     idle --start()--> connecting --open--> open --transport close--> waiting --backoff--> connecting ...
 *     any --close()--> closed
 *
 * No I/O, no timers and no Node imports (the browser bundles it): the caller
 * passes the transport factory, a Scheduler (the host's clock and timers, or
 * a test's fake) and where events and log lines go. Errors are events; the
 * reconnecting stops only at close() or, unless the caller asked to keep
 * trying, at a refusal retrying cannot cure (a wrong SERVER name, a bad
 * credential, an unknown or forbidden stream: src/core/access-refusal.ts).
 */
import { accessRefusal } from './access-refusal.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { ClientConnection, type ClientConnectionOptions } from './client-connection.js';
import { DEFAULT_PING_INTERVAL_MS } from './keep-alive.js';
import type { ClientTransport, TransportFactory } from './client-transport.js';
import type { ClientActionCommand } from './commands.js';
import { ProtocolError } from './errors.js';
import type { RowBatch } from './row-batch.js';

/** A clock and timers: src/bindings/system-scheduler.ts for the real ones. */
export interface Scheduler {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

/** The log lines the loop writes, pino-shaped (a pino Logger is one). */
export interface SessionLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Where the loop's output goes: the wrapper (an EventEmitter, a page's listeners) implements it. */
export interface SessionLoopEvents {
  /** SERVER came with the expected name. */
  connected(serverName: string): void;
  /** The connection is gone (or never came up); the next try is in retryInMs. Not after close(). */
  disconnected(reason: string, retryInMs: number): void;
  /**
   * A wrong remote, a ping timeout, bad input, or ERROR from the server: a
   * refusal with its own code (AUTH_FAILED, AUTH_REQUIRED, UNKNOWN_STREAM,
   * NOT_PERMITTED), any other ERROR as REMOTE_ERROR.
   */
  error(err: ProtocolError): void;
  /** A refusal stopped the loop (onRefused 'stop'): no more connections; `closed` follows. */
  stopped?(err: ProtocolError): void;
  rows(batch: RowBatch): void;
  /** As ClientConnectionSink.position: `before` above `token` means the server (or the `instance`) went back. */
  position(stream: string, token: number, before: number | null, instance?: string): void;
  sync?(data: string): void;
  /** A client command the gateway forwarded (a writer's connection only). */
  forwarded?(cmd: ClientActionCommand): void;
  /** The gateway's log has another generation than on the last connection (followGeneration; null: none). */
  generation?(previous: string | null, current: string | null): void;
  /** A connection attempt starts (a new transport). */
  connecting?(): void;
  /** The transport opened; the handshake is written. */
  open?(): void;
  /** Writes that returned false have been flushed. */
  drain?(): void;
  /** The transport closed, after close() too; before `disconnected`. */
  transportClosed?(): void;
  /** close() was called: no more connections. */
  closed?(): void;
}

export interface SessionLoopOptions {
  /** Makes one transport per connection attempt. */
  transport: TransportFactory;
  scheduler: Scheduler;
  events: SessionLoopEvents;
  /** Default: no log lines. */
  log?: SessionLogger;
  connection?: ClientConnectionOptions;
  backoff?: BackoffOptions;
  /** Keep-alive check period (default pingIntervalMs / 5, between 5 and 1000 ms). */
  tickMs?: number;
  /**
   * What a refusal retrying cannot cure does (a wrong SERVER name, a bad
   * credential, an unknown or forbidden stream): 'stop' (default) ends the
   * loop with a `stopped` event; 'retry' keeps trying, every `refusedMs` of
   * the backoff (default 30 s), for a service that must outlive a fix.
   */
  onRefused?: 'stop' | 'retry';
}

export type SessionState = 'idle' | 'connecting' | 'open' | 'waiting' | 'closed';

export class SessionLoop {
  /** The protocol session, which outlives its connections: follow, send, positions go here. */
  readonly conn: ClientConnection;
  private readonly makeTransport: TransportFactory;
  private readonly scheduler: Scheduler;
  private readonly events: SessionLoopEvents;
  private readonly log: SessionLogger | undefined;
  private readonly backoff: Backoff;
  private readonly tickMs: number;
  private transport: ClientTransport | null = null;
  private current: SessionState = 'idle';
  private openedAtMs: number | null = null;
  private tickTimer: unknown = null;
  private retryTimer: unknown = null;
  private pauses = 0;
  private closedWaiters: (() => void)[] = [];
  private readonly onRefused: 'stop' | 'retry';
  /** The refusal the current connection got, if any. */
  private refusal: ProtocolError | null = null;

  constructor(options: SessionLoopOptions) {
    this.makeTransport = options.transport;
    this.scheduler = options.scheduler;
    this.events = options.events;
    this.log = options.log;
    this.backoff = new Backoff(options.backoff);
    this.onRefused = options.onRefused ?? 'stop';
    const pingIntervalMs = options.connection?.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    this.tickMs = options.tickMs ?? Math.max(5, Math.min(1000, Math.floor(pingIntervalMs / 5)));
    this.conn = new ClientConnection(
      {
        write: (chunks) => this.transport?.write(chunks) ?? false,
        close: (reason) => {
          this.log?.warn({ code: reason.code, message: reason.message }, 'closing the replication connection');
          if (reason.code === 'WRONG_REMOTE') this.refusal = reason;
          this.events.error(reason);
          this.transport?.close();
        },
        server: (serverName) => {
          this.log?.info({ serverName }, 'replication connected');
          this.events.connected(serverName);
        },
        rows: (batch) => this.events.rows(batch),
        position: (stream, token, before, instance) => this.events.position(stream, token, before, instance),
        remoteError: (message) => {
          this.log?.warn({ message }, 'replication server sent ERROR');
          const refused = accessRefusal(message);
          const err = new ProtocolError(refused ?? 'REMOTE_ERROR', message);
          if (refused !== null) this.refusal = err;
          this.events.error(err);
        },
        sync: (data) => this.events.sync?.(data),
        forwarded: (cmd) => this.events.forwarded?.(cmd),
        generationChanged: (previous, current) => {
          this.log?.warn(
            { previous, current, positions: this.conn.positions() },
            "the gateway's log is a new generation (wiped or replaced): its tokens started over, and this client's positions are those of the old log",
          );
          this.events.generation?.(previous, current);
        },
      },
      { ...options.connection, pingIntervalMs },
    );
  }

  get state(): SessionState {
    return this.current;
  }

  /** Connects, and keeps reconnecting until close(). */
  start(): void {
    if (this.current === 'idle') this.connect();
  }

  /** Stops reconnecting and closes the connection; resolves once it is closed. */
  close(): Promise<void> {
    if (this.current === 'closed') return Promise.resolve();
    const transport = this.transport;
    this.current = 'closed';
    if (this.retryTimer !== null) this.scheduler.clearTimeout(this.retryTimer);
    this.stopTicking();
    this.conn.close();
    this.events.closed?.();
    if (transport === null) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.closedWaiters.push(resolve));
    transport.close();
    return done;
  }

  /** Stops reading the transport (the server's keep-alive timeout is then not ours to enforce). Counted. */
  pause(): void {
    if (this.pauses++ === 0) this.applyPause();
  }

  resume(): void {
    if (this.pauses === 0) return;
    if (--this.pauses === 0 && this.transport !== null) {
      this.conn.resumeReading(this.scheduler.now());
      this.transport.resume?.();
    }
  }

  private applyPause(): void {
    if (this.transport === null) return;
    this.conn.pauseReading();
    this.transport.pause?.();
  }

  private connect(): void {
    this.current = 'connecting';
    this.openedAtMs = null;
    this.events.connecting?.();
    const transport = this.makeTransport();
    this.transport = transport;
    // Events of a transport already replaced (or closed by close()) are moot.
    transport.connect({
      open: () => {
        if (this.transport !== transport || this.current !== 'connecting') return;
        this.current = 'open';
        this.openedAtMs = this.scheduler.now();
        this.conn.connected(this.openedAtMs);
        if (this.pauses > 0) this.applyPause();
        this.tickTimer = this.scheduler.setInterval(() => this.conn.tick(this.scheduler.now()), this.tickMs);
        this.events.open?.();
      },
      data: (chunk) => {
        if (this.transport === transport) this.conn.data(chunk, this.scheduler.now());
      },
      drain: () => {
        if (this.transport === transport) this.events.drain?.();
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
    this.events.transportClosed?.();
    if (this.current === 'closed') {
      for (const resolve of this.closedWaiters.splice(0)) resolve();
      return;
    }
    const refusal = this.refusal;
    this.refusal = null;
    if (refusal !== null && this.onRefused === 'stop') {
      this.current = 'closed';
      this.log?.warn({ code: refusal.code, message: refusal.message }, 'replication refused: not reconnecting');
      this.events.stopped?.(refusal);
      this.events.closed?.();
      return;
    }
    const retryInMs = this.backoff.next({
      now: this.scheduler.now(),
      openedAtMs: this.openedAtMs,
      serverSeen: this.conn.serverSeen,
      refused: refusal !== null,
    });
    this.current = 'waiting';
    this.log?.info({ reason, retryInMs, wasOpen }, wasOpen ? 'replication connection lost' : 'replication connect failed');
    this.events.disconnected(reason, retryInMs);
    this.retryTimer = this.scheduler.setTimeout(() => {
      this.retryTimer = null;
      if (this.current === 'waiting') this.connect();
    }, retryInMs);
  }

  private stopTicking(): void {
    if (this.tickTimer !== null) this.scheduler.clearInterval(this.tickTimer);
    this.tickTimer = null;
  }
}
