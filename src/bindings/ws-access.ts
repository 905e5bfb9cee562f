/**
 * Who may open a WebSocket on the gateway's HTTP listener, decided before
 * the upgrade: the Origin allow-list and the credential a page's cookie
 * carries (whether the listener may face the network at all is
 * src/core/open-door.ts). What a connection may do once open (AUTH, read
 * lists, writer commands) is the hub's, exactly as on TCP
 * (src/core/credentials.ts).
 */

/**
 * Whether a browser page from `origin` may connect. No Origin header: not a
 * browser (Origin checks guard against other sites' pages, not programs).
 * The listener's own origin (Origin's host equal to the Host header) is
 * always allowed: the status page and /client.js are served from it.
 */
export function originAllowed(origin: string, host: string, allowOrigins: readonly string[]): boolean {
  if (origin === '') return true;
  const normalized = normalizeOrigin(origin);
  if (allowOrigins.includes('*') || allowOrigins.some((o) => normalizeOrigin(o) === normalized)) return true;
  if (normalized === 'null') return false;
  let originHost: string;
  try {
    const url = new URL(normalized);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
    originHost = url.host;
  } catch {
    return false;
  }
  return host !== '' && originHost === normalizeHost(host);
}

function normalizeOrigin(origin: string): string {
  return origin.trim().toLowerCase().replace(/\/+$/, '');
}

/** The Host header as URL.host writes it (lower case, default port dropped). */
function normalizeHost(host: string): string {
  try {
    return new URL(`http://${host.trim()}`).host;
  } catch {
    return host.trim().toLowerCase();
  }
}


/**
 * The value of cookie `name` in a Cookie header (`a=1; rg_token=s3cret`),
 * quotes taken off; null when it is absent or empty. The value is used as
 * sent: set the cookie to the token itself.
 */
export function cookieValue(header: string, name: string): string | null {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1 || part.slice(0, eq).trim() !== name) continue;
    const value = part.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    return value === '' ? null : value;
  }
  return null;
}
