/**
 * The master side of the gateway without I/O: the declared streams and their
 * logs, every connection, and the fan-out between them. A row is stored once
 * as its line bytes and the same Buffer goes to every live subscriber;
 * connections write what a tick produced in one vectored write when the
 * binding calls `flush()`.
 */
import { encodeCommand, encodePosition, type ClientActionCommand, type CommandName } from './commands.js';
import { ProtocolError } from './errors.js';
import type { LogEntry, StreamLog } from './stream-log.js';
import type { Transport } from './transport.js';
import { ServerConnection } from './server-connection.js';
import type { ConnectionInfo, HubOptions, StreamConfig } from './hub-types.js';

export interface StreamState {
  readonly name: string;
  readonly log: StreamLog;
  readonly tooOld: 'error' | 'jump';
  /** Connections at the head of this stream, receiving rows as they are stored. */
  readonly live: Set<ServerConnection>;
  rowsWritten: number;
}

const EMPTY = Buffer.alloc(0);

export class ReplicationHub {
  private readonly streamMap = new Map<string, StreamState>();
  private readonly connectionSet = new Set<ServerConnection>();
  private readonly writers = new Set<ServerConnection>();
  private dirty: ServerConnection[] = [];
  private readonly dirtySet = new Set<ServerConnection>();
  private flushScheduled = false;
  private nextId = 1;
  /** Connections on which each user is syncing: a writer hears `end` only when none is left. */
  private readonly syncing = new Map<string, number>();
  /** REPLICATE tokens ahead of the head, answered with the head. */
  tokensAhead = 0;
  /** Commands received from all connections, by name (plain counters: read by metrics, bumped per line). */
  readonly commandsIn: Record<CommandName, number> = {
    SERVER: 0, RDATA: 0, POSITION: 0, ERROR: 0, PING: 0, SYNC: 0, NAME: 0, REPLICATE: 0,
    USER_SYNC: 0, FEDERATION_ACK: 0, REMOVE_PUSHER: 0, INVALIDATE_CACHE: 0, USER_IP: 0, AUTH: 0,
  };

