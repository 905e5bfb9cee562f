/**
 * The master side of the gateway without I/O: the declared streams and their
 * logs, every connection, the subscriptions and the fan-out between them.
 * A row is stored once as its line bytes; when the log confirms an entry
 * stored, the same Buffer goes to every live subscriber of its stream, and
 * connections write what a tick produced in one vectored write when the
 * binding calls `flush()`:
 *
 *     < REPLICATE events 40        a subscription reading the log from 40 (catch-up),
 *     > RDATA events 41 [...]      in chunks as its socket drains, then
 *     > POSITION events 57         joining the head: live from here on
 *
 * Connections reach the hub only through ConnectionHost (connection-host.ts).
 */
import { GENERATION_NONE, type ClientActionCommand, type CommandName } from './commands.js';
import { unknownStream } from './access-refusal.js';
import { AddressCounts } from './address-counts.js';
import { AuthFailures, hostOf } from './auth-failures.js';
import { CredentialSet } from './credentials.js';
import { v1Text } from './dialects/v1-text.js';
import { PartialLineBudget } from './partial-line-budget.js';
import { advanceEntry, tokenNotRising, type StreamLog } from './stream-log.js';
import { StreamState, Subscriptions } from './subscriptions.js';
import { FollowedStreams, followsNoDeployment } from './followed-streams.js';
import type { Transport } from './transport.js';
import { ServerConnection } from './server-connection.js';
import type { ConnectionHost, ConnectionLimits, MasterLink, Peer, SubscribeRequest } from './connection-host.js';
import type { ServerView } from './server-view.js';
import type { HubEvents, HubOptions, StreamConfig, SubscriptionState } from './hub-types.js';

export { StreamState } from './subscriptions.js';

export class ReplicationHub implements ConnectionHost, ServerView {
  private readonly streamMap = new Map<string, StreamState>();
  private readonly connectionSet = new Set<ServerConnection>();
  private readonly subscriptions: Subscriptions;
  /** The streams followed from a Synapse deployment (serve --synapse-redis); null: none. */
  private followedStreams: FollowedStreams | null = null;
  private readonly writers = new Set<MasterLink>();
  private dirty: ServerConnection[] = [];
  private readonly dirtySet = new Set<ServerConnection>();
  private flushScheduled = false;
  private nextId = 1;
  private currentOptions: Readonly<HubOptions>;
  private currentLimits: ConnectionLimits;
  readonly authFailures = new AuthFailures();
  readonly lineBudget = new PartialLineBudget(() => this.currentOptions.maxPartialLineBytes);
  private readonly perAddress = new AddressCounts();
  readonly events: Partial<HubEvents>;
  private readonly clock: () => number;
  readonly catchUpChunkBytes: number;
  /** Connections on which each user is syncing: a writer hears `end` only when none is left. */
  private readonly syncing = new Map<string, number>();
  /** REPLICATE tokens ahead of the head, answered with the head. */
  tokensAhead = 0;
  /** Commands received from all connections, by name (plain counters: read by metrics, bumped per line). */
  readonly commandsIn = commandCounters();
  /** Commands handed to connections' transports, by name (the same kind of counters). */
  readonly commandsOut = commandCounters();
  readonly generation: string | null;

  constructor(options: HubOptions) {
    this.currentOptions = Object.freeze({ ...options });
    this.currentLimits = limitsOf(options);
    this.events = options.events;
    this.clock = options.clock;
    this.catchUpChunkBytes = options.catchUpChunkBytes;
    this.generation = options.generation ?? null;
    if (this.generation !== null && (!/^[\x21-\x7e]+$/.test(this.generation) || this.generation === GENERATION_NONE)) {
      throw new Error(`invalid generation id '${this.generation}': use one word of printable ASCII (not '${GENERATION_NONE}', which means no generation)`);
    }
    // Before the streams: each stream hands it the subscriptions that fall behind.
    this.subscriptions = new Subscriptions(this.streamMap, this);
    for (const s of options.streams) {
      const config: StreamConfig = typeof s === 'string' ? { name: s } : s;
      if (!/^[A-Za-z0-9_.-]+$/.test(config.name) || config.name === 'ALL') {
        throw new Error(`invalid stream name '${config.name}': use letters, digits, '_', '.', '-' (and not ALL)`);
      }
      const log = options.createLog(config.name);
      this.streamMap.set(config.name, new StreamState(config.name, log, config.tooOld ?? 'error', this.events, this.subscriptions));
    }
  }

