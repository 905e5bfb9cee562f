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
export { FileStreamLog, type FileLogOptions, type FsyncPolicy } from './bindings/file-log.js';
export * from './client.js';
export {
  parseCommand,
  encodeCommand,
  type Command,
  type ClientActionCommand,
  type CommandName,
  type Sender,
} from './core/commands.js';
export { RowEncodingError } from './core/row-encoding.js';
