/**
 * The pool wrapper: encodes published rows into RDATA line bytes and
 * transcodes RDATA lines into MessagePack, on the calling thread when the
 * work is small and on a Piscina pool when it is large (DESIGN.md principle
 * 7). Either way the bytes are the same: both paths run core's encodeRows and
 * the same rowsFromLines (src/core/dialects/msgpack-frames.ts).
 *
 * Handing rows to a worker costs a structured clone on this thread, so at
 * most `taskRows` rows are handed over per event-loop turn: a large publish
 * is one task on one worker, its rows sent in slices on a MessagePort, one
 * slice a turn, and its bytes assembled on the worker. The loop is never held
 * for more than one slice's clone, and this thread copies no bytes.
 */
import os from 'node:os';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { encodeRows, RowEncodingError, type RowEncoder } from '../core/row-encoding.js';
import { isFramingFailure, rowsFromLines } from '../core/dialects/msgpack-frames.js';
import {
  isEncodeFailure,
  ownArrayBuffer,
  reasonOf,
  type EncodeTask,
  type SliceMessage,
  type StreamedEncodeTask,
  type TranscodeTask,
} from './task-data.js';

// From M4 (bench/workers/encode.bench.ts, 2-core Xeon): inline encodes ~1M rows/s of
// ~200-byte rows, so 1,000 rows hold the loop ~1 ms; the pool never out-runs inline on one
// worker, it only frees the loop. Past ~1 ms, the loop matters more.
export const DEFAULT_INLINE_MAX_ROWS = 1000;
/** A 500-row clone costs ~0.2 ms of this thread per turn. */
export const DEFAULT_TASK_ROWS = 500;
/** Transcoding runs ~600k lines/s inline: 128 KiB (~640 lines) is ~1 ms. */
export const DEFAULT_TRANSCODE_INLINE_MAX_BYTES = 128 * 1024;

export type EncoderErrorCode =
  /** A worker died or threw (not a bad row): only its tasks fail, Piscina starts a new worker. */
  | 'WORKER_FAILED'
  /** close() was called. */
  | 'ENCODER_CLOSED'
  /** transcode() was given something other than whole RDATA lines. */
  | 'BAD_LINES';

