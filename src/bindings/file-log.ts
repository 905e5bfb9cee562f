/**
 * A durable stream log (--log file:DIR): the StreamLog contract of
 * src/core/stream-log.ts kept in append-only segment files whose content is
 * the wire lines themselves, one directory per stream:
 *
 *     DIR/streams/events/00000000000000000000.seg    rows after token 0
 *     DIR/streams/events/00000000000001048576.seg    rows after 1048576 (the head when it was opened)
 *
 * A segment is named by the token its rows come after, so the oldest token
 * survives the deletion of older segments and a restart. An index of
 * records (one per stored entry; after a restart one per span of groups)
 * maps tokens to file offsets; the newest entries stay in memory, so live
 * fan-out and short catch-ups never touch the disk, and older reads are file
 * ranges read in chunks (read() answers a promise then). Appends made in one
 * event-loop turn are written in one writev; the listener hears each entry
 * once written (and, with fsync always, synced).
 */
import fs from 'node:fs';
import path from 'node:path';
import { groupEndAtOrBelow, takeEntry, TokenReservations, type LogCursor, type LogEntry, type LogListener, type LogRead, type ReadGather, type StreamLog } from '../core/stream-log.js';
import { linePrefixes, scanSegment, type LinePrefixes } from './file-log-scan.js';

/** `--fsync`: when written lines are forced to the disk. */
export type FsyncPolicy = { kind: 'always' } | { kind: 'interval'; ms: number } | { kind: 'never' };

export interface FileLogOptions {
  retentionRows: number;
  retentionBytes: number;
  /** Segments last written longer ago than this are deleted (the one being written never); null: no age limit. */
  retentionAgeMs: number | null;
  fsync: FsyncPolicy;
  /** A new segment is begun once the current one holds this many bytes. */
  segmentBytes?: number;
  /** Bytes of the newest entries kept in memory for fan-out and short catch-ups. */
  memoryBytes?: number;
  /** As MemoryLogOptions.startToken: for a stream with no segment yet. */
  startToken?: number;
  /**
   * The log holds descending rows (a followed Synapse pair's: backfill
   * publishes a batch 7, then 6, and 6 is appended after 7 at 7's token),
   * so reading a segment back accepts a row group below the row group
   * before it; a declared stream's log refuses it as corrupt.
   */
  descendingRows?: boolean;
  /** Told of what the log did that an operator should know (a torn tail cut, a disk error). */
  events?: Partial<FileLogEvents>;
}

export interface FileLogEvents {
  tornTailCut(file: string, offset: number, bytes: number): void;
  corrupt(file: string, offset: number, reason: string): void;
  appendFailed(file: string, err: Error): void;
  /** A write succeeded after a failure. */
  appendRecovered(file: string): void;
  fsynced(seconds: number): void;
  segmentDeleted(file: string, why: 'rows' | 'bytes' | 'age' | 'restart'): void;
}

export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MEMORY_BYTES = 32 * 1024 * 1024;
const SEGMENT_SUFFIX = '.seg';
/** A record made when reading segments back covers at most this much: the index stays sparse. */
const SPAN_BYTES = 16 * 1024;
const SPAN_GROUPS = 256;
/** A catch-up reads a segment this much at a time, and sends it as the socket drains. */
const READ_AHEAD_BYTES = 1024 * 1024;

interface Segment {
  readonly startsAfter: number;
  readonly file: string;
  /** Kept open for catch-up reads while the segment exists; null until the first read. */
  reader: Promise<fs.promises.FileHandle> | null;
  /** Reads under way: a deleted segment's handle is closed after the last. */
  reads: number;
  deleted: boolean;
  /** Bytes of good lines: where the next write goes. */
  size: number;
  /** Records of it still in the index: 0 makes it deletable. */
  liveRecords: number;
  lastWriteMs: number;
}

/** A stretch of a segment holding whole groups (an entry as appended, or a span found on reopening). */
interface IndexRecord {
  readonly seg: Segment;
  readonly start: number;
  readonly end: number;
  readonly firstToken: number;
  readonly lastToken: number;
  readonly rows: number;
  /** Lines served (0 for an advance). */
  readonly lines: number;
  /** A writer's POSITION, on disk as a line but never served (catch-up ends with one POSITION at the head). */
  readonly advance: boolean;
  /** The entry itself while in the memory window, null once only on disk. */
  entry: LogEntry | null;
  /** Set on the record where corrupt data begins: a read reaching it fails with this. */
  readonly corrupt: string | null;
  /** A span read back on opening (many groups), not an entry as appended: retention keeps it while it holds rows within the limits. */
  readonly span: boolean;
}

