/**
 * In-process publishes, committed in order. Each publish reserves the next
 * token of its stream at once, is encoded (inline or on a pool, finishing in
 * any order), and its bytes are committed strictly in reservation order per
 * stream:
 *
 *     publish(events, 3 rows) -> token 8, encoded on the pool, done second
 *     publish(events, 1 row)  -> token 9, encoded inline, done first
 *     commit(events, 8, "RDATA events batch ...\nRDATA events batch ...\nRDATA events 8 ...\n", 3)
 *     commit(events, 9, "RDATA events 9 ...\n", 1)
 *
 * Tokens are reserved through the stream's log (a log shared by several
 * gateways reserves them atomically). A publish whose encode fails (a bad
 * row) is rejected, commits nothing and blocks nobody; its token is skipped,
 * so the stream's tokens can have a gap (tokens only need to rise). A failed
 * publish with nothing reserved after it leaves no gap: the stream's
 * reservations are released once none is in flight, and the next publish
 * takes the token again. A commit the log stores later resolves then, and
 * one it cannot store rejects. Streams are independent. No I/O: the encoder,
 * the logs and the commit are the caller's.
 */
import { MAX_TOKEN } from './commands.js';
import { ProtocolError } from './errors.js';
import type { RowEncoder } from './row-encoding.js';
import type { StreamLog } from './stream-log.js';

/**
 * Stores one publish's bytes (fan-out follows the log's confirmation);
 * called in token order per stream. Returns once stored, or a promise.
 */
export type CommitFn = (stream: string, token: number, bytes: Buffer, rowCount: number) => void | Promise<void>;

/** The part of a stream log that hands out publish tokens. */
export type PublishTokens = Pick<StreamLog, 'lastAppended' | 'reserve' | 'release'>;

export interface OrderedPublisherOptions {
  encoder: RowEncoder;
  /** The stream's log, which reserves its tokens. */
  tokens(stream: string): PublishTokens;
  commit: CommitFn;
}

interface Pending {
  readonly token: number;
  readonly rowCount: number;
  /** Set once encoded. */
  bytes: Buffer | null;
  failed: boolean;
  resolve(token: number): void;
  reject(err: unknown): void;
}

interface StreamQueue {
  readonly tokens: PublishTokens;
  entries: Pending[];
  /** entries[next] is the oldest not yet committed or dropped. */
  next: number;
  committing: boolean;
}

export class OrderedPublisher {
  private readonly encoder: RowEncoder;
  private readonly tokens: (stream: string) => PublishTokens;
  private readonly commit: CommitFn;
  /** Only streams with publishes in flight: a stream's queue goes when it empties. */
  private readonly queues = new Map<string, StreamQueue>();
  private idleWaiters: (() => void)[] = [];

  constructor(options: OrderedPublisherOptions) {
    this.encoder = options.encoder;
    this.tokens = options.tokens;
    this.commit = options.commit;
  }

  /**
   * Publishes rows under one new token, resolved once committed. The token is
   * reserved before this returns, so publish order is commit order.
   */
  publish(stream: string, rows: readonly unknown[]): Promise<number> {
    let queue = this.queues.get(stream);
    const tokens = queue?.tokens ?? this.tokens(stream);
    const token = tokens.reserve();
    if (token > MAX_TOKEN) {
      if (queue === undefined) tokens.release();
      return Promise.reject(new ProtocolError('BAD_TOKEN', `stream ${stream} is out of tokens at ${tokens.lastAppended}`));
    }
    if (queue === undefined) {
      queue = { tokens, entries: [], next: 0, committing: false };
      this.queues.set(stream, queue);
    }
    let entry!: Pending;
    const promise = new Promise<number>((resolve, reject) => {
      entry = { token, rowCount: rows.length, bytes: null, failed: false, resolve, reject };
    });
    queue.entries.push(entry);
    const q = queue;

    let encoded: Buffer | Promise<Buffer>;
    try {
      encoded = this.encoder.encode(stream, token, rows);
    } catch (err) {
      this.fail(stream, q, entry, err);
      return promise;
    }
    if (Buffer.isBuffer(encoded)) {
      entry.bytes = encoded;
      this.commitReady(stream, q);
    } else {
      encoded.then(
        (bytes) => {
          entry.bytes = bytes;
          this.commitReady(stream, q);
        },
        (err: unknown) => this.fail(stream, q, entry, err),
      );
    }
    return promise;
  }

  /** Publishes reserved and not yet committed or failed. */
  get pending(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.entries.length - q.next;
    return n;
  }

  /** Resolves when no publish is in flight (for shutdown: then close the encoder). */
  idle(): Promise<void> {
    if (this.queues.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private fail(stream: string, queue: StreamQueue, entry: Pending, err: unknown): void {
    entry.failed = true;
    entry.reject(err);
    this.commitReady(stream, queue);
  }

  /** Commits the encoded publishes at the front of the stream's queue, in order. */
  private commitReady(stream: string, queue: StreamQueue): void {
    // A commit callback may publish again: the outer loop commits what it adds.
    if (queue.committing) return;
    queue.committing = true;
    const entries = queue.entries;
    while (queue.next < entries.length) {
      const entry = entries[queue.next]!;
      if (entry.failed) {
        queue.next++;
        continue;
      }
      if (entry.bytes === null) break;
      queue.next++;
      this.commitOne(stream, queue, entry);
    }
    queue.committing = false;
    if (queue.next === entries.length) {
      if (this.queues.get(stream) === queue) {
        this.queues.delete(stream);
        queue.tokens.release();
      }
      if (this.queues.size === 0) this.wakeIdle();
    } else if (queue.next >= 1024 && queue.next * 2 >= entries.length) {
      entries.splice(0, queue.next);
      queue.next = 0;
    }
  }

  private commitOne(stream: string, queue: StreamQueue, entry: Pending): void {
    // The head may have moved by another path (a writer's RDATA) since the
    // reservation: committing under it would break rising tokens.
    const head = queue.tokens.lastAppended;
    if (entry.token <= head) {
      entry.reject(
        new ProtocolError('TOKEN_NOT_RISING', `token ${entry.token} of ${stream} is not above its position ${head}`),
      );
      return;
    }
    let stored: void | Promise<void>;
    try {
      stored = this.commit(stream, entry.token, entry.bytes!, entry.rowCount);
    } catch (err) {
      entry.reject(err);
      return;
    }
    if (stored === undefined) entry.resolve(entry.token);
    else stored.then(() => entry.resolve(entry.token), entry.reject);
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}

/**
 * Publish tokens over a head alone, for a caller without a log (a test, a
 * benchmark): each reservation follows the head or the last one reserved.
 */
export function tokensFromHead(head: (stream: string) => number): (stream: string) => PublishTokens {
  const reserved = new Map<string, number>();
  return (stream) => ({
    get lastAppended() {
      return head(stream);
    },
    reserve() {
      const token = Math.max(reserved.get(stream) ?? 0, head(stream)) + 1;
      reserved.set(stream, token);
      return token;
    },
    release() {
      reserved.delete(stream);
    },
  });
}
