/**
 * Where a stream's rows live: `(token, line bytes)` in token order, as the
 * very bytes subscribers receive, so live fan-out and catch-up send the same
 * Buffers:
 *
 *     RDATA caches batch ["get_user_by_id",["@a:hs"],1490197670513]   } one entry: a batch is
 *     RDATA caches 54 ["get_user_by_id",["@b:hs"],1490197670513]      } stored whole, framing kept
 *     (empty, lastToken 60)                                           an advance without rows
 *
 * This file is the contract every log keeps (memory, file, Redis), checked
 * by one shared suite (test/core/stream-log.test.ts), and the in-memory log.
 *
 * - `append` hands the log an entry; the log answers now (returns) or later
 *   (a promise), and fails by throwing or rejecting. Entries are stored in
 *   append order; a log never stores an entry appended after one it failed.
 * - The log tells its listener (the hub) of every entry it stores, in token
 *   order, exactly once, whoever appended it: live fan-out follows that
 *   confirmation, so rows another gateway wrote to a shared log reach
 *   subscribers the same way. A shared log that finds entries gone before
 *   it could tell them says so (`gap`), never skips them silently.
 * - `cursorAfter` and `read` answer `T | Promise<T>`: the memory log answers
 *   at once, and callers test for a promise only where one can come.
 * - Cursors are opaque: only the log that made one reads it.
 *
 * An advance (a writer's POSITION) is stored without a line: catch-up reads
 * past it, and the catch-up's one closing POSITION carries the head.
 *
 * A log can also restart at a token (restartAt): what came before it is
 * unknown, not empty, so a catch-up from an older token is refused, never a
 * silent gap; a stored POSITION, by contrast, says no rows came between.
 *
 * An entry holds one or more complete groups (a run of rows a writer sent in
 * one chunk is one entry, one shared slice of that chunk) and carries the
 * boundaries of its groups, so no log re-parses stored bytes to find them.
 */
import { ProtocolError } from './errors.js';

export interface LogEntry {
  /** Token of the entry's first group. */
  readonly firstToken: number;
  /** Token of its last line: the stream's head once stored. */
  readonly lastToken: number;
  /** Complete lines, LF-terminated; never ends inside a batch. */
  readonly bytes: Buffer;
  /** Lines in `bytes`: what a subscriber's queue counts as commands. */
  readonly lines: number;
  /** RDATA rows in `bytes` (a POSITION line is not a row). */
  readonly rows: number;
  /**
   * Where each group ends, for an entry of more than one group (absent for
   * one group): triples `[end offset in bytes, token, lines up to end]`, in
   * order. A catch-up from inside the entry starts after a group's end.
   */
  readonly groups?: Float64Array | undefined;
}

/** An advance (a writer's POSITION): an entry without a line, so a catch-up over it sends nothing of it. */
export function advanceEntry(token: number): LogEntry {
  return { firstToken: token, lastToken: token, bytes: NO_BYTES, lines: 0, rows: 0 };
}

const NO_BYTES = Buffer.alloc(0);

/** The refusal of a token that does not rise above what a log was handed. */
export function tokenNotRising(stream: string, token: number, head: number): ProtocolError {
  return new ProtocolError('TOKEN_NOT_RISING', `token ${token} for ${stream} is not above the stream's head ${head}`);
}

declare const cursorBrand: unique symbol;
/** A subscriber's place in a log: opaque, read and advanced only by the log that made it. */
export interface LogCursor {
  readonly [cursorBrand]: true;
}

export interface LogRead {
  chunks: Buffer[];
  lines: number;
  /** Token of the last entry read, -1 when nothing was read. */
  lastToken: number;
}

/** The log's side of fan-out: told of every entry once it is stored. */
export interface LogListener {
  stored(entry: LogEntry): void;
  /**
   * Entries after `afterToken` were stored but can no longer be told (a
   * shared log trimmed or lost them before this log heard them): what comes
   * next is not contiguous with what the listener heard. A log that hears
   * everything it stores (memory) never calls it.
   */
  gap(afterToken: number): void;
}

