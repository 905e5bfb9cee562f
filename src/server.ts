/**
 * The replication server as a library: declared streams held in memory,
 * served over TCP to Synapse-style workers, written by TCP writers or by
 * `publish()` in-process.
 *
 *     const server = new ReplicationServer({ serverName: 'hs.example', writerToken: 's3cret' });
 *     await server.listen({ host: '127.0.0.1', port: 9092 });
 *     await server.publish('events', [['$ev:hs', '!room:hs', 'm.room.message', '', null]]);
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { ReplicationHub } from './core/hub.js';
import {
  DEFAULT_CATCH_UP_CHUNK_BYTES,
  DEFAULT_LINE_TIMEOUT_MS,
  DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
  DEFAULT_MAX_PARTIAL_LINE_BYTES,
  DEFAULT_MAX_STALL_MS,
  JUMP_STREAMS,
  SYNAPSE_STREAMS,
  type AuthFailure,
  type ConnectionInfo,
  type Credential,
  type DisconnectReason,
  type HubEvents,
  type PresenceChange,
  type SlowConsumerDetails,
  type StreamConfig,
} from './core/hub-types.js';
import type { ClientActionCommand } from './core/commands.js';
import { DEFAULT_PING_INTERVAL_MS, DEFAULT_PING_TIMEOUT_MS } from './core/keep-alive.js';
import { DEFAULT_MAX_LINE_BYTES } from './core/line-scanner.js';
import { DEFAULT_MAX_QUEUE_BYTES, DEFAULT_MAX_QUEUE_COMMANDS } from './core/ring-queue.js';
import { DEFAULT_RETENTION_BYTES, DEFAULT_RETENTION_ROWS, MemoryStreamLog, tokenNotRising, type StreamLog } from './core/stream-log.js';
import { inlineRowEncoder, type RowEncoder } from './core/row-encoding.js';
import { OrderedPublisher } from './core/ordered-commit.js';
import { TcpListener } from './bindings/tcp-server.js';
import type { ServerTlsOptions } from './bindings/tls-files.js';

export interface ReplicationServerOptions {
  /** Sent in `SERVER` to every connection (default `localhost`). */
  serverName?: string;
  /** Declared streams (default: Synapse 2017's fifteen, with `typing` jumping to the head on a too-old token). */
  streams?: readonly (string | StreamConfig)[];
  /** Shorthand for a writer credential for every stream. */
  writerToken?: string;
  /** Shorthand for a subscriber credential; when set, subscribers must AUTH. */
  subscriberToken?: string;
  /** Further credentials, e.g. writers of some streams only. */
  credentials?: readonly Credential[];
  /** Require AUTH of every connection (default: when a subscriber credential exists). */
  requireAuth?: boolean;
  retentionRows?: number;
  retentionBytes?: number;
  maxQueueCommands?: number;
  maxQueueBytes?: number;
  maxLineBytes?: number;
  maxConnections?: number;
  /** Open connections from one host at most (default 10,000). */
  maxConnectionsPerAddress?: number;
  /** Bytes held in unfinished lines across all connections at most (default 256 MiB); past it the largest holders are cut. */
  maxPartialLineBytes?: number;
  maxStallMs?: number;
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
  /** A connection holding an unfinished line this long is cut, pinged or not (default 30 s). */
  lineTimeoutMs?: number;
  /** How often the keep-alive sweep runs over all connections (default 1 s). */
  sweepIntervalMs?: number;
  catchUpChunkBytes?: number;
  /** Per-stream log factory (default: in-memory, bounded by the retention options). */
  createLog?: (stream: string) => StreamLog;
  /** Those logs' generation id, answered to a client's GENERATION (docs/protocol.md); default null (`none`). */
  generation?: string | null;
  clock?: () => number;
  /** How `publish()` turns rows into RDATA bytes: inline (default) or an EncoderPool from src/workers. */
  encoder?: RowEncoder;
  /**
   * Serve TLS on the TCP listener with this certificate and key (PEM); with
   * `ca`, every client must present a certificate that CA signed. Replace it
   * later with setTls(). Default: plaintext.
   */
  tls?: ServerTlsOptions;
}

export interface ReplicationServerEvents {
  connection: [conn: ConnectionInfo];
  disconnect: [conn: ConnectionInfo, reason: DisconnectReason, detail: string];
  /** USER_SYNC, FEDERATION_ACK, REMOVE_PUSHER, INVALIDATE_CACHE, USER_IP from any subscriber. */
  command: [cmd: ClientActionCommand, conn: ConnectionInfo];
  presence: [change: PresenceChange];
  remoteError: [conn: ConnectionInfo, message: string];
  /** An AUTH (or an upgrade's cookie) matched no credential, or came from a host over the failure limit; the close follows. */
  authFailed: [conn: ConnectionInfo, failure: AuthFailure];
  tokenAhead: [conn: ConnectionInfo, stream: string, token: number, head: number];
  slowConsumer: [conn: ConnectionInfo, details: SlowConsumerDetails];
  /** Rows (or a POSITION, with rows 0) stored in a stream; `head` is its new token. */
  written: [stream: string, rows: number, head: number];
  /** With `tls`: a client's TLS handshake failed (it never became a connection). */
  tlsError: [message: string, address: string];
}

