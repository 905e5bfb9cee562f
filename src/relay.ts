/**
 * The relay as a library: a ReplicationServer that serves what an upstream
 * master (Synapse 2017, or another gateway) has. The relay follows every
 * stream the server declares as a v1 client, stores what it gets with the
 * upstream's tokens and bytes (src/core/relay-store.ts), and is registered
 * with the server's hub as a writer link, so its subscribers' commands go
 * upstream, presence folded over all of them:
 *
 *     < NAME replication-gateway@host       (AUTH first when `auth` is set)
 *     < PING <ms>
 *     < REPLICATE <stream> <relay's head>   per declared stream, on every connect
 *     < USER_SYNC <user> start <ms>         per user syncing on any downstream connection
 *     < FEDERATION_ACK ... | USER_IP ...    downstream commands, queued (bounded) while away
 *     > RDATA / POSITION                    stored and fanned out downstream
 *
 * Downstream connections never notice an upstream reconnect, except that
 * rows pause; the client library resumes from the relay's tokens.
 *
 * A stream the relay never synced starts from 0, so a gateway upstream hands
 * over its history; if the upstream refuses that catch-up (Synapse: more than
 * 10,000 rows), the stream is followed from NOW and its log starts at the
 * POSITION's token. A stream with history is never skipped.
 */
import { EventEmitter } from 'node:events';
import os from 'node:os';
import { pino, type Logger } from 'pino';
import { tcpClientTransport } from './bindings/tcp-client-transport.js';
import { tcpTarget, type SessionOptions } from './client-session.js';
import { catchUpRefusal } from './core/catch-up-refusal.js';
import type { ClientActionCommand, RdataCommand } from './core/commands.js';
import type { MasterLink } from './core/connection-host.js';
import type { ProtocolError } from './core/errors.js';
import type { ReplicationHub } from './core/hub.js';
import { RelayStore, type RelayRow, type RelaySink, type StreamLag } from './core/relay-store.js';
import type { RowBatch } from './core/row-batch.js';
import { UpstreamClient } from './relay-upstream.js';
import { hubOf, type ReplicationServer } from './server.js';

/**
 * How to reach the upstream and talk to it, as for ReplicationClient
 * (`host`/`port` or a `transport` factory, `serverName` the upstream must
 * announce, `auth` sent as AUTH, `name` sent as NAME), and:
 */
export interface ReplicationRelayOptions extends SessionOptions {
  /**
   * Once caught up, the server announces the upstream's SERVER name to
   * connections opened from then on (default false: the server's own name).
   */
  adoptServerName?: boolean;
  /** Catch-up rows held per stream before complete tokens are stored early (default 100,000). */
  maxHeldRows?: number;
  maxHeldBytes?: number;
  /** The relay's clock (ms): state ages, held-row ages (default Date.now). */
  clock?: () => number;
}

export type UpstreamState = 'connecting' | 'connected' | 'waiting' | 'closed';

export interface ReplicationRelayEvents {
  /** The upstream connection changed state. */
  state: [state: UpstreamState];
  /** The upstream sent SERVER (with the expected name, when one is set). */
  connected: [serverName: string];
  /** The upstream connection is gone; the next try is in retryInMs. */
  disconnected: [reason: string, retryInMs: number];
  /** The upstream's POSITION is below what the relay holds (it went back, e.g. lost data). */
  behind: [stream: string, upstreamToken: number, head: number];
  /** A stream whose catch-up the upstream refused is served from `token` on (history before it unknown). */
  restarted: [stream: string, token: number];
  /** A wrong remote, a ping timeout, bad input, or ERROR from the upstream (code REMOTE_ERROR); only when listened to. */
  error: [err: ProtocolError];
}

export interface RelayCounters {
  connects: number;
  disconnects: number;
  rowsStored: number;
  rowsSkipped: number;
  positions: number;
  bytesIn: number;
  /** Downstream commands sent (or queued) upstream, by name. */
  forwarded: Record<string, number>;
  /** POSITIONs below the relay's head (the upstream went back). */
  behind: number;
  /** Streams followed from NOW after the upstream refused their catch-up. */
  nowStarts: number;
  /** Upstream entries the server's log could not store. */
  storeFailures: number;
}

