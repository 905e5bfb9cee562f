/**
 * The one rule for who a listener may face: on loopback anything goes (a
 * laptop, a test, a sidecar); off loopback, a listener that serves stream
 * data must be encrypted (TLS, or `--insecure` said on purpose: a TLS proxy
 * in front, a private network) and must ask for a credential (a subscriber
 * token, or `--anonymous-read` said on purpose). The gateway's settings check
 * it for the TCP and the HTTP listener before anything is bound (exit 2); the
 * HTTP listener of the library checks it again when it listens.
 */

/** What decides whether a listener on `host` is an open door. */
export interface ListenerExposure {
  /** How the operator names it: `--listen` or `--http`. */
  flag: string;
  host: string;
  port: number;
  /** The listener speaks TLS. */
  tls: boolean;
  /** A subscriber credential exists, so every connection must AUTH. */
  subscriberCredential: boolean;
  /** Plaintext off loopback is meant (`--insecure`). */
  insecure: boolean;
  /** Reads without a credential are meant (`--anonymous-read`). */
  anonymousRead: boolean;
}

/** 127.0.0.0/8, ::1, IPv4-mapped loopback, and `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice('::ffff:'.length) : h;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/** Why a listener may not start as configured (one line: what is missing and what to add), or null when it may. */
export function openDoorRefusal(l: ListenerExposure): string | null {
  if (isLoopbackHost(l.host)) return null;
  const missing: string[] = [];
  const add: string[] = [];
  if (!l.tls && !l.insecure) {
    missing.push('TLS');
    const flags = l.flag === '--http' ? '--http-tls-cert/--http-tls-key (or --tls-cert/--tls-key)' : '--tls-cert/--tls-key';
    add.push(`${flags} (or --insecure, if a TLS proxy or a private network protects it)`);
  }
  if (!l.subscriberCredential && !l.anonymousRead) {
    missing.push('a credential');
    add.push('--subscriber-token (or --anonymous-read, if anyone who can connect may read every stream)');
  }
  if (missing.length === 0) return null;
  const address = l.host.includes(':') ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`;
  return (
    `refusing to listen on ${address} (${l.flag}) without ${missing.join(' and ')}: it is not loopback, so anyone who can reach it could read every stream; ` +
    `add ${add.join(' and ')}, or listen on 127.0.0.1`
  );
}
