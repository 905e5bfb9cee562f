/**
 * replication-gateway as a library: the server (master side) and the client
 * (worker side) of Synapse's TCP replication protocol, with their types.
 */
export { ReplicationServer, type ReplicationServerOptions, type ReplicationServerEvents } from './server.js';
export {
  SYNAPSE_STREAMS,
  type ConnectionInfo,
  type Credential,
  type DisconnectReason,
  type PresenceChange,
  type SlowConsumerDetails,
  type StreamConfig,
} from './core/hub-types.js';
export type { StreamLog, LogEntry, LogCursor, LogRead } from './core/stream-log.js';
export { MemoryStreamLog } from './core/stream-log.js';
export * from './client.js';
export type { Command, ClientActionCommand, CommandName, Sender } from './core/commands.js';
export type { WireDialect, LineDialect, DialectName } from './core/dialect.js';
export { v1Text, parseCommand, encodeCommand } from './core/dialects/v1-text.js';
export { RowEncodingError } from './core/row-encoding.js';