class FileCursor {
  /** Records read from the file ahead of what was sent, served from memory by the next reads. */
  ahead: ReadAhead | null = null;
  constructor(
    public seq: number,
    /** Bytes of the record already sent (a start inside a multi-group entry). */
    public offset: number,
    public skippedLines: number,
    /** A start inside an on-disk span, found by scanning it on the first read; null when known. */
    public after: number | null,
  ) {}
}

/** One file read of whole records: `buf` holds the bytes of `records`, from the first one's start. */
interface ReadAhead {
  buf: Buffer;
  from: number;
  records: IndexRecord[];
  /** The next record to send. */
  next: number;
}

const NO_LISTENER: LogListener = { stored() {}, gap() {} };

interface Batch {
  entries: LogEntry[];
  promise: Promise<void>;
  resolve(): void;
  reject(err: Error): void;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Every appender attaches its own handler; this keeps a batch nobody awaits from crashing the process.
  promise.catch(() => {});
  return { entries: [], promise, resolve, reject };
}

export class FileStreamLog implements StreamLog {
  private readonly prefixes: LinePrefixes;
  private readonly segmentBytes: number;
  private readonly memoryBytes: number;
  private readonly events: Partial<FileLogEvents>;
  private listener: LogListener = NO_LISTENER;
  private segments: Segment[] = [];
  /** The segment appends go to; null until the first write (or after a corrupt or failed one). */
  private current: Segment | null = null;
  private fd: number | null = null;
  private records: IndexRecord[] = [];
  private first = 0;
  private baseSeq = 0;
  /** First record still holding its entry in memory. */
  private memFirst = 0;
  private memBytes = 0;
  private headToken: number;
  private oldestToken: number;
  private anchored: boolean;
  private lastAppendedToken: number;
  private readonly reservations = new TokenReservations();
  private rowCount = 0;
  private byteCount = 0;
  private pending: Batch | null = null;
  private writing = false;
  private flushScheduled = false;
  private dirty = false;
  private syncing = false;
  private failing = false;
  /** Set by restartAt while a write is on its way: its entries are not confirmed. */
  private restartedDuringWrite = false;
  private closed = false;
  private idle: (() => void)[] = [];
  private readonly timers: NodeJS.Timeout[] = [];

  private constructor(
    readonly stream: string,
    readonly dir: string,
    private readonly options: FileLogOptions,
  ) {
    this.prefixes = linePrefixes(stream);
    this.segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.memoryBytes = Math.min(options.memoryBytes ?? DEFAULT_MEMORY_BYTES, options.retentionBytes);
    this.events = options.events ?? {};
    this.headToken = options.startToken ?? 0;
    this.oldestToken = this.headToken;
    this.anchored = options.startToken !== undefined;
    this.lastAppendedToken = this.headToken;
  }

  /** Opens (or creates) the log in `dir`: reads every segment back, cuts a torn tail, reports corrupt data. */
  static async open(stream: string, dir: string, options: FileLogOptions): Promise<FileStreamLog> {
    const log = new FileStreamLog(stream, dir, options);
    await fs.promises.mkdir(dir, { recursive: true });
    // One recovery at a time, all through one buffer: opening a large log leaves no garbage behind.
    recoveriesWaiting++;
    const turn = recoveries.then(() => log.recover());
    recoveries = turn.catch(() => {});
    try {
      await turn;
    } finally {
      // The last one gives the buffer back.
      if (--recoveriesWaiting === 0) scanBuffer = Buffer.alloc(0);
    }
    log.startTimers();
    return log;
  }

  get head(): number {
    return this.headToken;
  }