export interface StreamLog {
  /** Token of the last stored entry (or the token the stream started at). */
  readonly head: number;
  /**
   * Token of the last entry appended, stored or still being stored: the
   * tokens of the next append must rise above it. Once no append is in
   * flight it equals the head (after a failed append, too).
   */
  readonly lastAppended: number;
  /** Catch-up from any token >= oldest is complete; older tokens have been evicted or are unknown. */
  readonly oldest: number;
  readonly retainedRows: number;
  readonly retainedBytes: number;
  /** The one listener told of stored entries (the hub, at creation). */
  listen(listener: LogListener): void;
  /**
   * Stores an entry (tokens above `lastAppended`, the caller checks; a
   * followed Synapse pair's descending row is the one exception: an entry
   * at `lastAppended` right after a row entry, which the memory log and a
   * file log opened with `descendingRows` keep in arrival order). Returns
   * once stored, or a promise that resolves when stored; throws or rejects
   * when it could not be. The listener hears of it before the answer.
   */
  append(entry: LogEntry): void | Promise<void>;
  /**
   * A token for an in-process publish: above `lastAppended` and every token
   * reserved since the last `release` (a shared log reserves it atomically).
   */
  reserve(): number;
  /** The caller has no reservation in flight: the next `reserve` may follow the head again. */
  release(): void;
  /** A cursor at the first group after `token`, or null when `token < oldest`. */
  cursorAfter(token: number): LogCursor | null | Promise<LogCursor | null>;
  /**
   * The next entries from `cursor` (at least one whole group, about
   * `maxBytes`), advancing it; `chunks` is empty at the head (once `head`
   * says T, a read reaches T); null when the entries it needed were evicted
   * meanwhile. One read per cursor at a time.
   */
  read(cursor: LogCursor, maxBytes: number): LogRead | null | Promise<LogRead | null>;
  /**
   * Forgets every entry and says the history before `token` is unknown:
   * head = oldest = `token`, so cursorAfter(older) is null and every cursor
   * taken before (even one at the old head) reads null. `token` >= head.
   */
  restartAt(token: number): void;
}

/** Whether a log's answer came later (a promise) rather than now. */
export function isPending<T>(answer: T | Promise<T>): answer is Promise<T> {
  return answer instanceof Promise;
}

export interface MemoryLogOptions {
  retentionRows?: number;
  retentionBytes?: number;
  /**
   * The token the stream's complete history starts after, when the caller
   * knows it (a catch-up from it is complete). Without it the history before
   * the first entry is unknown: the first rows at token F make the oldest
   * F - 1, a first advance to T makes it T.
   */
  startToken?: number;
}

export const DEFAULT_RETENTION_ROWS = 1_000_000;
export const DEFAULT_RETENTION_BYTES = 512 * 1024 * 1024;

/** Where a read stands in an entry: bytes and lines of it already passed (a catch-up that began after one of its groups). */
export interface EntryPosition {
  offset: number;
  skippedLines: number;
}

/** What one read gathers, entry by entry. */
export interface ReadGather {
  chunks: Buffer[];
  lines: number;
  bytes: number;
}

/**
 * Adds what `entry` holds past `at` to `out` (an advance adds nothing) and
 * moves `at` to the start of the next entry: every log's reads take entries
 * this one way.
 */
export function takeEntry(entry: LogEntry, at: EntryPosition, out: ReadGather): void {
  if (entry.bytes.length === 0) return;
  if (at.offset > 0) {
    const rest = entry.bytes.subarray(at.offset);
    out.chunks.push(rest);
    out.lines += entry.lines - at.skippedLines;
    out.bytes += rest.length;
    at.offset = 0;
    at.skippedLines = 0;
  } else {
    out.chunks.push(entry.bytes);
    out.lines += entry.lines;
    out.bytes += entry.bytes.length;
  }
}

/** In-process publish tokens (reserve/release): above what was appended and every token reserved since the last release. */
export class TokenReservations {
  private reserved = 0;

  next(lastAppended: number): number {
    this.reserved = Math.max(this.reserved, lastAppended) + 1;
    return this.reserved;
  }

  release(): void {
    this.reserved = 0;
  }
}

/** The memory log's cursor: the next entry's sequence number and where in it to start. */
class MemoryCursor {
  constructor(
    public seq: number,
    public offset: number,
    /** Lines of the entry before `offset`. */
    public skippedLines: number,
  ) {}
}

const NO_LISTENER: LogListener = { stored() {}, gap() {} };

/** The embedded default: a bounded in-memory log, oldest entries evicted first; it answers at once. */
export class MemoryStreamLog implements StreamLog {
  private readonly retentionRows: number;
  private readonly retentionBytes: number;
  /** Entries [first, entries.length) are live; `first` is the seq of entries[first] minus `baseSeq`. */
  private entries: LogEntry[] = [];
  private first = 0;
  /** Sequence number of entries[0]: cursors hold sequence numbers, so eviction never moves them. */
  private baseSeq = 0;
  private headToken: number;
  private oldestToken: number;
  private readonly reservations = new TokenReservations();
  private rowCount = 0;
  private byteCount = 0;
  /** Whether the oldest token is known: a start token was given, or an entry has been appended. */
  private anchored: boolean;
  private listener: LogListener = NO_LISTENER;

