/**
 * The ERRORs that refuse a connection what retrying cannot cure: a bad
 * credential, an unknown stream, a stream the credential may not use. The
 * server writes them and the clients read them back, in one place so the
 * two cannot drift (like src/core/catch-up-refusal.ts):
 *
 *     ERROR AUTH failed: the token matches no configured credential
 *     ERROR authentication required: send AUTH <token> before REPLICATE
 *     ERROR unknown stream: evnets
 *     ERROR not permitted to read stream events
 *
 * A client that gets one stops (src/core/session-loop.ts) instead of
 * reconnecting to the same answer forever. Two more refusals the server
 * writes sit here too, though no client reads them back: a browser page's
 * client command, and an HTTP request (or a TLS ClientHello) on the
 * replication port.
 */
import { ProtocolError, type ProtocolErrorCode } from './errors.js';

export type AccessRefusalCode = Extract<ProtocolErrorCode, 'AUTH_FAILED' | 'AUTH_REQUIRED' | 'UNKNOWN_STREAM' | 'NOT_PERMITTED'>;

const AUTH_FAILED = 'AUTH failed: the token matches no configured credential';
const AUTH_REQUIRED = 'authentication required: send AUTH <token> before ';
const UNKNOWN_STREAM = 'unknown stream: ';
const NOT_PERMITTED = 'not permitted to ';

export const authFailed = (): ProtocolError => new ProtocolError('AUTH_FAILED', AUTH_FAILED);
export const authRequired = (command: string): ProtocolError => new ProtocolError('AUTH_REQUIRED', `${AUTH_REQUIRED}${command}`);
export const unknownStream = (stream: string): ProtocolError => new ProtocolError('UNKNOWN_STREAM', `${UNKNOWN_STREAM}${stream}`);
export const notPermitted = (access: 'read' | 'write', stream: string): ProtocolError =>
  new ProtocolError('NOT_PERMITTED', `${NOT_PERMITTED}${access} stream ${stream}`);

const READ_BACK: readonly [prefix: string, code: AccessRefusalCode][] = [
  [AUTH_FAILED, 'AUTH_FAILED'],
  [AUTH_REQUIRED, 'AUTH_REQUIRED'],
  [UNKNOWN_STREAM, 'UNKNOWN_STREAM'],
  [`${NOT_PERMITTED}read stream `, 'NOT_PERMITTED'],
  [`${NOT_PERMITTED}write stream `, 'NOT_PERMITTED'],
];

/** The code of a server's ERROR text that refuses access, or null for any other ERROR. */
export function accessRefusal(message: string): AccessRefusalCode | null {
  for (const [prefix, code] of READ_BACK) if (message.startsWith(prefix)) return code;
  return null;
}

/** Too many failed AUTHs from one host: not an access refusal (a right token works again later), so clients retry. */
export function tooManyAuthFailures(host: string, waitMs: number): ProtocolError {
  return new ProtocolError('AUTH_FAILED', `too many failed AUTH attempts from ${host}: try again in ${Math.ceil(waitMs / 1000)} s`);
}

/** A page's commands would reach the homeserver's writers (presence, federation acks): pages only read, unless their token says `+page`. */
export function fromPage(command: string): ProtocolError {
  return new ProtocolError(
    'WRONG_DIRECTION',
    `${command} may not be sent from a browser page: pages only read streams (a token whose spec lists +page may send it)`,
  );
}

/** `GET /metrics HTTP/1.1`: someone pointed an HTTP client (curl, a browser, a probe) at the replication port. */
const HTTP_REQUEST_LINE = /^[A-Z]{3,7} \S+ HTTP\/\d(?:\.\d)?$/;

/** The refusal of a line that is an HTTP request line, or null for any other line. */
export function httpRequestRefusal(buf: Buffer, start: number, end: number): ProtocolError | null {
  if (!HTTP_REQUEST_LINE.test(buf.toString('latin1', start, Math.min(end, start + 256)))) return null;
  return new ProtocolError(
    'UNKNOWN_COMMAND',
    "this is the replication port (Synapse's TCP replication protocol), not HTTP: send HTTP requests to the gateway's --http listener",
  );
}


/** A TLS record's first bytes: handshake (0x16), then the major version 3 (every SSL 3 / TLS 1.x ClientHello). */
const TLS_HANDSHAKE = 0x16;
const TLS_MAJOR_VERSION = 0x03;

/**
 * The refusal of a connection whose first bytes (`first`, the first chunk
 * read) are a TLS ClientHello: a client set up for TLS (or `openssl
 * s_client`) pointed at a plaintext port. 0x16 is a control character no
 * command starts with, so a first chunk of that byte alone counts too.
 */
export function tlsHelloRefusal(first: Buffer): ProtocolError | null {
  if (first.length === 0 || first[0] !== TLS_HANDSHAKE || (first.length > 1 && first[1] !== TLS_MAJOR_VERSION)) return null;
  return new ProtocolError(
    'UNKNOWN_COMMAND',
    'TLS on a plaintext port: start the gateway with --tls-cert/--tls-key or connect without TLS',
  );
}
