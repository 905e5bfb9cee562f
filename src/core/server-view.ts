/**
 * What reports read of a running server (metrics, /healthz, the status
 * feed): the hub seen read-only. ReplicationHub implements it; nothing typed
 * against it can store a row, close a connection or change a limit.
 */
import type { CommandName } from './commands.js';
import type { ConnectionLimits } from './connection-host.js';
import type { ConnectionInfo } from './hub-types.js';

/** A stream's figures: its log's, never its entries. */
export interface StreamView {
  readonly name: string;
  readonly log: {
    readonly head: number;
    readonly oldest: number;
    readonly retainedRows: number;
    readonly retainedBytes: number;
  };
  /** Rows stored since start. */
  readonly rowsWritten: number;
  /** Subscriptions at the head. */
  readonly liveSubscribers: number;
}

export interface ServerView {
  /** The name sent in `SERVER`. */
  readonly serverName: string;
  /** Credentials and the AUTH rule: the status feed admits its sockets by them. */
  readonly limits: ConnectionLimits;
  readonly connectionCount: number;
  /** Commands received from all connections, by name. */
  readonly commandsIn: Readonly<Record<CommandName, number>>;
  /** Commands handed to all connections' transports, by name. */
  readonly commandsOut: Readonly<Record<CommandName, number>>;
  streams(): Iterable<StreamView>;
  connections(): Iterable<ConnectionInfo>;
  /** Users syncing on any connection. */
  syncingUsers(): readonly string[];
}
