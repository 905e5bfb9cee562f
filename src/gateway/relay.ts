/**
 * Relay mode: the gateway follows every declared stream of an upstream
 * master (Synapse 2017 or another gateway) as a v1 client, stores what it
 * gets with the upstream's tokens and bytes (relay-store.ts), and sends its
 * own subscribers' client commands upstream.
 *
 *     < NAME replication-gateway@host       (AUTH first with --upstream-token)
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
 * POSITION's token (relay-store.ts). A stream with history is never skipped.
 */
import { EventEmitter } from 'node:events';
import os from 'node:os';
import type { Logger } from 'pino';
import { tcpClientTransport } from '../bindings/tcp-client-transport.js';
import { ReplicationClient, type ReplicationClientOptions } from '../client.js';
import type { ClientTransport, TransportFactory } from '../core/client-transport.js';
import type { ClientActionCommand, RdataCommand } from '../core/commands.js';
import type { ProtocolError } from '../core/errors.js';
import type { PresenceChange } from '../core/hub-types.js';
import type { RowBatch } from '../core/row-batch.js';
import type { ReplicationServer } from '../server.js';
import type { HostPort } from './options.js';
import { catchUpRefusal } from '../core/catch-up-refusal.js';
import { RelayStore, type RelayRow } from '../core/relay-store.js';

export interface RelayOptions {
  upstream: HostPort;
  /** The SERVER name the upstream must announce; null: any (a change is logged). */
  upstreamName: string | null;
  /** Sent as AUTH first. */
  upstreamToken: string | null;
  /** Client commands held while the upstream is away. */
  queueCommands: number;
  /** Longest line accepted from the upstream. */
  maxLineBytes: number;
  streams: readonly string[];
  logger: Logger;
  /** Sent as NAME (default replication-gateway@<hostname>). */
  clientName?: string;
}

export type UpstreamState = 'connecting' | 'connected' | 'waiting' | 'closed';

/** ReplicationClient with the hooks a relay needs: connection edges and raw command forwarding. */
class UpstreamClient extends ReplicationClient {
  relayOpened: () => void = () => {};
  relayLost: () => void = () => {};

  protected override onOpen(): void {
    this.relayOpened();
  }

  protected override onDisconnected(): void {
    this.relayLost();
  }

  /** A downstream command as it came (JSON arguments verbatim); queued while disconnected. */
  forward(cmd: ClientActionCommand): void {
    this.conn.send(cmd, Date.now());
  }

  get queuedCommands(): number {
    return this.conn.queuedCommands;
  }
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
}

export class Relay extends EventEmitter {
  readonly store: RelayStore;
  readonly counters: RelayCounters = {
    connects: 0,
    disconnects: 0,
    rowsStored: 0,
    rowsSkipped: 0,
    positions: 0,
    bytesIn: 0,
    forwarded: {},
    behind: 0,
    nowStarts: 0,
  };
  state: UpstreamState = 'connecting';
  /** The name the upstream announced last. */
  upstreamServerName: string | null = null;
  /** When the upstream last sent bytes (ms), null before any. */
  lastReceivedAt: number | null = null;
  /** When the current state began (ms). */
  stateSince = Date.now();
  lastDisconnectReason: string | null = null;
  /** Resolves with the upstream's name once every stream had its first POSITION. */
  readonly ready: Promise<string>;
  private resolveReady!: (name: string) => void;
  private isReady = false;
  private readonly client: UpstreamClient;
  private readonly log: Logger;
  /** Downstream connections on which each user is syncing. */
  private readonly syncing = new Map<string, number>();

  constructor(
    server: ReplicationServer,
    private readonly options: RelayOptions,
  ) {
    super();
    this.log = options.logger;
    this.ready = new Promise((resolve) => (this.resolveReady = resolve));
    this.store = new RelayStore(
      {
        head: (stream) => server.head(stream),
        append: (stream, token, bytes, rows) => server.appendLines(stream, token, bytes, rows),
        advance: (stream, token) => server.advance(stream, token),
        restart: (stream, token) => server.restart(stream, token),
      },
      options.streams,
      {},
      {
        stored: (_stream, _token, rows) => (this.counters.rowsStored += rows),
        skipped: (_stream, _token, rows) => (this.counters.rowsSkipped += rows),
        behind: (stream, upstreamToken, head) => {
          this.counters.behind++;
          this.log.warn(
            { stream, upstreamToken, head },
            'upstream is behind the relay (it went back): rows up to the relay\'s head are skipped until it passes it',
          );
        },
        restarted: (stream, token) => {
          this.log.info({ stream, token }, 'stream followed from NOW: the relay serves it from this token on');
        },
      },
    );
    const from: Record<string, number> = {};
    for (const s of options.streams) from[s] = server.head(s);
    const clientOptions: ReplicationClientOptions = {
      transport: this.observed(tcpClientTransport({ host: options.upstream.host, port: options.upstream.port })),
      name: options.clientName ?? `replication-gateway@${os.hostname()}`,
      maxQueuedCommands: options.queueCommands,
      maxLineBytes: options.maxLineBytes,
      streams: from,
      // The relay logs the upstream's comings and goings itself; the session's own lines only when they warn.
      logger: options.logger.child({ component: 'upstream' }, { level: 'warn' }),
    };
    if (options.upstreamName !== null) clientOptions.serverName = options.upstreamName;
    if (options.upstreamToken !== null) clientOptions.auth = options.upstreamToken;
    this.client = new UpstreamClient(clientOptions);
    this.client.relayOpened = () => this.store.connectionOpened();
    this.client.relayLost = () => this.store.connectionLost();
    this.client.on('connected', (name: string) => this.onConnected(name));
    this.client.on('disconnected', (reason: string, retryInMs: number) => this.onDisconnected(reason, retryInMs));
    this.client.on('rows', (stream: string, token: number, rows: readonly RdataCommand[], batch: RowBatch) => {
      const relayRows: RelayRow[] = new Array(rows.length);
      for (let i = 0; i < rows.length; i++) relayRows[i] = { token: rows[i]!.token, line: batch.line(i), json: rows[i]!.rowJson };
      this.store.rows(stream, token, relayRows, Date.now());
    });
    this.client.on('position', (stream: string, token: number) => {
      this.counters.positions++;
      this.store.position(stream, token);
      if (!this.isReady && this.store.synced) {
        this.isReady = true;
        this.log.info({ upstreamServerName: this.upstreamServerName }, 'relay caught up with the upstream');
        this.resolveReady(this.upstreamServerName ?? 'localhost');
      }
    });
    this.client.on('error', (err: ProtocolError) => {
      this.log.warn({ code: err.code, upstream: this.address }, `upstream: ${err.message}`);
      if (err.code === 'REMOTE_ERROR') this.onRemoteError(err.message);
    });
  }

