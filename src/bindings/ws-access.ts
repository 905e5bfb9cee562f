/**
 * Who may open a WebSocket on the gateway's HTTP listener, decided before
 * the upgrade: the Origin allow-list and `--subscriber-token T:events,typing`
 * credentials (whether the listener may face the network at all is
 * src/core/open-door.ts).
 * What a connection may do once open (AUTH, read lists, writer commands) is
 * the hub's, exactly as on TCP.
 */
import type { Credential } from '../core/hub-types.js';

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

const STREAM_LIST = /^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$/;

/**
 * `T` or `T:events,typing` as a credential: a subscriber token, optionally
 * limited to the streams listed after the last colon. A token that itself
 * ends in `:<names>` cannot be written this way (use the config file).
 */
export function parseTokenSpec(spec: string, role: Credential['role'] = 'subscriber'): Credential {
  const colon = spec.lastIndexOf(':');
  const tail = colon === -1 ? '' : spec.slice(colon + 1);
  if (colon > 0 && STREAM_LIST.test(tail)) {
    return { secret: spec.slice(0, colon), role, streams: tail.split(',') };
  }
  if (spec.length === 0 || colon === 0) throw new Error(`bad token '${spec}': expected TOKEN or TOKEN:stream,stream`);
  return { secret: spec, role };
}
