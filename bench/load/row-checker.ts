// The per-connection hot path of the bench subscriber: counts bytes and
// lines, and checks that the tokens of the row lines it sees are exactly
// consecutive (every row, in order, once). Row lines are the lines that
// start with `RDATA `; that holds in all three protocols the subscriber
// speaks, because the nats and redis writers publish the same RDATA line
// (without its LF) as the message payload and both wire formats put a
// payload on a line of its own:
//
//   replication:  RDATA events 7 [...]\n
//   nats:         MSG events 1 199\r\n RDATA events 7 [...]\r\n
//   redis:        *3\r\n $7\r\n message\r\n $6\r\n events\r\n $199\r\n RDATA events 7 [...]\r\n
//
// In today's Synapse dialect (W9) a row names its writer instance before the
// token (`RDATA events w9_writer 7 [...]`): `instance` skips that word too.
//
// Only the token is parsed (digits after the second space); other lines are
// handed to the protocol layer only if their first byte is one it asked for.
// In msgpack mode the frames are decoded by msgpack-frames.ts, which hands
// each numbered row's token to decodedRow(): the same rule, no line scan.
import { sentMsOfLine } from './rows.js';

const R = 0x52;
const D = 0x44;
const SPACE = 0x20;
const LF = 0x0a;
const MAX_TOKEN_DIGITS = 15; // 2^53 has 16 digits: 15 always fits exactly

/** Latency samples (ms) shared by every checker of a process. */
export class Samples {
  private data = new Float64Array(1 << 16);
  count = 0;

  push(ms: number): void {
    if (this.count === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.count++] = ms;
  }

