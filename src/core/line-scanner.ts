/**
 * Splits a byte stream into lines (PROTOCOL.md section 1):
 *
 *     RDATA events 12 ["$12:hs","!r:hs","m.room.message","",null]\n
 *     PING 1490197665618\r\n      (one CR before LF is stripped)
 *     \n                          (blank and whitespace-only lines are skipped)
 *
 * A line is handed to the sink as (buffer, start, end) rather than as a fresh
 * subarray: at 200 bytes a line, one object per line would cost more than
 * finding it. A line that lies in one chunk is a view of that chunk; a line
 * split across chunks is joined with exactly one copy. Either way `buf[end]`
 * is the LF (or the stripped CR before it), so a consumer that forwards the
 * line with its terminator can take `buf.subarray(start, end + 1)` without
 * copying when `buf[end] === 0x0a`.
 */
import { isUtf8 } from 'node:buffer';
import { ProtocolError } from './errors.js';

export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const TAB = 0x09;

export interface LineSink {
  onLine(buf: Buffer, start: number, end: number): void;
  /** A line was over the limit or not UTF-8; it is dropped and scanning goes on. */
  onLineError(err: ProtocolError): void;
}

export interface LineScannerOptions {
  maxLineBytes?: number;
  /** Reject lines that are not valid UTF-8 (default true). */
  validateUtf8?: boolean;
}

export class LineScanner {
  readonly maxLineBytes: number;
  private readonly validateUtf8: boolean;
  /** Pieces of the unfinished line: views of earlier chunks, copied once at its LF. */
  private parts: Buffer[] = [];
  private partBytes = 0;
  /** After an over-long line: drop input until the next LF. */
  private discarding = false;
  /** Bytes handed to `indexOf`, for checking that nothing is searched twice. */
  searchedBytes = 0;

  constructor(
    private readonly sink: LineSink,
    options: LineScannerOptions = {},
  ) {
    this.maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.validateUtf8 = options.validateUtf8 ?? true;
  }

  /** Bytes held for a line not yet terminated. */
  get pendingBytes(): number {
    return this.partBytes;
  }

  push(chunk: Buffer): void {
    const len = chunk.length;
    let pos = 0;
    if (this.partBytes > 0 || this.discarding) {
      const lf = chunk.indexOf(LF);
      this.searchedBytes += lf === -1 ? len : lf + 1;
      if (lf === -1) {
        if (!this.discarding) this.keepPart(chunk);
        return;
      }
      if (this.discarding) this.discarding = false;
      else this.finishSplitLine(chunk, lf);
      pos = lf + 1;
    }
    if (pos >= len) return;

    // One UTF-8 check over all complete lines of the chunk: LF is ASCII, so a
    // run of whole lines is valid exactly when each line is.
    let checkEachLine = false;
    if (this.validateUtf8) {
      const lastLf = chunk.lastIndexOf(LF);
      if (lastLf >= pos && !isUtf8(chunk.subarray(pos, lastLf))) checkEachLine = true;
    }

    const max = this.maxLineBytes;
    while (pos < len) {
      const lf = chunk.indexOf(LF, pos);
      if (lf === -1) {
        this.searchedBytes += len - pos;
        this.keepPart(chunk.subarray(pos));
        return;
      }
      this.searchedBytes += lf + 1 - pos;
      if (lf - pos > max) this.sink.onLineError(tooLong(max));
      else if (checkEachLine && !isUtf8(chunk.subarray(pos, lf))) this.sink.onLineError(notUtf8());
      else this.emit(chunk, pos, lf);
      pos = lf + 1;
    }
  }

  /** Forget any unfinished line (the connection is gone). */
  reset(): void {
    this.parts = [];
    this.partBytes = 0;
    this.discarding = false;
  }

  private keepPart(part: Buffer): void {
    if (this.partBytes + part.length > this.maxLineBytes) {
      this.reset();
      this.discarding = true;
      this.sink.onLineError(tooLong(this.maxLineBytes));
      return;
    }
    this.parts.push(part);
    this.partBytes += part.length;
  }

  private finishSplitLine(chunk: Buffer, lf: number): void {
    const total = this.partBytes + lf;
    const parts = this.parts;
    this.parts = [];
    this.partBytes = 0;
    if (total > this.maxLineBytes) {
      this.sink.onLineError(tooLong(this.maxLineBytes));
      return;
    }
    // The one copy of a split line, with room for its LF so buf[end] is LF.
    const line = Buffer.allocUnsafe(total + 1);
    let at = 0;
    for (const part of parts) at += part.copy(line, at);
    chunk.copy(line, at, 0, lf);
    line[total] = LF;
    if (this.validateUtf8 && !isUtf8(line.subarray(0, total))) {
      this.sink.onLineError(notUtf8());
      return;
    }
    this.emit(line, 0, total);
  }

  private emit(buf: Buffer, start: number, end: number): void {
    if (end > start && buf[end - 1] === CR) end--;
    if (end === start) return;
    const first = buf[start];
    if ((first === SPACE || first === TAB || first === CR) && isBlank(buf, start, end)) return;
    this.sink.onLine(buf, start, end);
  }
}

function isBlank(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if (c !== SPACE && c !== TAB && c !== CR) return false;
  }
  return true;
}

function tooLong(max: number): ProtocolError {
  return new ProtocolError('LINE_TOO_LONG', `line too long: over the limit of ${max} bytes`);
}

function notUtf8(): ProtocolError {
  return new ProtocolError('INVALID_UTF8', 'line is not valid UTF-8');
}
