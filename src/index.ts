/**
 * replication-gateway as a library, its one export list: the server (master
 * side), the relay (a server fed by an upstream master), the client and the
 * writer (worker side) of Synapse's TCP replication protocol, with their
 * types. package.json's `exports` names this file only.
 */
export { ReplicationServer, type ReplicationServerOptions, type ReplicationServerEvents, type LiveServerOptions } from './server.js';
export {
  ReplicationRelay,
  type ReplicationRelayOptions,
  type ReplicationRelayEvents,
  type RelayCounters,
  type StreamLag,
  type UpstreamState,
} from './relay.js';
export { ReplicationClient, type ReplicationClientOptions, type ReplicationClientEvents } from './client.js';
export type { SessionOptions, SessionEvents } from './client-session.js';
export type { InstanceFollow } from './core/instance-follows.js';
export { ReplicationWriter, type ReplicationWriterOptions, type ReplicationWriterEvents } from './writer.js';
export type { BackoffOptions } from './core/backoff.js';
export type { ClientTransport, TransportEvents, TransportFactory } from './core/client-transport.js';
export type { ServerTlsOptions, ClientTlsOptions } from './bindings/tls-files.js';
export {
  SYNAPSE_STREAMS,
  type AuthFailure,
  type ConnectionInfo,
  type ConnectionRole,
  type Credential,
  type DisconnectReason,
  type PresenceChange,
  type SlowConsumerDetails,
  type StreamConfig,
} from './core/hub-types.js';
export { MemoryStreamLog, type MemoryLogOptions, type StreamLog, type LogEntry, type LogCursor, type LogRead, type LogListener } from './core/stream-log.js';
export { RowBatch } from './core/row-batch.js';
export { RowEncodingError, type RowEncoder } from './core/row-encoding.js';
export { ProtocolError, type ProtocolErrorCode } from './core/errors.js';
export type { Command, ClientActionCommand, CommandName, RdataCommand, Sender } from './core/commands.js';
export type { WireDialect, LineDialect, DialectName } from './core/dialect.js';
export { v1Text, parseCommand, encodeCommand } from './core/dialects/v1-text.js';
export { FileStreamLog, type FileLogOptions, type FsyncPolicy } from './bindings/file-log.js';
export { EncoderPool, type EncoderPoolOptions } from './workers/encoder-pool.js';