export type { StreamLag };

export class ReplicationRelay extends EventEmitter<ReplicationRelayEvents> {
  private readonly countersNow: RelayCounters = {
    connects: 0,
    disconnects: 0,
    rowsStored: 0,
    rowsSkipped: 0,
    positions: 0,
    bytesIn: 0,
    forwarded: {},
    behind: 0,
    nowStarts: 0,
    storeFailures: 0,
  };
  private stateNow: UpstreamState = 'connecting';
  private stateSinceMs: number;
  private upstreamName: string | null = null;
  private lastReason: string | null = null;
  /**
   * Resolves with the upstream's SERVER name once every stream has had its
   * first POSITION (the server then serves what the upstream has), or with
   * null when the relay is closed first.
   */
  readonly ready: Promise<string | null>;
  private resolveReady!: (name: string | null) => void;
  private isReady = false;
  private started = false;
  private readonly hub: ReplicationHub;
  private readonly store: RelayStore;
  private readonly client: UpstreamClient;
  private readonly log: Logger;
  private readonly clock: () => number;
  private readonly upstreamAddress: string;
  /** Every stream the server declares: the relay follows them all. */
  private readonly streams: readonly string[];
  /**
   * The log failed an entry: nothing more is stored until every stream is
   * followed again from its stored head on a fresh upstream connection, so
   * the lost entry comes again and nothing after it leaves a gap.
   */
  private storeBroken = false;
  /** Registered with the hub as a writer: subscribers' commands, presence folded, go upstream. */
  private readonly link: MasterLink = { masterCommand: (cmd) => this.toUpstream(cmd) };

