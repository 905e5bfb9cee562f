/**
 * Where a server connection meets the hub: the connection depends on this
 * narrow host, never on the hub's insides, and the hub sees a connection
 * only as a Peer. Limits are one immutable object, read by both.
 */
import type { AuthFailures } from './auth-failures.js';
import type { ClientActionCommand, CommandName } from './commands.js';
import type { ProtocolError } from './errors.js';
import type { KeepAliveTimings } from './keep-alive.js';
import type { PartialLineBudget } from './partial-line-budget.js';
import type { StreamLog } from './stream-log.js';
import type { CredentialSet } from './credentials.js';
import type { ConnectionInfo, DisconnectReason, HubEvents, SubscriptionState } from './hub-types.js';

/**
 * What every connection of a hub is held to; frozen, so nothing rewrites it under a connection.
 * The keep-alive timings (keep-alive.ts): pingTimeoutMs also bounds a hanging close.
 */
export interface ConnectionLimits extends KeepAliveTimings {
  readonly credentials: CredentialSet;
  /** Subscribers must AUTH before anything but PING. */
  readonly requireAuth: boolean;
  readonly maxLineBytes: number;
  readonly maxQueueCommands: number;
  readonly maxQueueBytes: number;
  /** A connection whose socket makes no write progress this long, with bytes waiting, is cut. */
  readonly maxStallMs: number;
  /** A connection holding an unfinished line this long is cut, pinged or not. */
  readonly lineTimeoutMs: number;
}

/**
 * Where subscribers' commands for the master go: a writer connection, or a
 * relay's upstream (ReplicationRelay). Presence arrives folded over every
 * connection: `USER_SYNC start` when a user's first connection syncs (and,
 * on registering, for every user syncing then), `end` when its last stops
 * or closes.
 */
export interface MasterLink {
  /** A subscriber's command, with its wire line (encoded once for every link). */
  masterCommand(cmd: ClientActionCommand, line: Buffer): void;
}

/** The hub's view of a connection: where fan-out and catch-up put bytes; a writer is also a MasterLink. */
export interface Peer extends ConnectionInfo, MasterLink {
  readonly open: boolean;
  /** The transport asked to wait for drain: catch-up stops reading until it drains. */
  readonly blocked: boolean;
  /** Queues bytes holding `lines` commands, all `command`, for the next flush; crossing a queue limit cuts the connection. */
  enqueue(bytes: Buffer, lines: number, command: CommandName): void;
  /** Queues a stream's entry as enqueue does, but answers false (nothing queued) where enqueue would cut. */
  offer(bytes: Buffer, lines: number, command: CommandName): boolean;
  /** Hands catch-up chunks (`lines` commands, all `command`) straight to the transport (the queue is empty when catch-up runs). */
  writeOut(chunks: Buffer[], lines: number, command: CommandName): void;
  fail(err: ProtocolError, reason?: DisconnectReason): void;
}

/** A subscription request: what REPLICATE asked, and which streams the connection may read (null: all). */
export interface SubscribeRequest {
  readonly stream: string;
  /** The three-argument form's writer instance of a followed Synapse stream, or '*'; absent in v1's form. */
  readonly instance?: string | undefined;
  readonly token: number | 'NOW';
  readonly readable: ReadonlySet<string> | null;
}

export interface ConnectionHost {
  readonly limits: ConnectionLimits;
  /** Commands received, by name: plain counters, bumped per line. */
  readonly commandsIn: Record<CommandName, number>;
  /** Commands handed to transports, by name: plain counters, bumped per write (the bytes are never re-read to count them). */
  readonly commandsOut: Record<CommandName, number>;
  readonly events: Partial<HubEvents>;
  /** The log's generation id, answered to GENERATION; null for a log without one. */
  readonly generation: string | null;
  /** Failed AUTHs per peer host, shared by every connection (a rate limit on guessing tokens). */
  readonly authFailures: AuthFailures;
  /** Bytes held in unfinished lines by every connection, against one budget. */
  readonly lineBudget: PartialLineBudget;
  now(): number;
  /** The peer has output pending: flush it soon (once per tick). */
  markDirty(peer: Peer): void;
  /** REPLICATE: subscribes at the head or from the log; throws a ProtocolError to refuse. */
  subscribe(peer: Peer, request: SubscribeRequest): void;
  /** REPLICATE ALL: every stream `readable` allows, at the head. */
  subscribeAll(peer: Peer, readable: ReadonlySet<string> | null): void;
  /** Reads catch-ups from the logs while the peer takes bytes. */
  catchUp(peer: Peer): void;
  subscriptionsOf(peer: Peer): SubscriptionState[];
  /** The log a writer may append to, or a ProtocolError thrown (unknown stream). */
  logOf(stream: string): StreamLog;
  /** A connection became a writer: it hears subscribers' commands from now on. */
  addWriter(link: MasterLink): void;
  clientCommand(from: Peer, cmd: ClientActionCommand): void;
  userSyncing(peer: Peer, userId: string, syncing: boolean, lastSyncMs: number): void;
  /** The connection closes: out of fan-out; `syncingUsers` have stopped syncing on it. */
  detach(peer: Peer, syncingUsers: Iterable<string>): void;
  /** The transport is gone: the connection leaves the sweep. */
  forget(peer: Peer): void;
}
