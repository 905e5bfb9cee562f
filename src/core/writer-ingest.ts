/**
 * A writer's lines become log entries here (PROTOCOL.md section 4):
 *
 *     < RDATA events 41 [...]          }
 *     < RDATA events batch [...]       } one chunk: one entry, one shared slice of it,
 *     < RDATA events 42 [...]          } with the end of each group (41, 42) carried along
 *     < RDATA events batch [...]       a batch tail: waits for its numbered row
 *     < POSITION events 60             an advance, stored without a line
 *
 * Tokens rise strictly per stream above what the log was handed; a batch
 * ends with its numbered row. A run of contiguous lines of one stream in one
 * chunk is stored as one slice of that chunk; a line that cannot extend a run
 * (a batch spanning chunks, a CR LF line) is stored apart. This is the one
 * place where appends are made for writers: a log that answers later, or
 * fails, is handled here, and a second dialect's lines arrive here too.
 * Every row's JSON is checked here before it joins a run:
 *
 *     < RDATA events 43 not-json       ERROR row of events at token 43 is not valid JSON: ...
 */
import { ProtocolError } from './errors.js';
import { JsonValidator } from './json-validator.js';
import { advanceEntry, tokenNotRising, type LogEntry, type StreamLog } from './stream-log.js';

const LF = 0x0a;
/** Triples per slab of group ends: 8,192 groups, 192 KiB. */
const GROUP_SLAB = 3 * 8192;

/** A run of contiguous lines of one stream in one chunk: stored as one slice. */
interface WriterRun {
  stream: string;
  log: StreamLog;
  buf: Buffer;
  start: number;
  end: number;
  /** End of the last complete group: a trailing `batch` tail waits for its numbered row. */
  committedEnd: number;
  committedLines: number;
  lines: number;
  /** Complete groups so far; their ends are in the ingest's slab, from `slabAt`. */
  groups: number;
  firstToken: number;
  lastToken: number;
}

/** `batch` lines whose numbered row has not come yet. */
interface PendingBatch {
  parts: Buffer[];
  lines: number;
}

export interface IngestOptions {
  /** The log of a stream this writer may write; throws a ProtocolError otherwise. */
  logOf(stream: string): StreamLog;
  /** A log could not store this writer's rows: the connection sends ERROR and closes. */
  storeFailed(err: ProtocolError): void;
}

export class WriterIngest {
  private run: WriterRun | null = null;
  private readonly pendingBatches = new Map<string, PendingBatch>();
  /**
   * Group ends, `[end, token, lines]` each, written in place: an entry of
   * several groups keeps a view of its stretch, so entries share one
   * allocation per slab instead of copying theirs out one by one. The
   * current run's groups start at `slabAt`.
   */
  private slab = new Float64Array(GROUP_SLAB);
  private slabAt = 0;
  private readonly logOf: (stream: string) => StreamLog;
  /** Made once: the rejection handler of every append that answers later. */
  private readonly onAppendFailed: (err: unknown) => void;
  private failed = false;
  /** The last stream written and its log: a writer's lines are mostly of one stream (names are interned). */
  private lastStream = '';
  private lastLog: StreamLog | undefined;
  private readonly json = new JsonValidator();

  constructor(options: IngestOptions) {
    this.logOf = options.logOf;
    this.onAppendFailed = (err) => {
      if (this.failed) return;
      this.failed = true;
      const reason = err instanceof Error ? err.message : String(err);
      options.storeFailed(new ProtocolError('STORE_FAILED', `rows could not be stored: ${reason}`));
    };
  }

  /**
   * An RDATA line `buf[start, end)` (end at its LF or CR) of `stream`, its
   * row's JSON from `rowStart`; `token` null for a `batch` row.
   */
  row(stream: string, token: number | null, buf: Buffer, start: number, rowStart: number, end: number): void {
    // Kept small so it inlines into the scanner's loop: the usual line extends the current run.
    const log = stream === this.lastStream ? this.lastLog! : this.resolve(stream);
    if (!this.json.valid(buf, rowStart, end)) this.refuseRow(stream, log, token);
    const run = this.run;
    if (run === null || run.log !== log || run.buf !== buf || run.end !== start || buf[end] !== LF) {
      return this.rowOutsideRun(stream, log, token, buf, start, end);
    }
    // A run of this stream is open, so no batch of it is pending (endRun sets those).
    if (token !== null) {
      const head = run.lastToken >= 0 ? run.lastToken : log.lastAppended;
      if (token <= head) throw tokenNotRising(stream, token, head);
    }
    this.extend(run, token, end);
  }

  /** A line that starts a run, or cannot join one (a batch spanning chunks, a CR LF line). */
  private rowOutsideRun(stream: string, log: StreamLog, token: number | null, buf: Buffer, start: number, end: number): void {
    if (token !== null) {
      const head = this.headOf(log);
      if (token <= head) throw tokenNotRising(stream, token, head);
    }
    // A run this line cannot extend ends first: a batch tail it holds becomes pending, which this line must join.
    if (this.run !== null) this.endRun();
    if (this.pendingBatches.has(stream) || buf[end] !== LF) {
      this.rowApart(stream, log, token, lineWithLf(buf, start, end));
      return;
    }
    const run: WriterRun = (this.run = {
      stream,
      log,
      buf,
      start,
      end: start,
      committedEnd: start,
      committedLines: 0,
      lines: 0,
      groups: 0,
      firstToken: -1,
      lastToken: -1,
    });
    this.extend(run, token, end);
  }