  get address(): string {
    return `${this.options.upstream.host}:${this.options.upstream.port}`;
  }

  get connected(): boolean {
    return this.state === 'connected';
  }

  /** Commands waiting for the upstream to come back. */
  get queuedCommands(): number {
    return this.client.queuedCommands;
  }

  /** Commands dropped from the full queue while the upstream was away. */
  get droppedCommands(): number {
    return this.client.droppedCommands;
  }

  start(): void {
    this.log.info({ upstream: this.address, streams: this.options.streams.length }, 'relay connecting to the upstream');
    this.client.start();
  }

  /** A downstream subscriber's command: upstream it goes (USER_SYNC goes through presence()). */
  forward(cmd: ClientActionCommand): void {
    if (cmd.name === 'USER_SYNC') return;
    this.counters.forwarded[cmd.name] = (this.counters.forwarded[cmd.name] ?? 0) + 1;
    this.client.forward(cmd);
  }

  /**
   * Presence deltas from downstream connections, folded so the upstream hears
   * `start` when the first connection of a user syncs and `end` when the last
   * stops; every (re)connect announces the users syncing then.
   */
  presence(change: PresenceChange): void {
    const n = this.syncing.get(change.userId) ?? 0;
    if (change.syncing) {
      this.syncing.set(change.userId, n + 1);
      if (n === 0) this.userSync(change.userId, true);
    } else if (n <= 1) {
      if (n === 0) return;
      this.syncing.delete(change.userId);
      this.userSync(change.userId, false);
    } else {
      this.syncing.set(change.userId, n - 1);
    }
  }

  close(): Promise<void> {
    this.setState('closed');
    this.resolveReady(this.upstreamServerName ?? 'localhost');
    return this.client.close();
  }

  private userSync(userId: string, syncing: boolean): void {
    this.counters.forwarded['USER_SYNC'] = (this.counters.forwarded['USER_SYNC'] ?? 0) + 1;
    this.client.userSync(userId, syncing);
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
      this.counters.nowStarts++;
      this.log.warn(
        { stream, upstream: this.address },
        'upstream refused the catch-up of a stream the relay never had: following it from NOW (no history before its POSITION)',
      );
      this.client.follow(stream, 'NOW');
    }
  }

  private onConnected(name: string): void {
    this.counters.connects++;
    if (this.upstreamServerName !== null && this.upstreamServerName !== name) {
      this.log.warn({ was: this.upstreamServerName, now: name }, 'upstream announced another server name');
    }
    this.upstreamServerName = name;
    this.setState('connected');
    this.log.info({ upstream: this.address, serverName: name }, 'upstream connected');
  }

  private onDisconnected(reason: string, retryInMs: number): void {
    if (this.state === 'closed') return;
    if (this.state === 'connected') this.counters.disconnects++;
    this.lastDisconnectReason = reason;
    this.setState('waiting');
    this.log.warn({ upstream: this.address, reason, retryInMs }, 'upstream connection lost');
  }

  private setState(state: UpstreamState): void {
    if (this.state === state) return;
    this.state = state;
    this.stateSince = Date.now();
    this.emit('state', state);
  }

  /** The TCP transport, noting when bytes arrive (the age of the upstream's last command). */
  private observed(factory: TransportFactory): TransportFactory {
    return () => {
      const inner: ClientTransport = factory();
      if (this.state === 'waiting') this.setState('connecting');
      return {
        connect: (events) =>
          inner.connect({
            ...events,
            data: (chunk) => {
              this.lastReceivedAt = Date.now();
              this.counters.bytesIn += chunk.length;
              events.data(chunk);
            },
          }),
        write: (chunks) => inner.write(chunks),
        close: () => inner.close(),
        pause: () => inner.pause?.(),
        resume: () => inner.resume?.(),
      };
    };
  }
}