export class EncoderError extends Error {
  override readonly name = 'EncoderError';
  constructor(
    readonly code: EncoderErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface EncoderPoolOptions {
  /** Worker threads; default max(1, availableParallelism() - 1). 0: no pool, everything inline. */
  threads?: number;
  /** Publishes of at most this many rows are encoded inline. */
  inlineMaxRows?: number;
  /** Rows per pool task, and per event-loop turn handed to the pool. */
  taskRows?: number;
  /** transcode() inputs of at most this many bytes run inline. */
  transcodeInlineMaxBytes?: number;
  /**
   * Task files, for tests only (a task that crashes on purpose). The gateway
   * never sets these; nothing on the wire reaches them.
   */
  encodeTaskUrl?: URL;
  transcodeTaskUrl?: URL;
}

export interface TranscodeOptions {
  /** msgpackr records, for clients that negotiated them (default off). */
  records?: boolean;
}

export function defaultThreads(): number {
  return Math.max(1, os.availableParallelism() - 1);
}

export class EncoderPool implements RowEncoder {
  readonly threads: number;
  readonly inlineMaxRows: number;
  readonly taskRows: number;
  readonly transcodeInlineMaxBytes: number;
  private readonly piscina: Piscina | null;
  private readonly encodeFile: string;
  private readonly transcodeFile: string;
  private closed = false;
  /** Pool operations not yet settled; close() waits for them. */
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Pool publishes with rows still to hand over, oldest first. */
  private waiting: PoolJob[] = [];
  private waitingHead = 0;
  private rowsThisTurn = 0;
  private turnScheduled = false;
  private handingOver = false;
  /** Streamed publishes whose task is open, and how many may be. */
  private streaming = 0;
  private readonly maxStreaming: number;

  constructor(options: EncoderPoolOptions = {}) {
    this.threads = options.threads ?? defaultThreads();
    this.inlineMaxRows = options.inlineMaxRows ?? DEFAULT_INLINE_MAX_ROWS;
    this.taskRows = Math.max(1, options.taskRows ?? DEFAULT_TASK_ROWS);
    this.transcodeInlineMaxBytes = options.transcodeInlineMaxBytes ?? DEFAULT_TRANSCODE_INLINE_MAX_BYTES;
    this.encodeFile = (options.encodeTaskUrl ?? new URL('./encode-task.js', import.meta.url)).href;
    this.transcodeFile = (options.transcodeTaskUrl ?? new URL('./msgpack-task.js', import.meta.url)).href;
    this.maxStreaming = 2 * this.threads;
    if (!Number.isInteger(this.threads) || this.threads < 0) throw new RangeError(`threads must be an integer >= 0, not ${this.threads}`);
    this.piscina =
      this.threads === 0
        ? null
        : new Piscina({
            minThreads: this.threads,
            maxThreads: this.threads,
            idleTimeout: Infinity,
            // One task queued in each worker while it runs another: no idle gap between slices.
            concurrentTasksPerWorker: 2,
          });
  }

  /** Bytes of the publish's RDATA lines; a Buffer when done inline, a Promise when on the pool. */
  encode(stream: string, token: number, rows: readonly unknown[]): Buffer | Promise<Buffer> {
    if (this.closed) throw closedError();
    if (this.piscina === null || rows.length <= this.inlineMaxRows) return encodeRows(stream, token, rows);
    return this.track(this.encodeOnPool(stream, token, rows));
  }

  /**
   * MessagePack frames of whole RDATA lines (see core/dialects/msgpack-frames.ts for the
   * layout): one call per stream update, its result shared by every binary
   * subscriber. `lines` is not retained or modified.
   */
  transcode(lines: Buffer, options: TranscodeOptions = {}): Promise<Buffer> {
    if (this.closed) return Promise.reject(closedError());
    const records = options.records ?? false;
    if (this.piscina === null || lines.length <= this.transcodeInlineMaxBytes) {
      const result = rowsFromLines(lines, records);
      return isFramingFailure(result) ? Promise.reject(badLines(result.error)) : Promise.resolve(result);
    }
    // A private copy to give away: `lines` is usually a view into the stream log.
    const copy = new ArrayBuffer(lines.length);
    new Uint8Array(copy).set(lines);
    const task: TranscodeTask = { lines: copy, records };
    const run = this.piscina.run(task, { filename: this.transcodeFile, transferList: [copy] }).then(
      (result: unknown) => {
        if (result instanceof ArrayBuffer) return Buffer.from(result);
        if (isFramingFailure(result)) throw badLines(result.error);
        throw workerFailed(new Error(`unexpected task result ${typeof result}`));
      },
      (err: unknown) => {
        throw workerFailed(err);
      },
    );
    return this.track(run);
  }

  /** Waits for every pool task in flight (their callers get their results), then stops the workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    await this.piscina?.destroy();
  }

  /** Pool operations (encodes and transcodes) not yet settled. */
  get pending(): number {
    return this.inFlight.size;
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.inFlight.add(promise);
    const forget = (): void => {
      this.inFlight.delete(promise);
    };
    promise.then(forget, forget);
    return promise;
  }

  private encodeOnPool(stream: string, token: number, rows: readonly unknown[]): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const job: PoolJob = { stream, token, rows, port: null, sent: 0, done: false, resolve, reject };
      this.waiting.push(job);
      this.handOver();
    });
  }

  /**
   * Hands rows to the pool, at most `taskRows` rows' worth of cloning per
   * event-loop turn, oldest publish first. At most two streamed publishes per
   * thread are open at once: the rows of the others wait here uncloned, not
   * as copies queued on ports (that is the backpressure).
   */
  private handOver(): void {
    if (this.handingOver) return;
    this.handingOver = true;
    while (this.waitingHead < this.waiting.length && this.rowsThisTurn < this.taskRows) {
      const job = this.waiting[this.waitingHead]!;
      if (!job.done) {
        if (job.port === null && job.rows.length > this.taskRows && this.streaming >= this.maxStreaming) break;
        try {
          this.rowsThisTurn += this.sendSome(job);
        } catch (err) {
          // Not a bad row (those are answers, not throws): fail this publish, keep the loop going.
          this.settle(job, null, err);
        }
      }
      if (job.done || job.sent === job.rows.length) this.waitingHead++;
    }
    if (this.waitingHead === this.waiting.length) {
      this.waiting = [];
      this.waitingHead = 0;
    }
    this.handingOver = false;
    // A new turn resets the budget; with nothing handed over (all blocked) a settle restarts it.
    if (!this.turnScheduled && this.rowsThisTurn > 0) {
      this.turnScheduled = true;
      setImmediate(() => {
        this.turnScheduled = false;
        this.rowsThisTurn = 0;
        this.handOver();
      });
    }
  }

  /** Starts the job's task or sends its next slice; returns the rows handed over. */
  private sendSome(job: PoolJob): number {
    const piscina = this.piscina!;
    const { stream, token, rows } = job;
    if (rows.length <= this.taskRows) {
      // Small enough for one task that carries its rows.
      job.sent = rows.length;
      const task: EncodeTask = { stream, token, rows, firstIndex: 0 };
      if (!isPlainData(rows)) this.finishHere(job);
      else this.settleWith(job, piscina.run(task, { filename: this.encodeFile }), () => this.finishHere(job));
      return rows.length;
    }
    if (job.port === null) {
      const { port1, port2 } = new MessageChannel();
      job.port = port1;
      this.streaming++;
      const task: StreamedEncodeTask = { stream, token, rowCount: rows.length, port: port2 };
      this.settleWith(job, piscina.run(task, { filename: this.encodeFile, name: 'encodeStreamed', transferList: [port2] }), null);
    }
    const first = job.sent;
    const end = Math.min(rows.length, first + this.taskRows);
    const slice = rows.slice(first, end);
    job.sent = end;
    this.sendSlice(job, job.port, slice, first);
    return end - first;
  }

  private sendSlice(job: PoolJob, port: MessagePort, rows: readonly unknown[], firstIndex: number): void {
    if (isPlainData(rows)) {
      try {
        port.postMessage({ rows, firstIndex } satisfies SliceMessage);
        return;
      } catch (err) {
        // A function or symbol in a row cannot be cloned: JSON decides (it may skip it, or name the row).
        if (!(err instanceof Error && err.name === 'DataCloneError')) throw err;
      }
    }
    // A clone would not keep what JSON.stringify sees (a toJSON method on a
    // class, a Buffer): encode here, so the bytes are the inline bytes.
    let message: SliceMessage;
    const transfer: ArrayBuffer[] = [];
    try {
      const bytes = ownArrayBuffer(encodeRows(job.stream, job.token, rows));
      message = { bytes, rowCount: rows.length };
      transfer.push(bytes);
    } catch (err) {
      if (!(err instanceof RowEncodingError)) throw err;
      message = { error: reasonOf(err), rowIndex: firstIndex + err.rowIndex };
      job.sent = job.rows.length; // nothing more to send: the worker ends the task on this
    }
    port.postMessage(message, transfer);
  }

  /** Settles the job from its task's result. `onUncloneable`: what to do if the task's rows could not be cloned. */
  private settleWith(job: PoolJob, run: Promise<unknown>, onUncloneable: (() => void) | null): void {
    run.then(
      (result: unknown) => {
        if (result instanceof ArrayBuffer) this.settle(job, Buffer.from(result), null);
        else if (isEncodeFailure(result)) this.settle(job, null, new RowEncodingError(result.rowIndex, result.error));
        else this.settle(job, null, workerFailed(new Error(`unexpected task result ${typeof result}`)));
      },
      (err: unknown) => {
        if (onUncloneable !== null && err instanceof Error && err.name === 'DataCloneError') onUncloneable();
        else this.settle(job, null, workerFailed(err));
      },
    );
  }

  private finishHere(job: PoolJob): void {
    try {
      this.settle(job, encodeRows(job.stream, job.token, job.rows), null);
    } catch (err) {
      this.settle(job, null, err);
    }
  }

  private settle(job: PoolJob, bytes: Buffer | null, err: unknown): void {
    if (job.done) return;
    job.done = true;
    if (job.port !== null) {
      job.port.close();
      this.streaming--;
      if (this.waitingHead < this.waiting.length) this.handOver();
    }
    if (bytes !== null) job.resolve(bytes);
    else job.reject(err);
  }
}

