/**
 * The credential model, in one place: what a token looks like on the
 * command line, how a presented secret is found, and what the connection
 * it authenticates may read, write and send from a browser page.
 *
 *     < AUTH s3cret                        a subscriber of every stream
 *     < AUTH tab:typing,presence           (spec) reads typing and presence only
 *     < AUTH master:events,caches          (writer spec) writes, and reads, events and caches
 *     < AUTH dash:typing,+page             (spec) its browser pages may also send USER_SYNC & co.
 *
 * Secrets are compared by their SHA-256 digests in constant time, every
 * credential each time, so neither the length of a secret nor which one
 * came closest shows in how long an AUTH takes to be answered.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export interface Credential {
  secret: string;
  role: 'writer' | 'subscriber';
  /**
   * A subscriber's read list; a writer's write list (a writer reads the
   * streams it writes). Every stream when absent.
   */
  streams?: readonly string[];
  /**
   * A connection opened by a browser page (its upgrade carried an Origin) is
   * read-only unless its credential says this: then it may send the client
   * commands (USER_SYNC, FEDERATION_ACK, ...) and, for a writer, rows.
   */
  fromPages?: boolean;
}

/** What a connection may do once authenticated, derived once per credential. */
export interface Access {
  readonly credential: Credential;
  /** Streams it may REPLICATE (REPLICATE ALL gets these only); null: all. */
  readonly readable: ReadonlySet<string> | null;
  /** Streams it may send RDATA/POSITION for; null: all (a writer of every stream). Empty for a subscriber. */
  readonly writable: ReadonlySet<string> | null;
  /** Its browser-page connections act as a program's would. */
  readonly fromPages: boolean;
}

const STREAM_NAME = /^[A-Za-z0-9_.-]+$/;
/** The spec item that sets `fromPages` (not a stream name: streams never start with '+'). */
export const FROM_PAGES_ITEM = '+page';

/**
 * `T`, `T:events,typing` or `T:events,+page` as a credential of `role`:
 * the items after the last colon are streams (a subscriber's read list, a
 * writer's write list) and `+page`. A secret that itself ends in
 * `:<names>` cannot be written this way (use the library's Credential).
 */
export function parseTokenSpec(spec: string, role: Credential['role'] = 'subscriber'): Credential {
  const colon = spec.lastIndexOf(':');
  const items = colon > 0 ? spec.slice(colon + 1).split(',') : [];
  const listed = items.length > 0 && items.every((i) => i === FROM_PAGES_ITEM || STREAM_NAME.test(i));
  if (spec.length === 0 || colon === 0 || /[\s\x00-\x1f\x7f]/.test(spec)) {
    throw new Error(`bad token spec: expected TOKEN, TOKEN:stream,stream or TOKEN:stream,${FROM_PAGES_ITEM} (no spaces)`);
  }
  if (!listed) return { secret: spec, role };
  const streams = items.filter((i) => i !== FROM_PAGES_ITEM);
  return {
    secret: spec.slice(0, colon),
    role,
    ...(streams.length > 0 ? { streams } : {}),
    ...(items.includes(FROM_PAGES_ITEM) ? { fromPages: true } : {}),
  };
}

function digestOf(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Whether two secrets are equal, in a time that depends on neither (their digests are compared). */
export function secretsEqual(a: string, b: string): boolean {
  return timingSafeEqual(digestOf(a), digestOf(b));
}

/** Whether any credential is a subscriber's: without one, anyone who connects may read (the no-open-door rule asks). */
export function hasSubscriberCredential(credentials: readonly Credential[]): boolean {
  return credentials.some((c) => c.role === 'subscriber');
}

/**
 * A hub's credentials, checked once when configured: secrets non-empty and
 * distinct, stream lists of names. Built again on every reconfigure.
 */
export class CredentialSet {
  private readonly entries: readonly { digest: Buffer; access: Access }[];

  constructor(readonly list: readonly Credential[]) {
    const seen: Buffer[] = [];
    this.entries = list.map((credential, i) => {
      checkCredential(credential, i);
      const digest = digestOf(credential.secret);
      if (seen.some((d) => d.equals(digest))) {
        throw new Error(`credential ${i + 1} (a ${credential.role}) has the secret of an earlier one; expected every token to differ`);
      }
      seen.push(digest);
      return { digest, access: accessOf(credential) };
    });
  }

  get hasSubscriber(): boolean {
    return hasSubscriberCredential(this.list);
  }

  /** The access of the credential whose secret this is, or null. Compares with every credential, always. */
  lookup(secret: string): Access | null {
    const digest = digestOf(secret);
    let found: Access | null = null;
    for (const entry of this.entries) {
      // No early exit: the time taken does not say which credential matched.
      if (timingSafeEqual(entry.digest, digest)) found = entry.access;
    }
    return found;
  }
}

function checkCredential(c: Credential, i: number): void {
  const which = `credential ${i + 1} (a ${String(c.role)})`;
  if (c.role !== 'writer' && c.role !== 'subscriber') throw new Error(`credential ${i + 1}: role '${String(c.role)}'; expected writer or subscriber`);
  if (typeof c.secret !== 'string' || c.secret.length === 0) throw new Error(`${which}: empty secret; expected a non-empty token`);
  if (c.streams !== undefined) {
    const bad = c.streams.find((s) => !STREAM_NAME.test(s));
    if (bad !== undefined) throw new Error(`${which}: bad stream name '${bad}' in its list; expected letters, digits, '_', '.', '-'`);
  }
}

const NOTHING: ReadonlySet<string> = new Set();

function accessOf(credential: Credential): Access {
  const listed = credential.streams === undefined ? null : new Set(credential.streams);
  return {
    credential,
    readable: listed,
    writable: credential.role === 'writer' ? listed : NOTHING,
    fromPages: credential.fromPages === true,
  };
}
