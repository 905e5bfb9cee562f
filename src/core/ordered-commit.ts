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
 * A publish whose encode fails (a bad row) is rejected, commits nothing and
 * blocks nobody; its token is skipped, so the stream's tokens can have a gap
 * (tokens only need to rise). A failed publish with nothing reserved after it
 * leaves no gap: the next publish takes the token again. Streams are
 * independent. No I/O: the encoder and the commit are the caller's.
 */
import { MAX_TOKEN } from './commands.js';
import { ProtocolError } from './errors.js';
import type { RowEncoder } from './row-encoding.js';

/** Stores and fans out one publish's bytes; called in token order per stream. */
export type CommitFn = (stream: string, token: number, bytes: Buffer, rowCount: number) => void;

export interface OrderedPublisherOptions {
  encoder: RowEncoder;
  /** The stream's current token as the server holds it (0 for a stream with no rows). */
  head(stream: string): number;
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
  /** The last token handed out: reservations continue from here, or from the head if it is ahead. */
  lastReserved: number;
  entries: Pending[];
  /** entries[next] is the oldest not yet committed or dropped. */
  next: number;
  committing: boolean;
}

export class OrderedPublisher {
  private readonly encoder: RowEncoder;
  private readonly head: (stream: string) => number;
  private readonly commit: CommitFn;
  /** Only streams with publishes in flight: a stream's queue goes when it empties. */
  private readonly queues = new Map<string, StreamQueue>();
  private idleWaiters: (() => void)[] = [];

  constructor(options: OrderedPublisherOptions) {
    this.encoder = options.encoder;
    this.head = options.head;
    this.commit = options.commit;
  }

  /**
   * Publishes rows under one new token, resolved once committed. The token is
   * reserved before this returns, so publish order is commit order.
   */
  publish(stream: string, rows: readonly unknown[]): Promise<number> {
    let queue = this.queues.get(stream);
    const head = this.head(stream);
    const token = Math.max(queue?.lastReserved ?? 0, head) + 1;
    if (token > MAX_TOKEN) {
      return Promise.reject(new ProtocolError('BAD_TOKEN', `stream ${stream} is out of tokens at ${head}`));
    }
    if (queue === undefined) {
      queue = { lastReserved: token, entries: [], next: 0, committing: false };
      this.queues.set(stream, queue);
    }
    queue.lastReserved = token;
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
      this.commitOne(stream, entry);
    }
    queue.committing = false;
    if (queue.next === entries.length) {
      if (this.queues.get(stream) === queue) this.queues.delete(stream);
      if (this.queues.size === 0) this.wakeIdle();
    } else if (queue.next >= 1024 && queue.next * 2 >= entries.length) {
      entries.splice(0, queue.next);
      queue.next = 0;
    }
  }

  private commitOne(stream: string, entry: Pending): void {
    // The head may have moved by another path (a writer's RDATA) since the
    // reservation: committing under it would break rising tokens.
    const head = this.head(stream);
    if (entry.token <= head) {
      entry.reject(
        new ProtocolError('TOKEN_NOT_RISING', `token ${entry.token} of ${stream} is not above its position ${head}`),
      );
      return;
    }
    try {
      this.commit(stream, entry.token, entry.bytes!, entry.rowCount);
    } catch (err) {
      entry.reject(err);
      return;
    }
    entry.resolve(entry.token);
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