/** One publish on its way through the pool. */
interface PoolJob {
  stream: string;
  token: number;
  rows: readonly unknown[];
  /** Where the rows of a large publish go, slice by slice, to the task assembling it. */
  port: MessagePort | null;
  /** Rows handed over so far. */
  sent: number;
  done: boolean;
  resolve(bytes: Buffer): void;
  reject(err: unknown): void;
}

const MAX_PLAIN_DEPTH = 64;

/**
 * True when a structured clone of these rows stringifies as the rows do:
 * only primitives, arrays, Dates, and objects whose prototype is
 * Object.prototype or null. Anything else (class instances, Buffers, Maps,
 * a depth past 64, which is where cycles end up) is encoded on this thread.
 */
export function isPlainData(rows: readonly unknown[]): boolean {
  for (let i = 0; i < rows.length; i++) if (!isPlain(rows[i], 0)) return false;
  return true;
}

function isPlain(value: unknown, depth: number): boolean {
  if (typeof value !== 'object' || value === null) return true;
  if (depth >= MAX_PLAIN_DEPTH) return false;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return false;
    for (let i = 0; i < value.length; i++) if (!isPlain(value[i], depth + 1)) return false;
    return true;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === Date.prototype) return true;
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key in value) {
    if (!isPlain((value as Record<string, unknown>)[key], depth + 1)) return false;
  }
  return true;
}

function closedError(): EncoderError {
  return new EncoderError('ENCODER_CLOSED', 'the encoder pool is closed');
}

function badLines(reason: string): EncoderError {
  return new EncoderError('BAD_LINES', `cannot transcode: ${reason}`);
}

function workerFailed(err: unknown): EncoderError {
  const reason = err instanceof Error ? err.message : String(err);
  return new EncoderError('WORKER_FAILED', `encoder worker failed: ${reason}`, { cause: err });
}