  get lastAppended(): number {
    return this.lastAppendedToken;
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

  /** Segment files on disk, oldest first. */
  get segmentFiles(): string[] {
    return this.segments.map((s) => s.file);
  }

  listen(listener: LogListener): void {
    this.listener = listener;
  }

  append(entry: LogEntry): Promise<void> {
    if (this.closed) throw new Error(`the file log of ${this.stream} is closed`);
    this.lastAppendedToken = entry.lastToken;
    const batch = (this.pending ??= newBatch());
    batch.entries.push(entry);
    if (!this.flushScheduled && !this.writing) {
      this.flushScheduled = true;
      // Every append of this event-loop turn goes in the same write.
      setImmediate(() => this.flush());
    }
    return batch.promise;
  }

  reserve(): number {
    return this.reservations.next(this.lastAppendedToken);
  }

  release(): void {
    this.reservations.release();
  }

  restartAt(token: number): void {
    if (token < this.headToken) throw new RangeError(`cannot restart at ${token}: below the head ${this.headToken}`);
    const unstored = this.pending;
    this.pending = null;
    unstored?.reject(new Error(`the log of ${this.stream} restarted at ${token} before these rows were stored`));
    if (this.writing) this.restartedDuringWrite = true;
    this.baseSeq += this.records.length + 1;
    this.records = [];
    this.first = 0;
    this.memFirst = 0;
    this.memBytes = 0;
    this.headToken = token;
    this.lastAppendedToken = token;
    this.oldestToken = token;
    this.anchored = true;
    this.rowCount = 0;
    this.byteCount = 0;
    if (!this.writing) this.restartFiles(token);
  }

  cursorAfter(token: number): LogCursor | null {
    if (token < this.oldestToken) return null;
    let lo = this.first;
    let hi = this.records.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.records[mid]!.lastToken > token) hi = mid;
      else lo = mid + 1;
    }
    const seq = this.baseSeq + lo;
    const rec = this.records[lo];
    if (rec === undefined || rec.firstToken > token || rec.corrupt !== null) return new FileCursor(seq, 0, 0, null) as unknown as LogCursor;
    const groups = rec.entry?.groups;
    if (rec.entry !== null) {
      if (groups === undefined) return new FileCursor(seq, 0, 0, null) as unknown as LogCursor;
      const at = groupEndAtOrBelow(groups, token);
      return new FileCursor(seq, at < 0 ? 0 : groups[at]!, at < 0 ? 0 : groups[at + 2]!, null) as unknown as LogCursor;
    }
    return new FileCursor(seq, 0, 0, token) as unknown as LogCursor;
  }

  read(logCursor: LogCursor, maxBytes: number): LogRead | null | Promise<LogRead | null> {
    const cursor = logCursor as unknown as FileCursor;
    const index = cursor.seq - this.baseSeq;
    if (index < this.first) return null;
    const rec = this.records[index];
    if (rec === undefined) return { chunks: [], lines: 0, lastToken: -1 };
    if (cursor.ahead !== null) return this.serveAhead(cursor, cursor.ahead, maxBytes);
    if (rec.entry === null || rec.corrupt !== null || cursor.after !== null) return this.readDisk(cursor, index, maxBytes);
    return this.readMemory(cursor, index, maxBytes);
  }

  /** Waits for writes under way, syncs (unless --fsync never) and closes the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    for (;;) {
      if (!this.writing && this.pending !== null) this.flush();
      // A flush that failed at once (no segment could be made) leaves nothing to wait for.
      if (!this.writing && this.pending === null) break;
      await new Promise<void>((resolve) => this.idle.push(resolve));
    }
    for (const seg of this.segments) {
      seg.deleted = true; // no more reads: the log is closed
      if (seg.reads === 0) closeReader(seg);
    }
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) {
      if (this.options.fsync.kind !== 'never') await syncFd(fd).catch(() => {});
      await new Promise<void>((resolve) => fs.close(fd, () => resolve()));
    }
  }

  // ------------------------------------------------------------ reading

  private readMemory(cursor: FileCursor, start: number, maxBytes: number): LogRead {
    const out: ReadGather = { chunks: [], lines: 0, bytes: 0 };
    let lastToken = -1;
    let index = start;
    while (index < this.records.length && out.bytes < maxBytes) {
      const rec = this.records[index]!;
      const entry = rec.entry;
      if (entry === null) break; // cannot happen past memFirst; a disk read takes over next time
      takeEntry(entry, cursor, out);
      lastToken = rec.lastToken;
      index++;
    }
    cursor.seq = this.baseSeq + index;
    return { chunks: out.chunks, lines: out.lines, lastToken };
  }

  /**
   * Reads whole records of one segment, about READ_AHEAD_BYTES, in one file
   * read; this read sends about `maxBytes` of them and the next reads the
   * rest from memory, so the socket does not wait on the disk for every chunk.
   */
  private async readDisk(cursor: FileCursor, start: number, maxBytes: number): Promise<LogRead | null> {
    const first = this.records[start]!;
    if (first.corrupt !== null) throw new Error(first.corrupt);
    const records: IndexRecord[] = [];
    let size = 0;
    for (let i = start; i < this.records.length && size < READ_AHEAD_BYTES; i++) {
      const rec = this.records[i]!;
      if (rec.seg !== first.seg || rec.corrupt !== null) break;
      records.push(rec);
      size += rec.end - rec.start;
    }
    const buf = await this.readSegment(first.seg, first.start, size);
    if (buf === null || this.records[cursor.seq - this.baseSeq] !== first) return null; // evicted or restarted meanwhile
    if (cursor.after !== null) {
      const after = cursor.after;
      let linesBefore = 0;
      scanSegment(buf.subarray(0, first.end - first.start), this.prefixes, -1, false, (end, token, lines) => {
        linesBefore += lines;
        if (token <= after) {
          cursor.offset = end;
          cursor.skippedLines = linesBefore;
        }
      }, this.descending());
      cursor.after = null;
    }
    const ahead: ReadAhead = { buf, from: first.start, records, next: 0 };
    cursor.ahead = ahead;
    return this.serveAhead(cursor, ahead, maxBytes);
  }

  /** The next records of a read-ahead, about `maxBytes`; null when the log dropped them meanwhile. */
  private serveAhead(cursor: FileCursor, ahead: ReadAhead, maxBytes: number): LogRead | null {
    if (this.records[cursor.seq - this.baseSeq] !== ahead.records[ahead.next]) {
      cursor.ahead = null;
      return null;
    }
    const chunks: Buffer[] = [];
    let lines = 0;
    let bytes = 0;
    let lastToken = -1;
    const { buf, from, records } = ahead;
    let i = ahead.next;
    while (i < records.length && (bytes < maxBytes || lastToken < 0)) {
      const rec = records[i++]!;
      lastToken = rec.lastToken;
      if (rec.advance) continue;
      const s = rec.start - from + cursor.offset;
      const e = rec.end - from;
      if (e > s) chunks.push(buf.subarray(s, e));
      bytes += e - s;
      lines += rec.lines - cursor.skippedLines;
      cursor.offset = 0;
      cursor.skippedLines = 0;
    }
    cursor.seq += i - ahead.next;
    ahead.next = i;
    if (i === records.length) cursor.ahead = null;
    return { chunks, lines, lastToken };
  }

  /** `length` bytes of `seg` from `position`, through its kept-open handle; null once the segment is gone. */
  private async readSegment(seg: Segment, position: number, length: number): Promise<Buffer | null> {
    if (seg.deleted) return null;
    seg.reads++;
    try {
      seg.reader ??= fs.promises.open(seg.file, 'r');
      const handle = await seg.reader;
      const buf = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await handle.read(buf, got, length - got, position + got);
        if (bytesRead === 0) throw new Error(`${seg.file} ends at ${position + got}, before the ${position + length} its index says`);
        got += bytesRead;
      }
      return buf;
    } catch (err) {
      // The segment was deleted by retention meanwhile: the cursor's rows are gone.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    } finally {
      if (--seg.reads === 0 && seg.deleted) closeReader(seg);
    }
  }

  // ------------------------------------------------------------ writing

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    if (batch === null || this.writing) return;
    this.pending = null;
    let seg: Segment;
    let fd: number;
    try {
      [seg, fd] = this.segmentFor(batch.entries[0]!);
    } catch (err) {
      this.failed(batch, this.current?.file ?? this.dir, err as Error);
      return;
    }
    const bufs = batch.entries.map((e) => (e.bytes.length > 0 ? e.bytes : this.positionLine(e.lastToken)));
    this.writing = true;
    writeAll(fd, bufs, (err) => {
      if (err !== null) return this.writeDone(batch, seg, err);
      if (this.options.fsync.kind === 'always') {
        const started = performance.now();
        fs.fdatasync(fd, (syncErr) => {
          if (syncErr === null) this.events.fsynced?.((performance.now() - started) / 1000);
          this.writeDone(batch, seg, syncErr);
        });
      } else {
        this.writeDone(batch, seg, null);
      }
    });
  }

  private writeDone(batch: Batch, seg: Segment, err: Error | null): void {
    this.writing = false;
    if (this.restartedDuringWrite) {
      this.restartedDuringWrite = false;
      batch.reject(new Error(`the log of ${this.stream} restarted before these rows were stored`));
      this.restartFiles(this.headToken);
    } else if (err !== null) {
      this.failed(batch, seg.file, err);
    } else {
      this.stored(batch, seg);
    }
    if (this.pending !== null) this.flush();
    else for (const wake of this.idle.splice(0)) wake();
  }

  private stored(batch: Batch, seg: Segment): void {
    this.dirty = true;
    seg.lastWriteMs = Date.now();
    if (this.failing) {
      this.failing = false;
      this.events.appendRecovered?.(seg.file);
    }
    for (const entry of batch.entries) {
      const fileBytes = entry.bytes.length > 0 ? entry.bytes.length : this.positionLine(entry.lastToken).length;
      if (!this.anchored) {
        this.anchored = true;
        this.oldestToken = entry.rows > 0 ? entry.firstToken - 1 : entry.lastToken;
      }
      const rec: IndexRecord = {
        seg,
        start: seg.size,
        end: seg.size + fileBytes,
        firstToken: entry.firstToken,
        lastToken: entry.lastToken,
        rows: entry.rows,
        lines: entry.lines,
        advance: entry.bytes.length === 0,
        entry,
        corrupt: null,
        span: false,
      };
      seg.size = rec.end;
      seg.liveRecords++;
      this.records.push(rec);
      this.headToken = entry.lastToken;
      this.rowCount += entry.rows;
      this.byteCount += entry.bytes.length;
      this.memBytes += entry.bytes.length;
      this.keepMemoryBound();
      this.evict();
      this.listener.stored(entry);
    }
    batch.resolve();
  }

  /** Nothing of a failed write is stored or heard of: cut what reached the file, fail it and every append after it. */
  private failed(batch: Batch, file: string, err: Error): void {
    const seg = this.current;
    if (seg !== null && this.fd !== null) {
      try {
        fs.ftruncateSync(this.fd, seg.size);
      } catch {
        // The file may end in part of this write: begin a new segment, so it is never followed by good lines.
        this.retire();
      }
    }
    const later = this.pending;
    this.pending = null;
    this.lastAppendedToken = this.headToken;
    this.failing = true;
    const reason = describeWriteError(file, err);
    this.events.appendFailed?.(file, reason);
    batch.reject(reason);
    later?.reject(new Error(`not stored: an earlier append to ${file} failed (${reason.message})`));
  }

  /**
   * The segment for the next write: the current one, or a new one once it is
   * full. A descending row (its token not above the head) stays in the
   * segment of the row it follows: a segment is named after the token it
   * starts after, so a new one begins only past a rising token.
   */
  private segmentFor(firstEntry: LogEntry): [Segment, number] {
    const fits = this.current !== null && (this.current.size < this.segmentBytes || firstEntry.lastToken <= this.headToken);
    if (fits && this.fd !== null) return [this.current!, this.fd];
    this.retire();
    const startsAfter = this.anchored ? this.headToken : firstEntry.rows > 0 ? firstEntry.firstToken - 1 : firstEntry.lastToken;
    const file = path.join(this.dir, segmentName(startsAfter));
    const fd = fs.openSync(file, 'a');
    const seg: Segment = { startsAfter, file, size: fs.fstatSync(fd).size, liveRecords: 0, lastWriteMs: Date.now(), reader: null, reads: 0, deleted: false };
    if (seg.size !== 0) {
      fs.closeSync(fd);
      throw new Error(`${file} already exists and is not empty: another process writes this log directory`);
    }
    this.segments.push(seg);
    this.current = seg;
    this.fd = fd;
    if (this.options.fsync.kind !== 'never') syncDir(this.dir);
    return [seg, fd];
  }

  /** The current segment takes no more writes: sync and close it. */
  private retire(): void {
    const fd = this.fd;
    this.fd = null;
    this.current = null;
    if (fd === null) return;
    if (this.options.fsync.kind === 'never') fs.close(fd, () => {});
    else fs.fdatasync(fd, () => fs.close(fd, () => {}));
  }

  private positionLine(token: number): Buffer {
    return Buffer.from(`POSITION ${this.stream} ${token}\n`);
  }

  // ------------------------------------------------------------ retention

  /** Older entries leave memory (they stay on disk) once the window is full; the newest always stays. */
  private keepMemoryBound(): void {
    const last = this.records.length - 1;
    while (this.memBytes > this.memoryBytes && this.memFirst < last) {
      const rec = this.records[this.memFirst++];
      if (rec === undefined || rec.entry === null) continue;
      this.memBytes -= rec.entry.bytes.length;
      rec.entry = null;
    }
  }

  /** Retention by rows and bytes: whole records leave the index, oldest first; a segment left empty is deleted. */
  private evict(): void {
    const { retentionRows, retentionBytes } = this.options;
    while ((this.rowCount > retentionRows || this.byteCount > retentionBytes) && this.records.length - this.first > 1) {
      const rec = this.records[this.first]!;
      // A span goes only when what is left still exceeds a limit: a restart never
      // refuses rows it served before (at most one span more than the limits).
      if (rec.span && this.rowCount - rec.rows <= retentionRows && this.byteCount - (rec.end - rec.start) <= retentionBytes) break;
      this.evictFirst(this.rowCount > retentionRows ? 'rows' : 'bytes');
    }
    this.compact();
  }

  private evictFirst(why: 'rows' | 'bytes' | 'age'): void {
    const rec = this.records[this.first]!;
    this.records[this.first] = undefined as unknown as IndexRecord;
    this.first++;
    if (this.memFirst < this.first) this.memFirst = this.first;
    if (rec.entry !== null) this.memBytes -= rec.entry.bytes.length;
    this.rowCount -= rec.rows;
    if (!rec.advance) this.byteCount -= rec.end - rec.start;
    this.oldestToken = Math.max(this.oldestToken, rec.lastToken);
    if (--rec.seg.liveRecords === 0 && rec.seg !== this.current) this.deleteSegment(rec.seg, why);
  }

  private compact(): void {
    if (this.first > 1024 && this.first * 2 > this.records.length) {
      this.records = this.records.slice(this.first);
      this.baseSeq += this.first;
      this.memFirst -= this.first;
      this.first = 0;
    }
  }

  private deleteSegment(seg: Segment, why: 'rows' | 'bytes' | 'age' | 'restart'): void {
    const i = this.segments.indexOf(seg);
    if (i !== -1) this.segments.splice(i, 1);
    seg.deleted = true;
    if (seg.reads === 0) closeReader(seg);
    fs.rm(seg.file, { force: true }, () => {});
    this.events.segmentDeleted?.(seg.file, why);
  }

  /** Retention by age: whole segments, oldest first, never the one being written. */
  private expire(now: number): void {
    const ageMs = this.options.retentionAgeMs;
    if (ageMs === null) return;
    while (this.segments.length > 0) {
      const seg = this.segments[0]!;
      if (seg === this.current || now - seg.lastWriteMs <= ageMs) break;
      const next = this.segments[1];
      // The newest stored rows stay, even when every segment is old.
      if (next === undefined && this.records.length - this.first > 0) break;
      while (this.first < this.records.length && this.records[this.first]!.seg === seg) this.evictFirst('age');
      if (this.segments[0] === seg) this.deleteSegment(seg, 'age');
      if (next !== undefined) this.oldestToken = Math.max(this.oldestToken, next.startsAfter);
    }
    this.compact();
  }

  private startTimers(): void {
    const fsync = this.options.fsync;
    if (fsync.kind === 'interval') {
      const t = setInterval(() => this.syncNow(), fsync.ms);
      t.unref();
      this.timers.push(t);
    }
    const ageMs = this.options.retentionAgeMs;
    if (ageMs !== null) {
      this.expire(Date.now());
      const t = setInterval(() => this.expire(Date.now()), Math.max(10, Math.min(ageMs / 4, 60_000)));
      t.unref();
      this.timers.push(t);
    }
  }

  private syncNow(): void {
    const fd = this.fd;
    if (!this.dirty || this.syncing || fd === null) return;
    this.dirty = false;
    this.syncing = true;
    const started = performance.now();
    fs.fdatasync(fd, (err) => {
      this.syncing = false;
      if (err === null) this.events.fsynced?.((performance.now() - started) / 1000);
      else if (err.code !== 'EBADF') {
        // Rows already served may not be on the disk: unhealthy until a write goes through again.
        this.failing = true;
        this.events.appendFailed?.(this.current?.file ?? this.dir, describeWriteError(this.current?.file ?? this.dir, err));
      }
    });
  }

  /** restartAt's files: every segment goes (the history before `token` is unknown), then an empty one named `token`. */
  private restartFiles(token: number): void {
    this.retire();
    for (const seg of [...this.segments]) this.deleteSegmentNow(seg);
    const file = path.join(this.dir, segmentName(token));
    const fd = fs.openSync(file, 'a');
    const seg: Segment = { startsAfter: token, file, size: 0, liveRecords: 0, lastWriteMs: Date.now(), reader: null, reads: 0, deleted: false };
    this.segments = [seg];
    this.current = seg;
    this.fd = fd;
    if (this.options.fsync.kind !== 'never') syncDir(this.dir);
  }

  /** Deleted before the restart's new segment is made: a crash between leaves no old history beside it. */
  private deleteSegmentNow(seg: Segment): void {
    fs.rmSync(seg.file, { force: true });
    this.segments.splice(this.segments.indexOf(seg), 1);
    seg.deleted = true;
    if (seg.reads === 0) closeReader(seg);
    this.events.segmentDeleted?.(seg.file, 'restart');
  }

  // ------------------------------------------------------------ recovery

  private async recover(): Promise<void> {
    const names = (await fs.promises.readdir(this.dir)).filter((n) => n.endsWith(SEGMENT_SUFFIX) && /^\d+\.seg$/.test(n));
    names.sort((a, b) => Number(a.slice(0, -SEGMENT_SUFFIX.length)) - Number(b.slice(0, -SEGMENT_SUFFIX.length)));
    let lastToken = -1;
    let lastCorrupt = false;
    for (const [i, name] of names.entries()) {
      const file = path.join(this.dir, name);
      const startsAfter = Number(name.slice(0, -SEGMENT_SUFFIX.length));
      const [buf, stat] = await readWhole(file);
      const seg: Segment = { startsAfter, file, size: 0, liveRecords: 0, lastWriteMs: stat.mtimeMs, reader: null, reads: 0, deleted: false };
      if (i === 0) {
        this.oldestToken = startsAfter;
        this.anchored = true;
      }
      this.segments.push(seg);
      const isLast = i === names.length - 1;
      const after = Math.max(startsAfter, lastToken);
      const spans = new SpanBuilder(seg, (rec) => this.addRecovered(rec));
      const result = scanSegment(buf, this.prefixes, after, isLast, (end, token, lines, rows) => spans.group(end, token, lines, rows), this.descending());
      spans.finish();
      seg.size = result.goodEnd;
      lastToken = Math.max(lastToken, result.lastToken, startsAfter);
      lastCorrupt = result.corrupt !== null;
      if (result.corrupt !== null) {
        const { offset, reason } = result.corrupt;
        const next = names[i + 1];
        const resumesAt = next === undefined ? result.lastToken : Number(next.slice(0, -SEGMENT_SUFFIX.length));
        this.events.corrupt?.(file, offset, reason);
        this.addRecovered({
          seg,
          start: result.goodEnd,
          end: result.goodEnd,
          firstToken: result.lastToken + 1,
          lastToken: Math.max(resumesAt, result.lastToken),
          rows: 0,
          lines: 0,
          advance: true,
          entry: null,
          corrupt:
            `corrupt data in ${file} at offset ${offset} (${reason}): catch-up of ${this.stream} cannot go past token ${result.lastToken}; ` +
            'move the segment away or restore it from a backup, then restart the gateway',
          span: false,
        });
      } else if (result.tornBytes > 0) {
        await fs.promises.truncate(file, result.goodEnd);
        this.events.tornTailCut?.(file, result.goodEnd, result.tornBytes);
      }
    }
    this.memFirst = this.records.length;
    this.setAsideEmptyCorruptTail(lastCorrupt);
    const last = this.segments[this.segments.length - 1];
    if (last !== undefined) {
      this.headToken = lastToken;
      this.lastAppendedToken = lastToken;
      if (!lastCorrupt) {
        // Appends go on in the last segment (a corrupt one is never written after its bad bytes).
        this.current = last;
        this.fd = fs.openSync(last.file, 'a');
      }
    }
    this.evict();
  }

  /**
   * A last segment corrupt before its first good group holds nothing to
   * serve, and its name is the one the next segment takes: it is renamed
   * to `.corrupt` for the operator, and appends begin a new segment.
   */
  private setAsideEmptyCorruptTail(lastCorrupt: boolean): void {
    const last = this.segments[this.segments.length - 1];
    if (!lastCorrupt || last === undefined || last.size > 0) return;
    fs.renameSync(last.file, `${last.file}.corrupt`);
    this.segments.pop();
    const marker = this.records.pop()!;
    marker.seg.liveRecords--;
    this.memFirst = this.records.length;
  }

  /** Whether reading back keeps descending rows (a segment never begins with one: see segmentFor). */
  private descending(): boolean {
    return this.options.descendingRows === true;
  }

  private addRecovered(rec: IndexRecord): void {
    rec.seg.liveRecords++;
    this.records.push(rec);
    this.rowCount += rec.rows;
    if (!rec.advance) this.byteCount += rec.end - rec.start;
  }
}

