/**
 * Admission of one AUTH secret (PROTOCOL.md section 4): the per-host
 * failure limit first, then the credential lookup. Every refusal is told
 * to the hub's `authFailed` event and thrown as the ERROR the peer gets.
 */
import { authFailed, tooManyAuthFailures } from './access-refusal.js';
import { hostOf } from './auth-failures.js';
import type { ConnectionHost } from './connection-host.js';
import type { Access } from './credentials.js';
import type { ConnectionInfo } from './hub-types.js';

/** The access `secret` grants `conn`; throws a ProtocolError when refused. */
export function admit(hub: ConnectionHost, conn: ConnectionInfo, secret: string): Access {
  const host = hostOf(conn.remoteAddress);
  const now = hub.now();
  const failures = hub.authFailures;
  const wait = failures.retryAfter(host, now);
  if (wait > 0) {
    hub.events.authFailed?.(conn, { host, failures: failures.countOf(host), limit: failures.limit, windowMs: failures.windowMs, refusedForMs: wait });
    throw tooManyAuthFailures(host, wait);
  }
  const access = hub.limits.credentials.lookup(secret);
  if (access === null) {
    const count = failures.failed(host, now);
    hub.events.authFailed?.(conn, { host, failures: count, limit: failures.limit, windowMs: failures.windowMs, refusedForMs: 0 });
    throw authFailed();
  }
  return access;
}