  /** The options the hub runs with, frozen (setServerName makes a new object). */
  get options(): Readonly<HubOptions> {
    return this.currentOptions;
  }

  /** What connections are held to now; a reconfigure makes a new frozen object, never edits this one. */
  get limits(): ConnectionLimits {
    return this.currentLimits;
  }

  get serverName(): string {
    return this.currentOptions.serverName;
  }

  /** The name sent in `SERVER` to connections opened from now on. */
  setServerName(serverName: string): void {
    this.currentOptions = Object.freeze({ ...this.currentOptions, serverName });
  }

  /**
   * Settings that can change while running (SIGHUP): credentials and whether
   * AUTH is required apply to every AUTH and command from now on (a connection
   * already authenticated keeps its role); queue limits apply to connections
   * opened from now on; the connection limits to the next accept; the line
   * timeout to the next sweep and the budget of unfinished lines to the next chunk.
   */
  reconfigure(change: Partial<Pick<HubOptions, LiveHubOption>>): void {
    this.currentOptions = Object.freeze({ ...this.currentOptions, ...change });
    this.currentLimits = limitsOf(this.currentOptions);
  }

  now(): number {
    return this.clock();
  }

  streams(): IterableIterator<StreamState> {
    return this.streamMap.values();
  }

  stream(name: string): StreamState | undefined {
    return this.streamMap.get(name);
  }

  connections(): IterableIterator<ServerConnection> {
    return this.connectionSet.values();
  }

  get connectionCount(): number {
    return this.connectionSet.size;
  }

  /**
   * A new connection: greets the peer (authenticated already when its upgrade
   * presented a secret), or refuses it past the connection limit, in total or
   * from its host.
   */
  accept(transport: Transport, transportKind: string, remoteAddress: string, opening: ConnectionOpening = FROM_PROGRAM): ServerConnection {
    const conn = new ServerConnection(this, transport, this.nextId++, transportKind, remoteAddress, this.currentOptions.serverName, opening.fromPage);
    this.connectionSet.add(conn);
    this.subscriptions.add(conn);
    const host = hostOf(remoteAddress);
    const fromHost = this.perAddress.add(host);
    this.events.opened?.(conn);
    const { maxConnections, maxConnectionsPerAddress } = this.currentOptions;
    if (this.connectionSet.size > maxConnections) {
      conn.close('too_many_connections', `too many connections (limit ${maxConnections}); try again later`);
    } else if (fromHost > maxConnectionsPerAddress) {
      conn.close('too_many_connections', `too many connections from ${host} (limit ${maxConnectionsPerAddress} per address); try again later`);
    } else if (opening.secret !== undefined) {
      conn.authenticateByUpgrade(opening.secret);
    }
    return conn;
  }

  // ------------------------------------------------------------ writing

  /** The log a writer appends to (permissions are the connection's). */
  logOf(name: string): StreamLog {
    const stream = this.streamMap.get(name);
    if (!stream) throw unknownStream(name);
    return stream.log;
  }

  /**
   * In-process publish of encoded lines (a complete batch sharing `token`):
   * returns once stored, or a promise when the log answers later. Fan-out
   * follows the log's confirmation.
   */
  appendEncoded(streamName: string, token: number, bytes: Buffer, rows: number): void | Promise<void> {
    const log = this.requireStream(streamName).log;
    if (token <= log.lastAppended) throw tokenNotRising(streamName, token, log.lastAppended);
    return log.append({ firstToken: token, lastToken: token, bytes, lines: rows, rows });
  }

  /**
   * Moves a stream's position without rows: the log stores the advance
   * without a line, so a catch-up over it ends with one POSITION at the head,
   * as in Synapse; live subscribers get `POSITION <stream> <token>` once stored.
   */
  advance(stream: StreamState, token: number): void | Promise<void> {
    return stream.log.append(advanceEntry(token));
  }

