/**
 * One replication stream kept in a Redis stream (the StreamLog contract of
 * src/core/stream-log.ts), so several gateways on one Redis serve the same
 * tokens. Keys and scripts: redis-scripts.ts; connections, the one XREAD
 * loop and health: redis-store.ts.
 *
 *     append    EVALSHA append (checks the head, XADDs `<lastToken>-0`, trims)  -> stored
 *     live      the store's XREAD loop hands every new entry to deliver(), in id order
 *               -> the listener hears it; an append answers once its entry was heard
 *     catch-up  XRANGE (position+1)-0 .. head-0 COUNT n, paced by the subscriber's reads,
 *               two ranges of about one read each asked ahead (what a catch-up holds at most)
 *
 * The listener hears entries only from the XREAD loop, own appends
 * included: one order for every gateway, each entry exactly once, never an
 * own entry before an earlier one another gateway wrote. `head` is the last
 * entry heard, so a catch-up (bounded by it) never runs ahead of live fan-out.
 */
import {
  DEFAULT_RETENTION_BYTES,
  DEFAULT_RETENTION_ROWS,
  groupEndAtOrBelow,
  tokenNotRising,
  TokenReservations,
  type LogCursor,
  type LogEntry,
  type LogListener,
  type LogRead,
  type MemoryLogOptions,
  type StreamLog,
} from '../core/stream-log.js';
import { FIELD } from './redis-scripts.js';

/** What a stream's log needs of the store: its command connection, as calls. */
export interface RedisLogLink {
  /** Runs the append script; resolves {oldest, rows, bytes} after the entry is stored. */
  append(keys: RedisStreamKeys, args: (string | Buffer)[]): Promise<number[]>;
  range(key: string, start: string, end: string, count: number): Promise<[Buffer, Buffer[]][]>;
  restart(keys: RedisStreamKeys, token: number): Promise<unknown>;
  /** A fresh tag for one append: whose append the stream head is. */
  nextTag(): string;
  /** Whether the XREAD loop is running: an entry stored while it is down may never be heard back. */
  readonly readerUp: boolean;
  /** An operation of this log failed outside any caller (a restart): shown in /healthz. */
  problem(stream: string, err: unknown): void;
}

export interface RedisStreamKeys {
  readonly stream: string;
  readonly meta: string;
}

/** The state of a stream in Redis when the gateway opens it. */
export interface RedisStreamStart {
  head: number;
  oldest: number;
  rows: number;
  bytes: number;
}

interface WaitingAppend {
  readonly lastToken: number;
  resolve(): void;
  reject(err: Error): void;
}

/** A subscriber's place: the token it has read up to, in the log's current epoch. */
class RedisCursor {
  /** The next reads' XRANGEs, asked while earlier rows are written out: in order, each from where the one before ends. */
  ahead: ReadAhead[] = [];
  constructor(
    public position: number,
    readonly epoch: number,
  ) {}
}

type RangeEntries = [Buffer, Buffer[]][];

interface ReadAhead {
  readonly from: number;
  readonly entries: Promise<RangeEntries>;
  /** The token its entries end at, once answered (null before, or when it failed or found nothing). */
  end: number | null;
}

const NO_LISTENER: LogListener = { stored() {}, gap() {} };
/** XRANGEs of about one read each asked ahead of a catching-up cursor: what a catch-up holds beyond the read in hand. */
const READ_AHEAD = 2;
/** Entries fetched per XRANGE at most. */
const MAX_RANGE_COUNT = 10_000;

export class RedisStreamLog implements StreamLog {
  private readonly retentionRows: string;
  private readonly retentionBytes: string;
  private headToken: number;
  private oldestToken: number;
  private rowCount: number;
  private byteCount: number;
  private appended: number;
  private inFlight = 0;
  /** Tag of the last append sent: an append sent behind it requires it to be the head. */
  private lastTag = '';
  private readonly reservations = new TokenReservations();
  /** Bumped by restartAt: every earlier cursor reads null. */
  private epoch = 0;
  /** Stored appends waiting to be heard back, in token order. */
  private readonly waiting: WaitingAppend[] = [];
  /** Bytes per stored entry, smoothed over reads: how many entries an XRANGE asks for. */
  private entryBytes = 1024;
  private listener: LogListener = NO_LISTENER;

  constructor(
    readonly name: string,
    readonly keys: RedisStreamKeys,
    private readonly link: RedisLogLink,
    start: RedisStreamStart,
    options: MemoryLogOptions,
  ) {
    this.retentionRows = String(options.retentionRows ?? DEFAULT_RETENTION_ROWS);
    this.retentionBytes = String(options.retentionBytes ?? DEFAULT_RETENTION_BYTES);
    this.headToken = start.head;
    this.oldestToken = start.oldest;
    this.rowCount = start.rows;
    this.byteCount = start.bytes;
    this.appended = start.head;
  }

  get head(): number {
    return this.headToken;
  }