  constructor(options: MemoryLogOptions = {}) {
    this.retentionRows = options.retentionRows ?? DEFAULT_RETENTION_ROWS;
    this.retentionBytes = options.retentionBytes ?? DEFAULT_RETENTION_BYTES;
    this.headToken = options.startToken ?? 0;
    this.oldestToken = this.headToken;
    this.anchored = options.startToken !== undefined;
  }

  get head(): number {
    return this.headToken;
  }

  /** Stored at once: always the head. */
  get lastAppended(): number {
    return this.headToken;
  }

  get oldest(): number {
    return this.oldestToken;
  }

  get retainedRows(): number {
    return this.rowCount;
  }

  get retainedBytes(): number {
    return this.byteCount;
  }

  listen(listener: LogListener): void {
    this.listener = listener;
  }

  append(entry: LogEntry): void {
    if (!this.anchored) {
      // What came before the first entry is unknown, not empty: never a silent gap.
      this.anchored = true;
      this.oldestToken = entry.rows > 0 ? entry.firstToken - 1 : entry.lastToken;
    }
    this.entries.push(entry);
    this.headToken = entry.lastToken;
    this.rowCount += entry.rows;
    this.byteCount += entry.bytes.length;
    // Keep at least the newest entry, however large.
    while (
      (this.rowCount > this.retentionRows || this.byteCount > this.retentionBytes) &&
      this.entries.length - this.first > 1
    ) {
      const evicted = this.entries[this.first]!;
      this.entries[this.first] = undefined as unknown as LogEntry;
      this.first++;
      this.rowCount -= evicted.rows;
      this.byteCount -= evicted.bytes.length;
      this.oldestToken = evicted.lastToken;
    }
    // Compact once the dead prefix is most of the array: amortised O(1).
    if (this.first > 1024 && this.first * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.first);
      this.baseSeq += this.first;
      this.first = 0;
    }
    this.listener.stored(entry);
  }

  reserve(): number {
    return this.reservations.next(this.headToken);
  }

  release(): void {
    this.reservations.release();
  }

  restartAt(token: number): void {
    if (token < this.headToken) throw new RangeError(`cannot restart at ${token}: below the head ${this.headToken}`);
    // One sequence number beyond the old head is skipped, so a cursor that had
    // read up to the head reads null too: it never saw the jump to `token`.
    this.baseSeq += this.entries.length + 1;
    this.entries = [];
    this.first = 0;
    this.headToken = token;
    this.oldestToken = token;
    this.anchored = true;
    this.rowCount = 0;
    this.byteCount = 0;
  }

  cursorAfter(token: number): LogCursor | null {
    if (token < this.oldestToken) return null;
    // First live entry whose last token is past `token`.
    let lo = this.first;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.entries[mid]!.lastToken > token) hi = mid;
      else lo = mid + 1;
    }
    const seq = this.baseSeq + lo;
    const entry = this.entries[lo];
    if (entry === undefined || entry.firstToken > token || entry.groups === undefined) {
      return new MemoryCursor(seq, 0, 0) as unknown as LogCursor;
    }
    const at = groupEndAtOrBelow(entry.groups, token);
    return new MemoryCursor(seq, at < 0 ? 0 : entry.groups[at]!, at < 0 ? 0 : entry.groups[at + 2]!) as unknown as LogCursor;
  }

  read(logCursor: LogCursor, maxBytes: number): LogRead | null {
    const cursor = logCursor as unknown as MemoryCursor;
    let index = cursor.seq - this.baseSeq;
    if (index < this.first) return null;
    const out: ReadGather = { chunks: [], lines: 0, bytes: 0 };
    let lastToken = -1;
    while (index < this.entries.length && out.bytes < maxBytes) {
      const entry = this.entries[index]!;
      takeEntry(entry, cursor, out);
      lastToken = entry.lastToken;
      index++;
    }
    cursor.seq = this.baseSeq + index;
    return { chunks: out.chunks, lines: out.lines, lastToken };
  }
}

/**
 * Index (into the triples) of the last group whose token is at or below
 * `token`, -1 when the first group is already above it.
 */
export function groupEndAtOrBelow(groups: Float64Array, token: number): number {
  let lo = 0;
  let hi = groups.length / 3;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (groups[mid * 3 + 1]! > token) hi = mid;
    else lo = mid + 1;
  }
  return (lo - 1) * 3;
}
