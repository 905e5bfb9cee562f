/** The reason a connection closed on a protocol error is logged and counted under (hub-types.ts DisconnectReason). */
import type { ProtocolError } from './errors.js';
import type { DisconnectReason } from './hub-types.js';

export function reasonFor(err: ProtocolError): DisconnectReason {
  switch (err.code) {
    case 'TOKEN_TOO_OLD':
      return 'too_old';
    case 'UNKNOWN_STREAM':
      return 'unknown_stream';
    case 'AUTH_FAILED':
    case 'AUTH_REQUIRED':
    case 'NOT_PERMITTED':
      return 'auth';
    case 'STORE_FAILED':
      return 'store_failed';
    default:
      return 'protocol_error';
  }
}