  /** The line ending at `end` joins the run; a numbered one closes a group, whose end is noted. */
  private extend(run: WriterRun, token: number | null, end: number): void {
    run.end = end + 1;
    run.lines++;
    if (token === null) return;
    if (run.firstToken < 0) run.firstToken = token;
    run.lastToken = token;
    run.committedEnd = run.end;
    run.committedLines = run.lines;
    let at = this.slabAt + run.groups * 3;
    if (at === this.slab.length) at = this.newSlab(run.groups);
    const slab = this.slab;
    slab[at++] = run.end - run.start;
    slab[at++] = token;
    slab[at] = run.lines;
    run.groups++;
  }

  /** A POSITION: an advance without rows, stored for catch-up. */
  position(stream: string, token: number): void {
    this.endRun();
    const log = this.logOf(stream);
    if (this.pendingBatches.has(stream)) {
      throw new ProtocolError('BAD_ARGUMENT', `POSITION ${stream} inside a batch: a batch ends with a numbered RDATA`);
    }
    const head = log.lastAppended;
    if (token < head) throw tokenNotRising(stream, token, head);
    if (token > head) this.append(log, advanceEntry(token));
  }

  /** The chunk is done: its run is stored, and its bytes may change from now on (the validator copies the next chunk's). */
  endChunk(): void {
    this.endRun();
    this.json.forget();
  }

  /**
   * The chunk is done, or the next line cannot extend the run: stores the
   * run's complete groups now, so rows go out this tick; a trailing batch
   * tail waits for its numbered row. A run never outlives its chunk.
   */
  private endRun(): void {
    const run = this.run;
    if (run === null) return;
    this.run = null;
    if (run.committedEnd > run.start) {
      let groups: Float64Array | undefined;
      if (run.groups > 1) {
        const end = this.slabAt + run.groups * 3;
        groups = this.slab.subarray(this.slabAt, end);
        this.slabAt = end;
      }
      this.append(run.log, {
        firstToken: run.firstToken,
        lastToken: run.lastToken,
        bytes: run.buf.subarray(run.start, run.committedEnd),
        lines: run.committedLines,
        rows: run.committedLines,
        groups,
      });
    }
    if (run.end > run.committedEnd) {
      this.pendingBatches.set(run.stream, {
        parts: [run.buf.subarray(run.committedEnd, run.end)],
        lines: run.lines - run.committedLines,
      });
    }
  }

  /** The connection closes: rows already validated in this chunk are kept; an unfinished batch is not. */
  close(): void {
    this.endRun();
    this.pendingBatches.clear();
  }

  /**
   * A row that is not JSON: as for a token that does not rise, the complete
   * groups before it are kept and the rest is not, so what is stored is
   * still a prefix of what the writer sent and it can resend from the head.
   * Its batch (the rows before it that wait for its token) is dropped.
   */
  private refuseRow(stream: string, log: StreamLog, token: number | null): never {
    const run = this.run;
    if (run !== null) {
      run.end = run.committedEnd;
      run.lines = run.committedLines;
    }
    this.endRun();
    this.pendingBatches.delete(stream);
    const which = token === null ? `batch row of ${stream}` : `row of ${stream} at token ${token}`;
    throw new ProtocolError(
      'BAD_JSON',
      `${which} is not valid JSON: ${this.json.error}; nothing from it on was stored (${stream} is at token ${log.lastAppended})`,
    );
  }

  /** A stream's log, checked once (a log never changes under its stream), then kept for the next line. */
  private resolve(stream: string): StreamLog {
    const log = this.logOf(stream);
    this.lastStream = stream;
    this.lastLog = log;
    return log;
  }

  /** The head as this writer has written it, counting its run not yet stored. */
  private headOf(log: StreamLog): number {
    const run = this.run;
    return run !== null && run.log === log && run.lastToken >= 0 ? run.lastToken : log.lastAppended;
  }

  /** A row that cannot extend a run (a batch spanning chunks, a CR line): stored on its own. */
  private rowApart(stream: string, log: StreamLog, token: number | null, line: Buffer): void {
    // Ending the run first: a batch tail it holds for this stream becomes pending, and this line joins it.
    this.endRun();
    const batch = this.pendingBatches.get(stream) ?? { parts: [], lines: 0 };
    batch.parts.push(line);
    batch.lines++;
    if (token === null) {
      this.pendingBatches.set(stream, batch);
      return;
    }
    this.pendingBatches.delete(stream);
    const bytes = batch.parts.length === 1 ? line : Buffer.concat(batch.parts);
    this.append(log, { firstToken: token, lastToken: token, bytes, lines: batch.lines, rows: batch.lines });
  }

  private append(log: StreamLog, entry: LogEntry): void {
    let answer: void | Promise<void>;
    try {
      answer = log.append(entry);
    } catch (err) {
      this.onAppendFailed(err);
      return;
    }
    // The memory log answers at once (undefined): no promise, no handler on the hot path.
    if (answer !== undefined) answer.then(undefined, this.onAppendFailed);
  }

  /** The slab is full: the current run's `groups` triples move to a fresh one (big enough for them). Returns where the next triple goes. */
  private newSlab(groups: number): number {
    const kept = this.slab.subarray(this.slabAt, this.slabAt + groups * 3);
    this.slab = new Float64Array(Math.max(GROUP_SLAB, kept.length * 2));
    this.slab.set(kept);
    this.slabAt = 0;
    return kept.length;
  }
}

function lineWithLf(buf: Buffer, start: number, end: number): Buffer {
  if (buf[end] === LF) return buf.subarray(start, end + 1);
  // The line ended in CR LF: the stored copy ends in LF alone.
  const line = Buffer.allocUnsafe(end - start + 1);
  buf.copy(line, 0, start, end);
  line[end - start] = LF;
  return line;
}
