/**
 * Protocol errors. Each has a stable `code` to branch on, and a message that is
 * exactly the text sent after `ERROR ` on the wire.
 */

export type ProtocolErrorCode =
  | 'LINE_TOO_LONG'
  | 'INVALID_UTF8'
  | 'UNKNOWN_COMMAND'
  | 'WRONG_DIRECTION'
  | 'MISSING_ARGUMENTS'
  | 'BAD_ARGUMENT'
  | 'BAD_TOKEN'
  | 'BAD_JSON'
  | 'UNKNOWN_STREAM'
  | 'TOKEN_TOO_OLD'
  | 'TOKEN_NOT_RISING'
  /** A server's `batch` rows ran past the client's bound without their numbered row. */
  | 'BATCH_TOO_LARGE'
  | 'AUTH_REQUIRED'
  | 'AUTH_FAILED'
  | 'NOT_PERMITTED'
  | 'WRONG_REMOTE'
  | 'SLOW_CONSUMER'
  /** A WebSocket the engine cannot pause sent more than the gateway had read by far. */
  | 'SENDING_TOO_FAST'
  | 'PING_TIMEOUT'
  | 'SHUTTING_DOWN'
  | 'TOO_MANY_CONNECTIONS'
  /** A log could not store a writer's rows. */
  | 'STORE_FAILED'
  /** Not sent: the peer sent `ERROR <message>` (a client reports it as this code). */
  | 'REMOTE_ERROR';

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
  ) {
    super(message);
  }
}
