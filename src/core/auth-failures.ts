/**
 * Failed AUTHs per peer host. Past `limit` failures within `windowMs`, every
 * AUTH from that host is refused (even a right one) until the window has
 * passed, so nobody tries tokens as fast as the gateway can answer. Bounded:
 * past `maxHosts` the oldest record is forgotten first.
 */
export const DEFAULT_AUTH_FAILURE_LIMIT = 10;
export const DEFAULT_AUTH_FAILURE_WINDOW_MS = 60_000;

export class AuthFailures {
  private readonly byHost = new Map<string, { count: number; since: number }>();

  constructor(
    readonly limit = DEFAULT_AUTH_FAILURE_LIMIT,
    readonly windowMs = DEFAULT_AUTH_FAILURE_WINDOW_MS,
    private readonly maxHosts = 10_000,
  ) {}

  /** How long `host` must wait before its next AUTH is checked (ms), 0 when it may try now. */
  retryAfter(host: string, now: number): number {
    const rec = this.byHost.get(host);
    if (rec === undefined) return 0;
    const left = rec.since + this.windowMs - now;
    if (left <= 0) {
      this.byHost.delete(host);
      return 0;
    }
    return rec.count >= this.limit ? left : 0;
  }

  /** Failures from `host` in its current window. */
  countOf(host: string): number {
    return this.byHost.get(host)?.count ?? 0;
  }

  /** Counts a failure; returns how many `host` has had in its current window (1: a new burst). */
  failed(host: string, now: number): number {
    const rec = this.byHost.get(host);
    if (rec !== undefined && now - rec.since < this.windowMs) return ++rec.count;
    this.byHost.delete(host);
    this.byHost.set(host, { count: 1, since: now });
    if (this.byHost.size > this.maxHosts) this.byHost.delete(this.byHost.keys().next().value!);
    return 1;
  }
}

/** The host part of a connection's address (`127.0.0.1:5431` → `127.0.0.1`, `::1:5431` → `::1`); as given when it has no port. */
export function hostOf(remoteAddress: string): string {
  const m = /^(.+):\d+$/.exec(remoteAddress);
  return m !== null && (m[1]!.includes('.') || m[1]!.includes(':')) ? m[1]! : remoteAddress;
}
