/**
 * Reads back what a file log's segment holds: the wire lines themselves,
 * grouped as the log stored them, checked line by line before any is served:
 *
 *     RDATA events batch ["$a",...]    } one group: a batch ends with its numbered row
 *     RDATA events 41 ["$b",...]       }
 *     POSITION events 60               an advance (a writer's POSITION)
 *     RDATA events 61 ["$c",...        torn: no LF (a crash mid-write), cut on open
 *
 * A line that is not this stream's RDATA/POSITION, a token that does not rise
 * or a batch run cut by another group is corrupt; in a log that keeps
 * descending rows (a followed Synapse pair's: backfill publishes a batch 7,
 * then 6), a group below the row group just before it is not, and counts at
 * that group's token, as the log stored it. In the last segment, bad
 * bytes with no good line after them are a torn tail (cut), anything else is
 * reported with its offset.
 */

import { startsWith } from '../core/bytes.js';

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const MAX_TOKEN_DIGITS = 16;

/**
 * A scan tells of each complete group: `end`, the offset just past its last
 * LF; `token`; its `lines` (a POSITION is one line) and `rows`.
 */
export interface ScanResult {
  /** Offset just past the last good group: everything before it is served. */
  goodEnd: number;
  /** Token of the last good group, or the token the scan started after. */
  lastToken: number;
  /** Where the first bad line starts, and why; null when none (or only a torn tail). */
  corrupt: { offset: number; reason: string } | null;
  /** Bytes after goodEnd that were a torn tail (last segment only); 0 when none. */
  tornBytes: number;
}

/** The fixed prefixes of a stream's lines, made once per log. */
export interface LinePrefixes {
  rdata: Buffer;
  position: Buffer;
}

export function linePrefixes(stream: string): LinePrefixes {
  return { rdata: Buffer.from(`RDATA ${stream} `), position: Buffer.from(`POSITION ${stream} `) };
}

/** What parseLine found: a row (token in `parsed.token`, -1 for `batch`), an advance, or a bad line (`parsed.reason`). */
const ROW = 0;
const POSITION = 1;
const BAD = 2;
/** parseLine's answer besides its kind, reused: reading a segment back makes no object per line. */
const parsed = { token: -1, reason: '' };

/**
 * Scans `buf` (a segment's bytes) from offset 0, calling `onGroup` for each
 * good group in order; tokens must rise above `afterToken` (or descend, with
 * `descending`). With `isLast`, a bad tail with nothing good after it is
 * torn, not corrupt.
 */
export function scanSegment(
  buf: Buffer,
  prefixes: LinePrefixes,
  afterToken: number,
  isLast: boolean,
  onGroup: (end: number, token: number, lines: number, rows: number) => void,
  descending = false,
): ScanResult {
  let pos = 0;
  let goodEnd = 0;
  let lastToken = afterToken;
  let groupLines = 0;
  let groupRows = 0;
  // Token of the row group just before (null after a POSITION): a descending group goes below it.
  let runToken: number | null = null;
  while (pos < buf.length) {
    const lf = buf.indexOf(LF, pos);
    if (lf === -1) break; // a last line without LF: torn
    const kind = parseLine(buf, pos, lf, prefixes);
    const token = parsed.token;
    const descends = descending && kind === ROW && runToken !== null && token >= 0 && token < runToken;
    let bad: string | null = null;
    if (kind === BAD) bad = parsed.reason;
    else if (kind === POSITION && groupLines > 0) bad = 'a POSITION inside a batch (batch rows without their numbered row)';
    else if (token >= 0 && token <= lastToken && !descends) bad = `token ${token} does not rise above ${lastToken}`;
    if (bad !== null) return badAt(buf, prefixes, isLast, goodEnd, lastToken, pos, bad);
    groupLines++;
    if (kind === ROW) groupRows++;
    pos = lf + 1;
    if (token >= 0) {
      onGroup(pos, descends ? lastToken : token, groupLines, groupRows);
      if (!descends) lastToken = token;
      runToken = kind === ROW ? token : null;
      goodEnd = pos;
      groupLines = 0;
      groupRows = 0;
    }
  }
  // A batch without its numbered row, or a line without LF, at the end: the write was cut.
  if (goodEnd < buf.length && !isLast) {
    return { goodEnd, lastToken, corrupt: { offset: goodEnd, reason: 'the segment ends inside a line or a batch, and a later segment follows' }, tornBytes: 0 };
  }
  return { goodEnd, lastToken, corrupt: null, tornBytes: buf.length - goodEnd };
}