  /**
   * The stream's history before `token` is unknown (a relay that starts
   * following its upstream from NOW): the log drops its entries and starts
   * at `token`, and live subscribers get `POSITION <stream> <token>`. A
   * subscriber still catching up fails with the too-old ERROR on its next
   * read, as when entries are evicted under it. Not an advance: a stored
   * POSITION would claim there were no rows before `token`.
   */
  restart(stream: StreamState, token: number): void {
    stream.log.restartAt(token);
    const bytes = v1Text.encodePosition(stream.name, token);
    for (const sub of stream.live) {
      // One that cannot take it reads the restarted log from `token`: its catch-up's POSITION carries it.
      sub.lastToken = token;
      if (!sub.peer.offer(bytes, 1, 'POSITION')) this.subscriptions.fallBehind(sub);
    }
    this.events.written?.(stream.name, 0, token);
  }

  requireStream(name: string): StreamState {
    const stream = this.streamMap.get(name);
    if (!stream) throw new Error(`unknown stream '${name}': declared streams are ${[...this.streamMap.keys()].join(', ')}`);
    return stream;
  }

  // ------------------------------------------------------------ subscriptions

  /** REPLICATE; with an instance, or of a stream followed but not declared, of a followed Synapse stream (followed-streams.ts). */
  subscribe(peer: Peer, request: SubscribeRequest): void {
    const followed = this.followedStreams;
    const instance = request.instance;
    if (instance !== undefined) {
      if (followed === null) throw followsNoDeployment([...this.streamMap.keys()]);
      return followed.subscribe(peer, { ...request, instance });
    }
    if (followed !== null && !this.streamMap.has(request.stream) && followed.has(request.stream)) return followed.subscribeV1(peer, request);
    this.subscriptions.subscribe(peer, request);
  }

  /** The followed Synapse streams, served from now on: serve --synapse-redis hands it each pair's log. */
  followed(): FollowedStreams {
    return (this.followedStreams ??= new FollowedStreams(this.subscriptions));
  }

  subscribeAll(peer: Peer, readable: ReadonlySet<string> | null): void {
    this.subscriptions.subscribeAll(peer, readable);
  }

  subscriptionsOf(peer: Peer): SubscriptionState[] {
    return this.subscriptions.of(peer);
  }

  catchUp(peer: Peer): void {
    this.subscriptions.catchUp(peer);
  }

  /** A REPLICATE token was ahead of the head: answered with the head, counted and reported. */
  tokenAhead(peer: Peer, stream: string, token: number, head: number): void {
    this.tokensAhead++;
    this.events.tokenAhead?.(peer, stream, token, head);
  }

  // ------------------------------------------------------------ client commands

  /**
   * A subscriber's command for the master: reported, and sent as its line to
   * every writer link but its sender. USER_SYNC reaches the links folded, by
   * userSyncing().
   */
  clientCommand(from: Peer, cmd: ClientActionCommand): void {
    if (cmd.name !== 'USER_SYNC' && this.writers.size > 0) {
      const line = v1Text.encode(cmd);
      for (const w of this.writers) if (w !== from) w.masterCommand(cmd, line);
    }
    this.events.clientCommand?.(from, cmd);
  }

  /**
   * Presence bookkeeping across connections, folded once for every writer
   * link: `start` when a user's first connection syncs, `end` when its last
   * stops (or closes).
   */
  userSyncing(conn: Peer, userId: string, syncing: boolean, lastSyncMs: number): void {
    const count = this.syncing.get(userId) ?? 0;
    if (syncing) this.syncing.set(userId, count + 1);
    else if (count <= 1) this.syncing.delete(userId);
    else this.syncing.set(userId, count - 1);
    if (syncing ? count === 0 : count === 1) {
      const cmd: ClientActionCommand = { name: 'USER_SYNC', userId, state: syncing ? 'start' : 'end', lastSyncMs };
      const line = v1Text.encode(cmd);
      for (const w of this.writers) if (w !== conn) w.masterCommand(cmd, line);
    }
    this.events.presence?.({ userId, syncing, lastSyncMs, connection: conn });
  }

  /** Users syncing on any connection. */
  syncingUsers(): string[] {
    return [...this.syncing.keys()];
  }