  constructor(
    private readonly server: ReplicationServer,
    private readonly options: ReplicationRelayOptions,
  ) {
    super();
    if (options.transport === undefined && options.port === undefined) {
      throw new TypeError('a relay needs the upstream\'s `port` (and `host`) or a `transport`');
    }
    this.hub = hubOf(server);
    this.clock = options.clock ?? Date.now;
    this.stateSinceMs = this.clock();
    this.log = options.logger ?? pino({ level: 'silent' });
    const host = options.host ?? '127.0.0.1';
    this.upstreamAddress = options.transport !== undefined ? 'custom transport' : `${host}:${options.port}`;
    this.ready = new Promise((resolve) => (this.resolveReady = resolve));
    const streams = (this.streams = [...this.hub.streams()].map((s) => s.name));
    for (const s of this.hub.streams()) {
      // The first REPLICATE of a stream the relay never had is from 0, so what it
      // stores is complete from 0 (until a refused catch-up restarts the log at NOW):
      // an empty log's history is known to start at 0, not unknown.
      if (s.log.head === 0 && s.log.retainedRows === 0) s.log.restartAt(0);
    }
    this.store = new RelayStore(this.sink(), streams, this.heldLimits(), {
      stored: (_stream, _token, rows) => (this.countersNow.rowsStored += rows),
      skipped: (_stream, _token, rows) => (this.countersNow.rowsSkipped += rows),
      behind: (stream, upstreamToken, head) => {
        this.countersNow.behind++;
        this.log.warn(
          { stream, upstreamToken, head },
          'upstream is behind the relay (it went back): rows up to the relay\'s head are skipped until it passes it',
        );
        this.emit('behind', stream, upstreamToken, head);
      },
      restarted: (stream, token) => {
        this.log.info({ stream, token }, 'stream followed from NOW: the relay serves it from this token on');
        this.emit('restarted', stream, token);
      },
    });
    const from: Record<string, number> = {};
    for (const s of streams) from[s] = server.head(s);
    const transport = options.transport ?? tcpClientTransport(tcpTarget({ ...options, host }));
    const { adoptServerName: _adopt, maxHeldRows: _rows, maxHeldBytes: _bytes, clock: _clock, ...session } = options;
    const clientOptions = {
      ...session,
      transport,
      name: options.name ?? `replication-gateway@${os.hostname()}`,
      maxLineBytes: options.maxLineBytes ?? this.hub.limits.maxLineBytes,
      streams: from,
      // A relay serves others: it outlives a refusal (a bad upstream token is fixed upstream) and keeps trying.
      onRefused: options.onRefused ?? 'retry',
      // The relay logs the upstream's comings and goings itself; the session's own lines only when they warn.
      logger: this.log.child({ component: 'upstream' }, { level: this.log.isLevelEnabled('warn') ? 'warn' : this.log.level }),
    };
    this.client = new UpstreamClient(
      clientOptions,
      {
        connecting: () => {
          if (this.stateNow === 'waiting') this.setState('connecting');
        },
        opened: () => {
          this.storeBroken = false;
          this.store.connectionOpened();
        },
        lost: () => {
          this.store.connectionLost();
          if (this.storeBroken) this.followFromStoredHeads();
        },
      },
      this.clock,
    );
    this.client.on('connected', (name: string) => this.onConnected(name));
    this.client.on('disconnected', (reason: string, retryInMs: number) => this.onDisconnected(reason, retryInMs));
    this.client.on('rows', (stream: string, token: number, rows: readonly RdataCommand[], batch: RowBatch) => {
      const relayRows: RelayRow[] = new Array(rows.length);
      for (let i = 0; i < rows.length; i++) relayRows[i] = { token: rows[i]!.token, line: batch.line(i), json: rows[i]!.rowJson };
      this.store.rows(stream, token, relayRows, this.clock());
    });
    this.client.on('position', (stream: string, token: number) => this.onPosition(stream, token));
    this.client.on('error', (err: ProtocolError) => {
      this.log.warn({ code: err.code, upstream: this.address }, `upstream: ${err.message}`);
      if (err.code === 'REMOTE_ERROR') this.onRemoteError(err.message);
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
  }

  /** `host:port` of the upstream (or `custom transport`). */
  get address(): string {
    return this.upstreamAddress;
  }

  get state(): UpstreamState {
    return this.stateNow;
  }

  get connected(): boolean {
    return this.stateNow === 'connected';
  }

  /** When the current state began (ms, the relay's clock). */
  get stateSince(): number {
    return this.stateSinceMs;
  }

  /** The name the upstream announced last; null before it did. */
  get upstreamServerName(): string | null {
    return this.upstreamName;
  }

  /** When the upstream last sent bytes (ms), null before any. */
  get lastReceivedAt(): number | null {
    return this.client.lastReceivedAt;
  }

  /** Why the last upstream connection ended; null before any did. */
  get lastDisconnectReason(): string | null {
    return this.lastReason;
  }

  /** What the relay has done so far (metrics). */
  get counters(): Readonly<RelayCounters> {
    this.countersNow.bytesIn = this.client.bytesIn;
    return this.countersNow;
  }

  /** Commands waiting for the upstream to come back. */
  get queuedCommands(): number {
    return this.client.queuedCommands;
  }

  /** Commands dropped from the full queue while the upstream was away. */
  get droppedCommands(): number {
    return this.client.droppedCommands;
  }

  /** How far each stream is behind the upstream, now. */
  lag(): StreamLag[] {
    return this.store.lag(this.clock());
  }

  /** Connects to the upstream and keeps reconnecting until close(); subscribers' commands go upstream from now on. */
  start(): this {
    if (this.started) return this;
    this.started = true;
    this.log.info({ upstream: this.address, streams: this.streams.length }, 'relay connecting to the upstream');
    this.hub.addWriter(this.link);
    this.client.start();
    return this;
  }

  /** Stops following the upstream (the server keeps serving what it has); resolves once the connection is closed. */
  close(): Promise<void> {
    this.hub.removeWriter(this.link);
    this.setState('closed');
    this.resolveReady(null);
    return this.client.close();
  }

  /**
   * Complete upstream tokens go into the server's logs, with the upstream's
   * tokens and bytes. The relay's head is the log's last appended token: an
   * entry still being stored is not asked for again.
   */
  private sink(): RelaySink {
    const hub = this.hub;
    const store = (stream: string, token: number, write: () => void | Promise<void>): void => {
      if (this.storeBroken) return; // comes again after the reconnect
      try {
        const stored = write();
        if (stored !== undefined) stored.catch((err: unknown) => this.storeFailed(stream, token, err));
      } catch (err) {
        this.storeFailed(stream, token, err);
      }
    };
    return {
      head: (stream) => hub.requireStream(stream).log.lastAppended,
      append: (stream, token, bytes, rows) => store(stream, token, () => hub.appendEncoded(stream, token, bytes, rows)),
      advance: (stream, token) => store(stream, token, () => hub.advance(hub.requireStream(stream), token)),
      restart: (stream, token) => hub.restart(hub.requireStream(stream), token),
    };
  }

  /**
   * The log failed an entry (subscribers never see it): drop the upstream
   * connection and follow every stream again from its stored head, as a
   * writer whose rows could not be stored is closed and resends them.
   */
  private storeFailed(stream: string, token: number, err: unknown): void {
    this.countersNow.storeFailures++;
    this.log.error({ stream, token, err: (err as Error).message }, 'the stream log could not store upstream rows: check the log store');
    if (this.storeBroken) return;
    this.storeBroken = true;
    // Dropped, the connection re-follows as it goes (lost()); none open: the next one starts from the stored heads.
    if (this.client.connectionOpen) this.client.dropConnection();
    else this.followFromStoredHeads();
  }

  private followFromStoredHeads(): void {
    this.store.dropHeld();
    for (const s of this.streams) this.client.follow(s, this.server.head(s));
  }

  private heldLimits(): { maxHeldRows?: number; maxHeldBytes?: number } {
    const limits: { maxHeldRows?: number; maxHeldBytes?: number } = {};
    if (this.options.maxHeldRows !== undefined) limits.maxHeldRows = this.options.maxHeldRows;
    if (this.options.maxHeldBytes !== undefined) limits.maxHeldBytes = this.options.maxHeldBytes;
    return limits;
  }

  /** A subscriber's command for the master; USER_SYNC comes folded by the hub and is re-announced on every connect. */
  private toUpstream(cmd: ClientActionCommand): void {
    this.countersNow.forwarded[cmd.name] = (this.countersNow.forwarded[cmd.name] ?? 0) + 1;
    if (cmd.name === 'USER_SYNC') this.client.userSync(cmd.userId, cmd.state === 'start');
    else this.client.forward(cmd);
  }

  private onPosition(stream: string, token: number): void {
    this.countersNow.positions++;
    this.store.position(stream, token);
    if (this.isReady || !this.store.synced) return;
    this.isReady = true;
    const name = this.upstreamName ?? 'localhost';
    this.log.info({ upstreamServerName: name }, 'relay caught up with the upstream');
    if (this.options.adoptServerName === true) this.hub.setServerName(name);
    this.resolveReady(name);
  }

  /**
   * A refused catch-up of a stream the relay never synced: follow it from NOW
   * (the REPLICATE goes now if the connection is still open, else on the
   * reconnect). The store refuses streams with history, so this cannot loop.
   */
  private onRemoteError(message: string): void {
    const refusal = catchUpRefusal(message);
    if (refusal === null) return;
    for (const stream of this.store.catchUpRefused(refusal.stream)) {
      this.countersNow.nowStarts++;
      this.log.warn(
        { stream, upstream: this.address },
        'upstream refused the catch-up of a stream the relay never had: following it from NOW (no history before its POSITION)',
      );
      this.client.follow(stream, 'NOW');
    }
  }

  private onConnected(name: string): void {
    this.countersNow.connects++;
    if (this.upstreamName !== null && this.upstreamName !== name) {
      this.log.warn({ was: this.upstreamName, now: name }, 'upstream announced another server name');
    }
    this.upstreamName = name;
    this.setState('connected');
    this.log.info({ upstream: this.address, serverName: name }, 'upstream connected');
    this.emit('connected', name);
  }

  private onDisconnected(reason: string, retryInMs: number): void {
    if (this.stateNow === 'closed') return;
    if (this.stateNow === 'connected') this.countersNow.disconnects++;
    this.lastReason = reason;
    this.setState('waiting');
    this.log.warn({ upstream: this.address, reason, retryInMs }, 'upstream connection lost');
    this.emit('disconnected', reason, retryInMs);
  }

  private setState(state: UpstreamState): void {
    if (this.stateNow === state) return;
    this.stateNow = state;
    this.stateSinceMs = this.clock();
    this.emit('state', state);
  }
}