/** Groups found on reopening, gathered into records of about SPAN_BYTES (an advance is a record of its own). */
class SpanBuilder {
  private start = 0;
  private end = 0;
  private firstToken = -1;
  private lastToken = -1;
  private rows = 0;
  private lines = 0;
  private groups = 0;

  constructor(
    private readonly seg: Segment,
    private readonly add: (rec: IndexRecord) => void,
  ) {}

  group(end: number, token: number, lines: number, rows: number): void {
    if (rows === 0) {
      this.close();
      this.add({ seg: this.seg, start: this.end, end, firstToken: token, lastToken: token, rows: 0, lines: 0, advance: true, entry: null, corrupt: null, span: false });
      this.start = this.end = end;
      return;
    }
    if (this.groups === 0) this.firstToken = token;
    this.end = end;
    this.lastToken = token;
    this.rows += rows;
    this.lines += lines;
    this.groups++;
    if (this.groups >= SPAN_GROUPS || this.end - this.start >= SPAN_BYTES) this.close();
  }

  finish(): void {
    this.close();
  }

  private close(): void {
    if (this.groups === 0) return;
    this.add({
      seg: this.seg,
      start: this.start,
      end: this.end,
      firstToken: this.firstToken,
      lastToken: this.lastToken,
      rows: this.rows,
      lines: this.lines,
      advance: false,
      entry: null,
      corrupt: null,
      span: true,
    });
    this.start = this.end;
    this.rows = this.lines = this.groups = 0;
  }
}