  /**
   * A writer link (a writer connection, a relay's upstream): it first hears
   * every user syncing now, as a worker re-sends them, then every
   * subscriber's command for the master.
   */
  addWriter(link: MasterLink): void {
    this.writers.add(link);
    const now = this.clock();
    for (const userId of this.syncing.keys()) {
      const cmd: ClientActionCommand = { name: 'USER_SYNC', userId, state: 'start', lastSyncMs: now };
      link.masterCommand(cmd, v1Text.encode(cmd));
    }
  }

  /** The link hears nothing more (a relay closing; a writer connection leaves by detach()). */
  removeWriter(link: MasterLink): void {
    this.writers.delete(link);
  }

  // ------------------------------------------------------------ lifecycle

  /** A connection closes: out of fan-out, and its syncing users end. */
  detach(peer: Peer, syncingUsers: Iterable<string>): void {
    this.subscriptions.remove(peer);
    this.followedStreams?.forget(peer);
    this.writers.delete(peer);
    const now = this.clock();
    for (const userId of syncingUsers) this.userSyncing(peer, userId, false, now);
  }

  /** The transport is gone: the connection leaves the sweep. */
  forget(peer: Peer): void {
    if (this.connectionSet.delete(peer as ServerConnection)) this.perAddress.remove(hostOf(peer.remoteAddress));
    this.subscriptions.remove(peer);
    this.followedStreams?.forget(peer);
  }

  markDirty(peer: Peer): void {
    const conn = peer as ServerConnection;
    if (this.dirtySet.has(conn)) return;
    this.dirtySet.add(conn);
    this.dirty.push(conn);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.currentOptions.scheduleFlush();
    }
  }

  /** Writes out everything queued since the last flush. */
  flush(): void {
    this.flushScheduled = false;
    const dirty = this.dirty;
    this.dirty = [];
    this.dirtySet.clear();
    for (const conn of dirty) conn.flush();
  }

  /** The periodic sweep over all connections (one clock, not a timer each). */
  sweep(): void {
    const now = this.clock();
    for (const conn of this.connectionSet) conn.tick(now);
  }

  /** `ERROR server shutting down` to every connection, then close them. */
  shutdown(): void {
    for (const conn of [...this.connectionSet]) conn.close('shutdown', 'server shutting down');
  }
}


/** A transport that reports what is written to it (only built when someone listens). */
function commandCounters(): Record<CommandName, number> {
  return {
    SERVER: 0, RDATA: 0, POSITION: 0, ERROR: 0, PING: 0, SYNC: 0, NAME: 0, REPLICATE: 0,
    USER_SYNC: 0, FEDERATION_ACK: 0, REMOVE_PUSHER: 0, INVALIDATE_CACHE: 0, USER_IP: 0, AUTH: 0, GENERATION: 0,
  };
}

/**
 * How a connection was opened. `fromPage`: a browser page opened it (its
 * upgrade carried an Origin), so it only reads unless its credential allows
 * more; `secret`: the credential its upgrade presented (a cookie).
 */
export interface ConnectionOpening {
  fromPage: boolean;
  secret?: string;
}

const FROM_PROGRAM: ConnectionOpening = { fromPage: false };

/** The hub options a running hub can take new values of (reconfigure). */
export type LiveHubOption =
  | 'credentials'
  | 'requireAuth'
  | 'maxQueueCommands'
  | 'maxQueueBytes'
  | 'maxConnections'
  | 'maxConnectionsPerAddress'
  | 'maxPartialLineBytes'
  | 'lineTimeoutMs'
  | 'maxStallMs';

function limitsOf(options: Readonly<HubOptions>): ConnectionLimits {
  return Object.freeze({
    credentials: new CredentialSet(Object.freeze([...options.credentials])),
    requireAuth: options.requireAuth,
    maxLineBytes: options.maxLineBytes,
    maxQueueCommands: options.maxQueueCommands,
    maxQueueBytes: options.maxQueueBytes,
    maxStallMs: options.maxStallMs,
    pingIntervalMs: options.pingIntervalMs,
    pingTimeoutMs: options.pingTimeoutMs,
    lineTimeoutMs: options.lineTimeoutMs,
  });
}
