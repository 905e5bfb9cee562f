/**
 * Where a stream's rows live: `(token, line bytes)` in token order, as the
 * very bytes subscribers receive, so live fan-out and catch-up send the same
 * Buffers:
 *
 *     RDATA caches batch ["get_user_by_id",["@a:hs"],1490197670513]   } one entry: a batch is
 *     RDATA caches 54 ["get_user_by_id",["@b:hs"],1490197670513]      } stored whole, framing kept
 *     (empty, lastToken 60)                                           an advance without rows
 *
 * An advance (a writer's POSITION) is stored without a line: catch-up reads
 * past it, and the catch-up's one closing POSITION carries the head.
 *
 * A log can also restart at a token (restartAt): what came before it is
 * unknown, not empty, so a catch-up from an older token is refused, never a
 * silent gap; a stored POSITION, by contrast, says no rows came between.
 *
 * An entry holds one or more complete groups (a run of rows a writer sent in
 * one chunk is one entry, one shared slice of that chunk). Catch-up reads
 * entries through a cursor, in chunks, as the subscriber's socket drains.
 */
import { parseTokenBytes } from './commands.js';

export interface LogEntry {
  /** Token of the entry's first group. */
  readonly firstToken: number;
  /** Token of its last line: the stream's head once appended. */
  readonly lastToken: number;
  /** Complete lines, LF-terminated; never ends inside a batch. */
  readonly bytes: Buffer;
  /** Lines in `bytes`: what a subscriber's queue counts as commands. */
  readonly lines: number;
  /** RDATA rows in `bytes` (a POSITION line is not a row). */
  readonly rows: number;
}

/** A subscriber's place in a log: the next entry to send and where in it to start. */
export interface LogCursor {
  seq: number;
  offset: number;
}

export interface LogRead {
  chunks: Buffer[];
  lines: number;
  /** Token of the last line read (unchanged when nothing was read). */
  lastToken: number;
}

export interface StreamLog {
  /** Token of the last entry (or the token the stream started at). */
  readonly head: number;
  /** Catch-up from any token >= oldest is complete; older tokens have been evicted. */
  readonly oldest: number;
  readonly retainedRows: number;
  readonly retainedBytes: number;
  append(entry: LogEntry): void;
  /** A cursor at the first group after `token`, or null when `token < oldest`. */
  cursorAfter(token: number): LogCursor | null;
  /**
   * The next entries from `cursor` (at least one whole group, about
   * `maxBytes`), advancing it; `chunks` is empty at the head; null when the
   * entries it needed were evicted meanwhile.
   */
  read(cursor: LogCursor, maxBytes: number): LogRead | null;
  /**
   * Forgets every entry and says the history before `token` is unknown:
   * head = oldest = `token`, so cursorAfter(older) is null and every cursor
   * taken before (even one at the old head) reads null. `token` >= head.
   */
  restartAt(token: number): void;
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

/** The embedded default: a bounded in-memory log, oldest entries evicted first. */
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
  private rowCount = 0;
  private byteCount = 0;
  /** Whether the oldest token is known: a start token was given, or an entry has been appended. */
  private anchored: boolean;

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

  get oldest(): number {
    return this.oldestToken;
  }

  get retainedRows(): number {
    return this.rowCount;
  }

  get retainedBytes(): number {
    return this.byteCount;
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
    if (lo === this.entries.length) return { seq, offset: 0 };
    const entry = this.entries[lo]!;
    return { seq, offset: entry.firstToken > token ? 0 : groupStartAfter(entry.bytes, token) };
  }

  read(cursor: LogCursor, maxBytes: number): LogRead | null {
    let index = cursor.seq - this.baseSeq;
    if (index < this.first) return null;
    const chunks: Buffer[] = [];
    let lines = 0;
    let bytes = 0;
    let lastToken = -1;
    while (index < this.entries.length && bytes < maxBytes) {
      const entry = this.entries[index]!;
      if (entry.bytes.length === 0) {
        // An advance: nothing to send, the read still moves past its token.
      } else if (cursor.offset > 0) {
        const rest = entry.bytes.subarray(cursor.offset);
        chunks.push(rest);
        lines += countLines(rest);
        bytes += rest.length;
        cursor.offset = 0;
      } else {
        chunks.push(entry.bytes);
        lines += entry.lines;
        bytes += entry.bytes.length;
      }
      lastToken = entry.lastToken;
      index++;
    }
    cursor.seq = this.baseSeq + index;
    return { chunks, lines, lastToken };
  }
}

/**
 * Offset in an entry's bytes of the first group with a token above `token`:
 * the line after the last numbered line at or below it. Tokens are the third
 * word of both RDATA and POSITION lines.
 */
function groupStartAfter(bytes: Buffer, token: number): number {
  let groupStart = 0;
  let lineStart = 0;
  while (lineStart < bytes.length) {
    const lf = bytes.indexOf(0x0a, lineStart);
    const sp1 = bytes.indexOf(0x20, lineStart);
    const sp2 = bytes.indexOf(0x20, sp1 + 1);
    let end = bytes.indexOf(0x20, sp2 + 1);
    if (end === -1 || end > lf) end = lf;
    const t = parseTokenBytes(bytes, sp2 + 1, end);
    if (t >= 0) {
      if (t > token) return groupStart;
      groupStart = lf + 1;
    }
    lineStart = lf + 1;
  }
  return groupStart;
}

function countLines(buf: Buffer): number {
  let n = 0;
  for (let i = buf.indexOf(0x0a); i !== -1; i = buf.indexOf(0x0a, i + 1)) n++;
  return n;
}