  constructor(readonly options: HubOptions) {
    for (const s of options.streams) {
      const config: StreamConfig = typeof s === 'string' ? { name: s } : s;
      if (!/^[A-Za-z0-9_.-]+$/.test(config.name) || config.name === 'ALL') {
        throw new Error(`invalid stream name '${config.name}': use letters, digits, '_', '.', '-' (and not ALL)`);
      }
      this.streamMap.set(config.name, {
        name: config.name,
        log: options.createLog(config.name),
        tooOld: config.tooOld ?? 'error',
        live: new Set(),
        rowsWritten: 0,
      });
    }
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

  /** A new connection: greets the peer, or refuses it past the connection limit. */
  accept(transport: Transport, transportKind: string, remoteAddress: string): ServerConnection {
    const sent = this.options.events.sent;
    if (sent !== undefined) transport = observedTransport(transport, transportKind, sent);
    const conn = new ServerConnection(this, transport, this.nextId++, transportKind, remoteAddress);
    this.connectionSet.add(conn);
    this.options.events.opened?.(conn);
    if (this.connectionSet.size > this.options.maxConnections) {
      conn.close('too_many_connections', `too many connections (limit ${this.options.maxConnections}); try again later`);
    }
    return conn;
  }

  // ------------------------------------------------------------ writing

  /** Stores an entry and hands its bytes to every live subscriber of the stream. */
  append(stream: StreamState, entry: LogEntry): void {
    stream.log.append(entry);
    stream.rowsWritten += entry.rows;
    for (const conn of stream.live) conn.enqueue(entry.bytes, entry.lines, stream, entry.lastToken);
    this.options.events.written?.(stream.name, entry.rows, entry.lastToken);
  }

  /** In-process publish of encoded lines (a complete batch sharing `token`). */
  appendEncoded(streamName: string, token: number, bytes: Buffer, rows: number): void {
    const stream = this.requireStream(streamName);
    if (token <= stream.log.head) {
      throw new ProtocolError('TOKEN_NOT_RISING', `token ${token} for ${streamName} is not above the stream's head ${stream.log.head}`);
    }
    this.append(stream, { firstToken: token, lastToken: token, bytes, lines: rows, rows });
  }

  /**
   * Moves a stream's position without rows: live subscribers get
   * `POSITION <stream> <token>`; the log stores the advance without a line,
   * so a catch-up over it ends with one POSITION at the head, as in Synapse.
   */
  advance(stream: StreamState, token: number): void {
    stream.log.append({ firstToken: token, lastToken: token, bytes: EMPTY, lines: 0, rows: 0 });
    const bytes = encodePosition(stream.name, token);
    for (const conn of stream.live) conn.enqueue(bytes, 1, stream, token);
    this.options.events.written?.(stream.name, 0, token);
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
    const bytes = encodePosition(stream.name, token);
    for (const conn of stream.live) conn.enqueue(bytes, 1, stream, token);
    this.options.events.written?.(stream.name, 0, token);
  }

  requireStream(name: string): StreamState {
    const stream = this.streamMap.get(name);
    if (!stream) throw new Error(`unknown stream '${name}': declared streams are ${[...this.streamMap.keys()].join(', ')}`);
    return stream;
  }

  // ------------------------------------------------------------ client commands

  /** A subscriber's command for the master: forwarded verbatim to every writer, and reported. */
  clientCommand(from: ServerConnection, cmd: ClientActionCommand): void {
    if (this.writers.size > 0) {
      const bytes = encodeCommand(cmd);
      for (const w of this.writers) if (w !== from) w.forward(bytes);
    }
    this.options.events.clientCommand?.(from, cmd);
  }

  /** Presence bookkeeping across connections. */
  userSyncing(conn: ConnectionInfo, userId: string, syncing: boolean, lastSyncMs: number): void {
    const count = this.syncing.get(userId) ?? 0;
    if (syncing) this.syncing.set(userId, count + 1);
    else if (count <= 1) this.syncing.delete(userId);
    else this.syncing.set(userId, count - 1);
    this.options.events.presence?.({ userId, syncing, lastSyncMs, connection: conn });
  }

  /** Users syncing on any connection. */
  syncingUsers(): string[] {
    return [...this.syncing.keys()];
  }

  /** A connection became a writer: it first hears every user syncing now, as a worker re-sends them. */
  addWriter(conn: ServerConnection): void {
    this.writers.add(conn);
    const now = this.options.clock();
    for (const userId of this.syncing.keys()) {
      conn.forward(encodeCommand({ name: 'USER_SYNC', userId, state: 'start', lastSyncMs: now }));
    }
  }

  tokenAhead(conn: ServerConnection, stream: string, token: number, head: number): void {
    this.tokensAhead++;
    this.options.events.tokenAhead?.(conn, stream, token, head);
  }

  // ------------------------------------------------------------ lifecycle

  /** A connection closed: out of fan-out, and its syncing users end. */
  detach(conn: ServerConnection): void {
    for (const stream of this.streamMap.values()) stream.live.delete(conn);
    this.writers.delete(conn);
    const now = this.options.clock();
    for (const userId of conn.syncingUsers.keys()) {
      this.userSyncing(conn, userId, false, now);
      if (!this.syncing.has(userId)) {
        const bytes = encodeCommand({ name: 'USER_SYNC', userId, state: 'end', lastSyncMs: now });
        for (const w of this.writers) w.forward(bytes);
      }
    }
    conn.syncingUsers.clear();
  }

  /** The transport is gone: the connection leaves the sweep. */
  forget(conn: ServerConnection): void {
    this.connectionSet.delete(conn);
  }

  markDirty(conn: ServerConnection): void {
    if (this.dirtySet.has(conn)) return;
    this.dirtySet.add(conn);
    this.dirty.push(conn);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.options.scheduleFlush();
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
    const now = this.options.clock();
    for (const conn of this.connectionSet) conn.tick(now);
  }

  /** `ERROR server shutting down` to every connection, then close them. */
  shutdown(): void {
    for (const conn of [...this.connectionSet]) conn.close('shutdown', 'server shutting down');
  }
}

/** A transport that reports what is written to it (only built when someone listens). */
function observedTransport(
  inner: Transport,
  transportKind: string,
  sent: (chunks: readonly Buffer[], transportKind: string) => void,
): Transport {
  return {
    write(chunks) {
      sent(chunks, transportKind);
      return inner.write(chunks);
    },
    end: () => inner.end(),
    destroy: () => inner.destroy(),
  };
}