export function segmentName(startsAfter: number): string {
  return `${String(startsAfter).padStart(20, '0')}${SEGMENT_SUFFIX}`;
}

/** writev until every byte is written (a file write may be short, e.g. just before ENOSPC). */
function writeAll(fd: number, bufs: Buffer[], done: (err: Error | null) => void): void {
  let total = 0;
  for (const b of bufs) total += b.length;
  fs.writev(fd, bufs, (err, written) => {
    if (err !== null) return done(err);
    if (written === total) return done(null);
    let skip = written;
    const rest: Buffer[] = [];
    for (const b of bufs) {
      if (skip >= b.length) skip -= b.length;
      else {
        rest.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    writeAll(fd, rest, done);
  });
}

/** Recoveries run one after another (see open), so they share `scanBuffer`. */
let recoveries: Promise<void> = Promise.resolve();
let recoveriesWaiting = 0;
let scanBuffer = Buffer.alloc(0);

/** A segment's bytes, in the shared scan buffer (valid until the next call), and its stat. */
async function readWhole(file: string): Promise<[Buffer, fs.Stats]> {
  const handle = await fs.promises.open(file, 'r');
  try {
    const stat = await handle.stat();
    if (scanBuffer.length < stat.size) scanBuffer = Buffer.allocUnsafe(Math.max(stat.size, Math.min(2 * scanBuffer.length, DEFAULT_SEGMENT_BYTES)));
    const buf = scanBuffer.subarray(0, stat.size);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await handle.read(buf, got, buf.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return [buf.subarray(0, got), stat];
  } finally {
    await handle.close();
  }
}

function closeReader(seg: Segment): void {
  const reader = seg.reader;
  seg.reader = null;
  reader?.then((h) => h.close()).catch(() => {});
}

function syncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err === null ? resolve() : reject(err))));
}

/** A new or removed file is durable once its directory is synced. */
function syncDir(dir: string): void {
  fs.open(dir, 'r', (err, fd) => {
    if (err !== null) return;
    fs.fsync(fd, () => fs.close(fd, () => {}));
  });
}

function describeWriteError(file: string, err: Error): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const hint =
    code === 'ENOSPC'
      ? 'the disk is full: free space or lower --retention-bytes'
      : code === 'EIO'
        ? 'the disk reported an I/O error: check the device'
        : 'check the log directory';
  return Object.assign(new Error(`could not write ${file}: ${err.message} (${hint}); nothing of this write was stored`), { code });
}