export const DEFAULT_MAX_CONNECTIONS = 100_000;
export const DEFAULT_SWEEP_INTERVAL_MS = 1_000;
/** How long close() lets connections flush `ERROR server shutting down` before dropping them. */
const CLOSE_GRACE_MS = 5_000;

/** The hub behind each server, for the library's own parts only (see hubOf). */
const hubs = new WeakMap<ReplicationServer, ReplicationHub>();

/**
 * The hub behind a server: for the parts of this library that attach to it
 * (the HTTP edge, ReplicationRelay, the gateway's reports through its
 * ServerView). Not exported from the package: a server's users see its methods.
 */
export function hubOf(server: ReplicationServer): ReplicationHub {
  const hub = hubs.get(server);
  if (hub === undefined) throw new TypeError('not a ReplicationServer');
  return hub;
}

export class ReplicationServer extends EventEmitter<ReplicationServerEvents> {
  private readonly hub: ReplicationHub;
  private readonly tcp: TcpListener;
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly publisher: OrderedPublisher;
  private closed: Promise<void> | null = null;

  constructor(options: ReplicationServerOptions = {}) {
    super();
    const access = accessOf(options);
    const retention = {
      retentionRows: options.retentionRows ?? DEFAULT_RETENTION_ROWS,
      retentionBytes: options.retentionBytes ?? DEFAULT_RETENTION_BYTES,
    };
    const events: Partial<HubEvents> = {
      opened: (conn) => this.emit('connection', conn),
      closed: (conn, reason, detail) => this.emit('disconnect', conn, reason, detail),
      clientCommand: (conn, cmd) => this.emit('command', cmd, conn),
      presence: (change) => this.emit('presence', change),
      remoteError: (conn, message) => this.emit('remoteError', conn, message),
      authFailed: (conn, failure) => this.emit('authFailed', conn, failure),
      tokenAhead: (conn, stream, token, head) => this.emit('tokenAhead', conn, stream, token, head),
      slowConsumer: (conn, details) => this.emit('slowConsumer', conn, details),
      written: (stream, rows, head) => this.emit('written', stream, rows, head),
    };
    this.hub = new ReplicationHub({
      serverName: options.serverName ?? 'localhost',
      streams: options.streams ?? SYNAPSE_STREAMS.map((name) => ({ name, tooOld: JUMP_STREAMS.includes(name) ? 'jump' : 'error' })),
      ...access,
      maxLineBytes: options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES,
      maxQueueCommands: options.maxQueueCommands ?? DEFAULT_MAX_QUEUE_COMMANDS,
      maxQueueBytes: options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES,
      maxConnections: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
      maxConnectionsPerAddress: options.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
      maxPartialLineBytes: options.maxPartialLineBytes ?? DEFAULT_MAX_PARTIAL_LINE_BYTES,
      maxStallMs: options.maxStallMs ?? DEFAULT_MAX_STALL_MS,
      pingIntervalMs: options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS,
      pingTimeoutMs: options.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS,
      lineTimeoutMs: options.lineTimeoutMs ?? DEFAULT_LINE_TIMEOUT_MS,
      catchUpChunkBytes: options.catchUpChunkBytes ?? DEFAULT_CATCH_UP_CHUNK_BYTES,
      clock: options.clock ?? Date.now,
      createLog: options.createLog ?? (() => new MemoryStreamLog(retention)),
      generation: options.generation ?? null,
      scheduleFlush: () => setImmediate(() => this.hub.flush()),
      events,
    });
    hubs.set(this, this.hub);
    this.publisher = new OrderedPublisher({
      encoder: options.encoder ?? inlineRowEncoder,
      tokens: (stream) => this.hub.requireStream(stream).log,
      commit: (stream, token, bytes, rows) => this.hub.appendEncoded(stream, token, bytes, rows),
    });
    this.tcp = new TcpListener(this.hub, {
      ...(options.tls !== undefined ? { tls: options.tls } : {}),
      onTlsError: (message, address) => this.emit('tlsError', message, address),
    });
    this.sweepTimer = setInterval(() => this.hub.sweep(), options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
  }

  /** Starts the TCP listener (port 0 picks a free port). */
  async listen(options: { host?: string; port?: number } = {}): Promise<AddressInfo> {
    return this.tcp.listen(options.host ?? '127.0.0.1', options.port ?? 9092);
  }

  address(): AddressInfo | null {
    return this.tcp.address();
  }

  /** The stream's current token. */
  head(stream: string): number {
    return this.hub.requireStream(stream).log.head;
  }

  /**
   * Stores rows under the stream's next token and sends them to its
   * subscribers; the rows of one call share the token (a batch). The token
   * is taken at the call, so calls commit in call order even when a later,
   * smaller batch finishes encoding first. Resolves with the token; rejects
   * (storing nothing of the batch) with a RowEncodingError naming a row that
   * is not JSON.
   */
  publish(stream: string, rows: readonly unknown[]): Promise<number> {
    try {
      this.hub.requireStream(stream);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.publisher.publish(stream, rows);
  }

  /**
   * New values for the settings a running server can change (a gateway's
   * SIGHUP): credentials (given as a whole, as at construction) and whether
   * AUTH is required apply to every AUTH from now on, an authenticated
   * connection keeping its role; queue limits apply to connections opened
   * from now on; maxConnections and maxConnectionsPerAddress to the next
   * accept; lineTimeoutMs and maxPartialLineBytes to every connection from
   * the next sweep or chunk.
   */
  reconfigure(options: LiveServerOptions): void {
    this.hub.reconfigure({
      ...accessOf(options),
      ...(options.maxQueueCommands !== undefined ? { maxQueueCommands: options.maxQueueCommands } : {}),
      ...(options.maxQueueBytes !== undefined ? { maxQueueBytes: options.maxQueueBytes } : {}),
      ...(options.maxConnections !== undefined ? { maxConnections: options.maxConnections } : {}),
      ...(options.maxStallMs !== undefined ? { maxStallMs: options.maxStallMs } : {}),
      ...(options.maxConnectionsPerAddress !== undefined ? { maxConnectionsPerAddress: options.maxConnectionsPerAddress } : {}),
      ...(options.maxPartialLineBytes !== undefined ? { maxPartialLineBytes: options.maxPartialLineBytes } : {}),
      ...(options.lineTimeoutMs !== undefined ? { lineTimeoutMs: options.lineTimeoutMs } : {}),
    });
  }

  /**
   * A new certificate and key (and client CA) for TLS connections accepted
   * from now on; open connections keep theirs. Only for a server made with
   * `tls`. Throws when the PEM does not make a usable certificate.
   */
  setTls(tls: ServerTlsOptions): void {
    this.tcp.setTls(tls);
  }

  /** Moves a stream to `token` without rows (`POSITION`). */
  advance(stream: string, token: number): void {
    const state = this.hub.requireStream(stream);
    const head = state.log.lastAppended;
    if (token <= head) throw tokenNotRising(stream, token, head);
    const stored = this.hub.advance(state, token);
    // A log that answers later: subscribers hear the POSITION once it is stored, or not at all.
    if (stored !== undefined) stored.catch(() => {});
  }

  /** Open connections, for status pages and metrics. */
  connections(): ConnectionInfo[] {
    return [...this.hub.connections()];
  }

  /** Sends `ERROR server shutting down` to every connection and resolves once all are closed. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      clearInterval(this.sweepTimer);
      // Publishes already encoding are stored and sent before the goodbye
      // (and with none in flight the goodbye goes out before close() returns).
      if (this.publisher.pending > 0) await this.publisher.idle();
      this.hub.shutdown();
      this.hub.flush();
      const grace = setTimeout(() => this.tcp.destroyAll(), CLOSE_GRACE_MS);
      await this.tcp.close();
      clearTimeout(grace);
    })();
    return this.closed;
  }
}

/** What reconfigure() takes: the access settings as a whole, and any of the live limits. */
export type LiveServerOptions = Pick<ReplicationServerOptions, 'writerToken' | 'subscriberToken' | 'credentials' | 'requireAuth'> &
  Partial<
    Pick<
      ReplicationServerOptions,
      'maxQueueCommands' | 'maxQueueBytes' | 'maxConnections' | 'maxConnectionsPerAddress' | 'maxPartialLineBytes' | 'lineTimeoutMs' | 'maxStallMs'
    >
  >;

/** Credentials from the shorthands and the list; AUTH required (unless told) once a subscriber credential exists. */
function accessOf(options: Pick<ReplicationServerOptions, 'writerToken' | 'subscriberToken' | 'credentials' | 'requireAuth'>): {
  credentials: Credential[];
  requireAuth: boolean;
} {
  const credentials: Credential[] = [...(options.credentials ?? [])];
  if (options.writerToken) credentials.push({ secret: options.writerToken, role: 'writer' });
  if (options.subscriberToken) credentials.push({ secret: options.subscriberToken, role: 'subscriber' });
  return { credentials, requireAuth: options.requireAuth ?? credentials.some((c) => c.role === 'subscriber') };
}