/** A bad line at `at`: torn when it is in the last segment and no good line follows, else corrupt. */
function badAt(buf: Buffer, prefixes: LinePrefixes, isLast: boolean, goodEnd: number, lastToken: number, at: number, reason: string): ScanResult {
  if (isLast && !goodLineAfter(buf, prefixes, at, lastToken)) {
    return { goodEnd, lastToken, corrupt: null, tornBytes: buf.length - goodEnd };
  }
  return { goodEnd, lastToken, corrupt: { offset: at, reason }, tornBytes: 0 };
}

function goodLineAfter(buf: Buffer, prefixes: LinePrefixes, from: number, lastToken: number): boolean {
  let pos = buf.indexOf(LF, from);
  while (pos !== -1 && pos + 1 < buf.length) {
    const start = pos + 1;
    const lf = buf.indexOf(LF, start);
    if (lf === -1) return false;
    if (parseLine(buf, start, lf, prefixes) !== BAD && parsed.token > lastToken) return true;
    pos = lf;
  }
  return false;
}

/**
 * `buf[start, lf)`: `RDATA <stream> [<instance>] <token|batch> <row>` or
 * `POSITION <stream> [<instance> <prev>] <token>`. Byte loops, not Buffer
 * calls: this runs once per stored line when a log opens.
 */
function parseLine(buf: Buffer, start: number, lf: number, prefixes: LinePrefixes): number {
  const end = lf > start && buf[lf - 1] === CR ? lf - 1 : lf;
  if (startsWith(buf, start, end, prefixes.rdata)) {
    let at = start + prefixes.rdata.length;
    let stop = wordEnd(buf, at, end);
    if (stop === at) return bad('an RDATA line without a token');
    if (!isBatch(buf, at, stop) && parseToken(buf, at, stop) < 0) {
      // Today's Synapse dialect: the writer instance comes before the token.
      at = stop + 1;
      stop = wordEnd(buf, at, end);
      if (stop <= at) return bad('an RDATA line without a token');
    }
    if (stop >= end) return bad('an RDATA line without a row');
    if (isBatch(buf, at, stop)) {
      parsed.token = -1;
      return ROW;
    }
    const token = parseToken(buf, at, stop);
    if (token < 0) return bad('an RDATA line with a malformed token');
    parsed.token = token;
    return ROW;
  }
  if (startsWith(buf, start, end, prefixes.position)) {
    let at = end;
    while (at > start && buf[at - 1] !== SPACE) at--;
    const token = at < start + prefixes.position.length ? -1 : parseToken(buf, at, end);
    if (token < 0) return bad('a POSITION line with a malformed token');
    parsed.token = token;
    return POSITION;
  }
  return bad("a line that is not this stream's RDATA or POSITION");
}

function bad(reason: string): number {
  parsed.token = -1;
  parsed.reason = reason;
  return BAD;
}

/** Where the word at `from` ends (a space or `end`). */
function wordEnd(buf: Buffer, from: number, end: number): number {
  let i = from;
  while (i < end && buf[i] !== SPACE) i++;
  return i;
}

const BATCH = Buffer.from('batch');

function isBatch(buf: Buffer, start: number, stop: number): boolean {
  return stop - start === 5 && startsWith(buf, start, stop, BATCH);
}

/** The token in `buf[start, end)`, or -1 when it is not one. */
function parseToken(buf: Buffer, start: number, end: number): number {
  if (end <= start || end - start > MAX_TOKEN_DIGITS) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return Number.isSafeInteger(n) ? n : -1;
}