  summary(): { count: number; p50: number; p99: number; p999: number; max: number; mean: number } | null {
    if (this.count === 0) return null;
    const sorted = this.data.slice(0, this.count).sort();
    const at = (q: number) => round3(sorted[Math.min(this.count - 1, Math.floor(q * this.count))]!);
    let sum = 0;
    for (let i = 0; i < this.count; i++) sum += sorted[i]!;
    return {
      count: this.count,
      p50: at(0.5),
      p99: at(0.99),
      p999: at(0.999),
      max: round3(sorted[this.count - 1]!),
      mean: round3(sum / this.count),
    };
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

export interface RowCheckerOptions {
  /** Used in failure messages, e.g. `subscriber 3`. */
  label: string;
  /** Rows this connection must get; one more is a failure. */
  expect: number;
  /** Token before the first expected row; null until the protocol learns it (REPLICATE NOW). */
  base: number | null;
  /** First bytes of non-row lines the protocol layer wants to see. */
  controlFirstBytes: string;
  onControl: (buf: Buffer, start: number, end: number) => void;
  /** Rows are in today's dialect: a writer-instance word comes before the token. */
  instance?: boolean;
  /** Deliberate fault: behave as if this token never arrived. */
  dropToken?: number;
  latency?: Samples;
}

export class RowChecker {
  rows = 0;
  bytes = 0;
  lines = 0;
  lastToken = -1;
  /** Set once, on the first violation; the checker then ignores input. */
  failure: string | null = null;

  private next: number;
  private partial: Buffer | null = null;
  private dropToken: number;
  private readonly control = new Uint8Array(256);
  private nowMs = 0;

  constructor(private readonly opts: RowCheckerOptions) {
    this.next = opts.base === null ? -1 : opts.base + 1;
    this.dropToken = opts.dropToken ?? -1;
    for (let i = 0; i < opts.controlFirstBytes.length; i++) this.control[opts.controlFirstBytes.charCodeAt(i)] = 1;
  }

  /** The protocol learnt where the stream stands (POSITION after REPLICATE NOW). */
  setBase(token: number): void {
    if (this.next === -1) this.next = token + 1;
  }

  get done(): boolean {
    return this.rows >= this.opts.expect;
  }

  /** Feeds one chunk read at nowMs (epoch ms; only used for latency). */
  feed(chunk: Buffer, nowMs: number): void {
    if (this.failure !== null) return;
    this.bytes += chunk.length;
    this.nowMs = nowMs;
    let start = 0;
    let lf = chunk.indexOf(LF);
    if (this.partial !== null) {
      if (lf === -1) {
        this.partial = Buffer.concat([this.partial, chunk]);
        return;
      }
      // The one line that spans chunks is copied to be parsed in one piece.
      const line = Buffer.concat([this.partial, chunk.subarray(0, lf)]);
      this.partial = null;
      this.line(line, 0, line.length);
      start = lf + 1;
      lf = chunk.indexOf(LF, start);
    }
    while (lf !== -1 && this.failure === null) {
      this.line(chunk, start, lf);
      start = lf + 1;
      lf = chunk.indexOf(LF, start);
    }
    // The head of a line that goes on in the next chunk. A view, not a copy:
    // node:net gives every read its own memory, so keeping it pins one chunk
    // per connection and nothing overwrites it.
    if (start < chunk.length) this.partial = chunk.subarray(start);
  }

  private line(buf: Buffer, start: number, end: number): void {
    this.lines++;
    const first = buf[start]!;
    if (first === R && buf[start + 1] === D) this.row(buf, start, end);
    else if (this.control[first] === 1) this.opts.onControl(buf, start, end);
  }

  private row(buf: Buffer, start: number, end: number): void {
    // The space after the stream name (and the instance); a JS loop, as a native indexOf call costs more than these few bytes.
    let sp = start + 6;
    while (sp < end && buf[sp] !== SPACE) sp++;
    if (this.opts.instance === true) for (sp++; sp < end && buf[sp] !== SPACE; ) sp++;
    let i = sp + 1;
    let token = 0;
    while (i < end && i - sp <= MAX_TOKEN_DIGITS) {
      const c = buf[i]!;
      if (c < 48 || c > 57) break;
      token = token * 10 + (c - 48);
      i++;
    }
    if (sp >= end || i === sp + 1 || buf[i] !== SPACE) {
      this.fail(`malformed row line: ${buf.toString('latin1', start, Math.min(end, start + 80))}`);
      return;
    }
    if (this.accept(token) && this.opts.latency !== undefined) this.sample(token, sentMsOfLine(buf, start, end));
  }

  /**
   * A message whose frames are decoded elsewhere (msgpack mode), read at
   * nowMs: counts its bytes; its rows then come through decodedRow().
   */
  message(bytes: number, nowMs: number): void {
    this.bytes += bytes;
    this.nowMs = nowMs;
  }

  /** A numbered row from a decoded frame, under the same rule as a row line; sentMs is NaN when the row has none. */
  decodedRow(token: number, sentMs: number): void {
    if (this.failure !== null) return;
    if (this.accept(token) && this.opts.latency !== undefined) this.sample(token, sentMs);
  }

  /** The consecutive-token rule: true when `token` is the next row, now counted. */
  private accept(token: number): boolean {
    if (token === this.dropToken) {
      this.dropToken = -1;
      return false;
    }
    if (token !== this.next) {
      if (this.next === -1) this.fail(`got token ${token} before any POSITION`);
      else if (token > this.next) this.fail(`expected token ${this.next}, saw ${token} (gap: rows lost)`);
      else this.fail(`expected token ${this.next}, saw ${token} (duplicate or out of order)`);
      return false;
    }
    if (this.rows === this.opts.expect) {
      this.fail(`saw token ${token} after all ${this.opts.expect} expected rows`);
      return false;
    }
    this.next++;
    this.rows++;
    this.lastToken = token;
    return true;
  }

  private sample(token: number, sentMs: number): void {
    if (Number.isNaN(sentMs)) this.fail(`row ${token} carries no send time (not written by bench/load/writer)`);
    else this.opts.latency!.push(this.nowMs - sentMs);
  }

  fail(message: string): void {
    if (this.failure === null) this.failure = `${this.opts.label}: ${message}`;
  }
}
