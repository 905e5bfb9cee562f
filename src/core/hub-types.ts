/** Configuration and events shared by the hub and its connections. */
import type { ClientActionCommand } from './commands.js';
import type { Credential } from './credentials.js';
import type { StreamLog } from './stream-log.js';
import { pairKey } from './synapse-name.js';

/** Synapse 2017's streams: the default set a gateway serves. */
export const SYNAPSE_STREAMS: readonly string[] = [
  'events',
  'backfill',
  'presence',
  'typing',
  'receipts',
  'push_rules',
  'pushers',
  'caches',
  'public_rooms',
  'device_lists',
  'to_device',
  'federation',
  'tag_account_data',
  'account_data',
  'current_state_deltas',
];

/** Short-lived streams whose too-old tokens jump to the head instead of failing. */
export const JUMP_STREAMS: readonly string[] = ['typing'];

export interface StreamConfig {
  name: string;
  /**
   * What a token older than retention gets: `error` (ERROR naming the oldest
   * token, then close) or `jump` (POSITION at the head, as for typing
   * notifications, which nobody needs to replay).
   */
  tooOld?: 'error' | 'jump';
}

export type { Credential } from './credentials.js';

export type ConnectionRole = 'anonymous' | 'subscriber' | 'writer';

export type DisconnectReason =
  | 'peer_closed'
  | 'protocol_error'
  | 'slow_consumer'
  | 'ping_timeout'
  /** An unfinished line held past the line timeout. */
  | 'line_timeout'
  /** Cut for the budget of unfinished lines across all connections. */
  | 'partial_line_budget'
  | 'too_old'
  | 'unknown_stream'
  | 'auth'
  | 'shutdown'
  | 'too_many_connections'
  | 'store_failed';

/** What the outside sees of a connection (logs, metrics, status page). */
export interface ConnectionInfo {
  readonly id: number;
  readonly transportKind: string;
  readonly remoteAddress: string;
  readonly name: string | undefined;
  readonly role: ConnectionRole;
  readonly connectedAt: number;
  /** False once it is closing (a cut connection waiting for its socket): no longer live. */
  readonly open: boolean;
  /** When the peer last sent anything. */
  readonly lastReceivedAt: number;
  readonly queuedCommands: number;
  readonly queuedBytes: number;
  /** Bytes read from the peer, and handed to its transport, since it connected. */
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Streams subscribed, and whether each is still catching up. */
  subscriptions(): SubscriptionState[];
}

/** One subscription of a connection, as /connections, the status page, the metrics and the congestion log show it. */
export interface SubscriptionState {
  /** The stream's name (what read lists name). */
  readonly stream: string;
  /** The writer instance of a followed Synapse pair; null for a declared stream. */
  readonly instance: string | null;
  readonly catchingUp: boolean;
  readonly lastToken: number;
}

/** A subscription's name among a connection's others: the stream's, or its pair's (`events/event_persister1`). */
export function subscriptionKey(sub: { readonly stream: string; readonly instance: string | null }): string {
  return sub.instance === null ? sub.stream : pairKey(sub.stream, sub.instance);
}

export interface SlowConsumerDetails {
  queuedCommands: number;
  queuedBytes: number;
  /** Which limit was crossed. */
  limit: 'commands' | 'bytes' | 'stall';
  /** A stream it was reading from the log (behind, or catching up) when cut; absent when none. */
  stream?: string;
}

export interface PresenceChange {
  userId: string;
  syncing: boolean;
  lastSyncMs: number;
  connection: ConnectionInfo;
}

/** A failed AUTH (a secret matching no credential, by AUTH or by an upgrade's cookie), or one refused for too many. */
export interface AuthFailure {
  /** The peer's host (its address without the port): failures are counted per host. */
  host: string;
  /** Failures from the host in its current window, this one included. */
  failures: number;
  /** Past this many failures in `windowMs`, every AUTH from the host is refused until the window is over. */
  limit: number;
  windowMs: number;
  /** This AUTH was not checked at all: the host is over the limit for this much longer (ms); 0 when it was checked. */
  refusedForMs: number;
}

/** Everything the hub reports; all optional so tests and bindings take what they need. */
export interface HubEvents {
  opened(conn: ConnectionInfo): void;
  closed(conn: ConnectionInfo, reason: DisconnectReason, detail: string): void;
  clientCommand(conn: ConnectionInfo, cmd: ClientActionCommand): void;
  presence(change: PresenceChange): void;
  /** An AUTH failed; the connection is closed right after (reason `auth`). */
  authFailed(conn: ConnectionInfo, failure: AuthFailure): void;
  /** An ERROR line from a client: logged, the connection stays open. */
  remoteError(conn: ConnectionInfo, message: string): void;
  /** A REPLICATE token ahead of the head: answered with POSITION at the head. */
  tokenAhead(conn: ConnectionInfo, stream: string, token: number, head: number): void;
  slowConsumer(conn: ConnectionInfo, details: SlowConsumerDetails): void;
  /** Rows stored and sent out. */
  written(stream: string, rows: number, head: number): void;
}

/** What a hub is built with; it keeps a frozen copy, and its connections a frozen ConnectionLimits. */
export interface HubOptions {
  serverName: string;
  streams: readonly (string | StreamConfig)[];
  credentials: readonly Credential[];
  /** Subscribers must AUTH before anything but PING. */
  requireAuth: boolean;
  maxLineBytes: number;
  maxQueueCommands: number;
  maxQueueBytes: number;
  /** A connection whose socket makes no write progress this long, with bytes waiting, is cut. */
  maxStallMs: number;
  pingIntervalMs: number;
  /** Silence after which a peer that has pinged is timed out (and a hanging close aborted). */
  pingTimeoutMs: number;
  /** A connection holding an unfinished line this long is cut, pinged or not. */
  lineTimeoutMs: number;
  maxConnections: number;
  /** Open connections from one host (the address without its port) at most. */
  maxConnectionsPerAddress: number;
  /** Bytes held in unfinished lines across all connections at most; past it the largest holders are cut. */
  maxPartialLineBytes: number;
  /** How much of the log one catch-up read hands to the socket. */
  catchUpChunkBytes: number;
  clock: () => number;
  /** One log per stream (the StreamLog contract); the hub listens to each for stored entries. */
  createLog: (stream: string) => StreamLog;
  /**
   * The log's generation id (a durable log's: a new id means its tokens
   * started over), answered to a client's GENERATION; null or absent for a
   * log without one (memory, Redis), answered `none`.
   */
  generation?: string | null;
  /** Called when output is pending; the binding calls `hub.flush()` soon (once per tick). */
  scheduleFlush: () => void;
  events: Partial<HubEvents>;
}

/** As nats-server's write_deadline: a subscriber reading from the log is cut only by this or by retention. */
export const DEFAULT_MAX_STALL_MS = 10_000;
export const DEFAULT_LINE_TIMEOUT_MS = 30_000;
/** A tenth of the default --max-connections: a proxy or NAT in front of many peers needs more (docs/operations.md). */
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 10_000;
export const DEFAULT_MAX_PARTIAL_LINE_BYTES = 256 * 1024 * 1024;
export const DEFAULT_CATCH_UP_CHUNK_BYTES = 256 * 1024;