  get lastAppended(): number {
    return this.inFlight > 0 ? this.appended : this.headToken;
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

  append(entry: LogEntry): Promise<void> {
    const floor = this.lastAppended;
    if (entry.firstToken <= floor) return Promise.reject(tokenNotRising(this.name, entry.firstToken, floor));
    const prevTag = this.inFlight > 0 ? this.lastTag : '';
    const tag = this.link.nextTag();
    this.lastTag = tag;
    this.appended = entry.lastToken;
    this.inFlight++;
    const groups = entry.groups;
    const args: (string | Buffer)[] = [
      String(entry.lastToken),
      String(entry.firstToken),
      prevTag,
      tag,
      String(floor),
      entry.bytes,
      String(entry.lines),
      String(entry.rows),
      String(entry.bytes.length),
      this.retentionRows,
      this.retentionBytes,
      // Native byte order: the store refuses to open on a big-endian host.
      groups === undefined ? '' : Buffer.from(groups.buffer, groups.byteOffset, groups.byteLength),
    ];
    return new Promise<void>((resolve, reject) => {
      const waiting: WaitingAppend = { lastToken: entry.lastToken, resolve, reject };
      this.link.append(this.keys, args).then(
        (reply) => {
          this.oldestToken = Math.max(this.oldestToken, reply[0]!);
          this.rowCount = reply[1]!;
          this.byteCount = reply[2]!;
          if (this.headToken >= entry.lastToken) return this.settle(waiting, null);
          if (!this.link.readerUp) {
            return this.settle(waiting, new Error('stored in Redis, but the XREAD connection is down, so it was not heard back yet; resume from the stream head'));
          }
          this.waiting.push(waiting);
        },
        (err: unknown) => this.settle(waiting, appendError(this.name, err)),
      );
    });
  }

  /** Local: the append script refuses a token another gateway stored first, so such a publish fails, never duplicates. */
  reserve(): number {
    return this.reservations.next(this.lastAppended);
  }

  release(): void {
    this.reservations.release();
  }

  restartAt(token: number): void {
    if (token < this.headToken) throw new RangeError(`cannot restart at ${token}: below the head ${this.headToken}`);
    this.epoch++;
    this.headToken = token;
    this.oldestToken = token;
    this.rowCount = 0;
    this.byteCount = 0;
    // Commands go out in order on one connection: appends after this see the restarted stream.
    this.link.restart(this.keys, token).catch((err: unknown) => this.link.problem(this.name, err));
  }

  cursorAfter(token: number): LogCursor | null {
    // A trim by another gateway since is caught by the first read (the `p` chain).
    if (token < this.oldestToken) return null;
    return new RedisCursor(token, this.epoch) as unknown as LogCursor;
  }

  read(logCursor: LogCursor, maxBytes: number): LogRead | null | Promise<LogRead | null> {
    const cursor = logCursor as unknown as RedisCursor;
    if (cursor.epoch !== this.epoch) return null;
    const from = cursor.position;
    const next = cursor.ahead.shift();
    if (from >= this.headToken) return { chunks: [], lines: 0, lastToken: -1 };
    let answer: Promise<LogRead | null>;
    if (next !== undefined && next.from === from) {
      answer = this.prefetched(cursor, next.entries, maxBytes);
    } else {
      cursor.ahead = [];
      answer = this.fetch(cursor, maxBytes);
    }
    return answer.then((read) => {
      if (read !== null) this.topUp(cursor, maxBytes);
      return read;
    });
  }

  /** Keeps READ_AHEAD ranges asked ahead of the cursor, so Redis works while earlier rows go out. */
  private topUp(cursor: RedisCursor, maxBytes: number): void {
    if (cursor.epoch !== this.epoch || cursor.ahead.length >= READ_AHEAD) return;
    const last = cursor.ahead.at(-1);
    const from = last === undefined ? cursor.position : last.end;
    if (from === null || from >= this.headToken) return;
    const item: ReadAhead = { from, entries: this.range(from, maxBytes), end: null };
    cursor.ahead.push(item);
    item.entries.then(
      (got) => {
        if (got.length === 0) return;
        item.end = decimal(got[got.length - 1]![0], 0);
        if (cursor.ahead.at(-1) === item) this.topUp(cursor, maxBytes);
      },
      () => {}, // a failed range is asked again by the read that needs it
    );
  }

  private range(from: number, maxBytes: number): Promise<RangeEntries> {
    const count = Math.min(MAX_RANGE_COUNT, Math.max(1, Math.ceil(maxBytes / this.entryBytes)));
    return this.link.range(this.keys.stream, `${from + 1}-0`, `${this.headToken}-0`, count);
  }

  private fetch(cursor: RedisCursor, maxBytes: number): Promise<LogRead | null> {
    const from = cursor.position;
    return this.range(from, maxBytes).then((entries) => {
      if (cursor.epoch !== this.epoch || cursor.position !== from) return null;
      return this.readEntries(cursor, entries);
    });
  }

  /** A prefetched XRANGE, unless it failed or its first entry has been evicted since (then asked again). */
  private async prefetched(cursor: RedisCursor, prefetch: Promise<RangeEntries>, maxBytes: number): Promise<LogRead | null> {
    let entries: RangeEntries;
    try {
      entries = await prefetch;
    } catch {
      return this.fetch(cursor, maxBytes);
    }
    if (cursor.epoch !== this.epoch) return null;
    if (entries.length === 0 || decimal(entries[0]![0], 0) <= this.oldestToken) return this.fetch(cursor, maxBytes);
    return this.readEntries(cursor, entries);
  }

  /** XRANGE's entries as a read: null when they do not follow the cursor (trimmed or restarted under it). */
  private readEntries(cursor: RedisCursor, entries: RangeEntries): LogRead | null {
    if (entries.length === 0) return null; // entries up to the head were there, and are gone
    const chunks: Buffer[] = [];
    let lines = 0;
    let bytes = 0;
    let position = cursor.position;
    for (let i = 0; i < entries.length; i++) {
      const [id, fields] = entries[i]!;
      const prev = decimal(fields[FIELD.p]!, 0);
      if (i === 0 ? prev > position : prev !== position) return null;
      const token = decimal(id, 0);
      const v = fields[FIELD.v]!;
      let entryLines = decimal(fields[FIELD.l]!, 0);
      let part = v;
      if (i === 0 && prev < position && fields.length > FIELD.g) {
        // The cursor is inside this entry: start after its last group at or below the position.
        const groups = groupsOf(fields[FIELD.g]!);
        const at = groupEndAtOrBelow(groups, position);
        if (at >= 0) {
          part = v.subarray(groups[at]!);
          entryLines -= groups[at + 2]!;
        }
      }
      if (part.length > 0) {
        chunks.push(part);
        lines += entryLines;
        bytes += part.length;
      }
      position = token;
    }
    this.entryBytes = Math.max(64, (this.entryBytes + bytes / entries.length) / 2);
    cursor.position = position;
    return { chunks, lines, lastToken: position };
  }

  /**
   * The XREAD loop's next entry of this stream (in id order): the listener
   * hears it, then the appends it stored answer. An entry already heard
   * (one read twice around a reconnect, or from before a restart) is skipped.
   */
  deliver(id: Buffer, fields: Buffer[]): void {
    const token = decimal(id, 0);
    if (token <= this.headToken) return;
    const prev = decimal(fields[FIELD.p]!, 0);
    if (prev !== this.headToken) {
      // Entries between were trimmed or lost before this gateway heard them.
      this.oldestToken = Math.max(this.oldestToken, prev);
      this.listener.gap(this.headToken);
    }
    const lines = decimal(fields[FIELD.l]!, 0);
    const groups = fields.length > FIELD.g ? groupsOf(fields[FIELD.g]!) : undefined;
    const entry: LogEntry = {
      firstToken: groups === undefined ? token : groups[1]!,
      lastToken: token,
      bytes: fields[FIELD.v]!,
      lines,
      rows: decimal(fields[FIELD.r]!, 0),
      groups,
    };
    this.headToken = token;
    this.listener.stored(entry);
    const waiting = this.waiting;
    while (waiting.length > 0 && waiting[0]!.lastToken <= token) this.settle(waiting.shift()!, null);
  }

  /** The store's figures of the stream (another gateway's appends and trims). */
  refreshed(oldest: number, rows: number, bytes: number): void {
    this.oldestToken = Math.max(this.oldestToken, oldest);
    this.rowCount = rows;
    this.byteCount = bytes;
  }

  /** The XREAD connection failed: stored appends not heard back cannot be confirmed. */
  readerLost(reason: string): void {
    const err = new Error(`the Redis XREAD connection failed before the rows were heard back (${reason}); resume from the stream head`);
    for (const w of this.waiting.splice(0)) this.settle(w, err);
  }

  private settle(waiting: WaitingAppend, err: Error | null): void {
    this.inFlight--;
    if (err === null) waiting.resolve();
    else waiting.reject(err);
  }
}

/** A clear error for a failed append: a lost race, or Redis unavailable. */
function appendError(stream: string, err: unknown): Error {
  const message = err instanceof Error ? err.message : String(err);
  if (message.startsWith('TOKEN_NOT_RISING ') || message.startsWith('CHAIN_BROKEN ')) {
    return new Error(`${stream}: ${message.slice(message.indexOf(' ') + 1)} (another gateway wrote it first)`);
  }
  // ioredis's words for "not sent" and "sent, no answer": say what they mean here.
  const reason = /enableOfflineQueue/.test(message)
    ? 'Redis is not connected'
    : /max retries per request/i.test(message)
      ? 'the connection to Redis was lost before it answered'
      : message;
  return new Error(`Redis could not store rows of ${stream}: ${reason}`);
}

/** A non-negative decimal (a token, a count) from its ASCII digits, up to the first non-digit. */
function decimal(b: Buffer, from: number): number {
  let n = 0;
  for (let i = from; i < b.length; i++) {
    const d = b[i]! - 48;
    if (d < 0 || d > 9) break;
    n = n * 10 + d;
  }
  return n;
}

/** Group ends stored as Float64 bytes; copied, as a Redis reply's offset need not be 8-aligned. */
function groupsOf(b: Buffer): Float64Array {
  const groups = new Float64Array(b.length / 8);
  new Uint8Array(groups.buffer).set(b);
  return groups;
}
