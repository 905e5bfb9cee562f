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
 * or a batch run cut by another group is corrupt; in the last segment, bad
 * bytes with no good line after them are a torn tail (cut), anything else is
 * reported with its offset.
 */

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const MAX_TOKEN_DIGITS = 16;

/** One complete group found by a scan. */
export interface ScannedGroup {
  /** Offset just past the group's last LF. */
  end: number;
  token: number;
  /** Lines of the group (a POSITION is one line, no row). */
  lines: number;
  rows: number;
}

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

/** What one line is: a row (token null for `batch`), an advance, or why it is bad. */
type Line = { kind: 'row'; token: number | null } | { kind: 'position'; token: number } | { kind: 'bad'; reason: string };

/**
 * Scans `buf` (a segment's bytes) from offset 0, calling `onGroup` for each
 * good group in order; tokens must rise above `afterToken`. With `isLast`,
 * a bad tail with nothing good after it is torn, not corrupt.
 */
export function scanSegment(buf: Buffer, prefixes: LinePrefixes, afterToken: number, isLast: boolean, onGroup: (g: ScannedGroup) => void): ScanResult {
  let pos = 0;
  let goodEnd = 0;
  let lastToken = afterToken;
  let groupLines = 0;
  let groupRows = 0;
  while (pos < buf.length) {
    const lf = buf.indexOf(LF, pos);
    if (lf === -1) break; // a last line without LF: torn
    const line = parseLine(buf, pos, lf, prefixes);
    let bad: string | null = null;
    if (line.kind === 'bad') bad = line.reason;
    else if (line.kind === 'position' && groupLines > 0) bad = 'a POSITION inside a batch (batch rows without their numbered row)';
    else if (line.token !== null && line.token <= lastToken) bad = `token ${line.token} does not rise above ${lastToken}`;
    if (bad !== null || line.kind === 'bad') return badAt(buf, prefixes, isLast, goodEnd, lastToken, pos, bad ?? 'a bad line');
    groupLines++;
    if (line.kind === 'row') groupRows++;
    pos = lf + 1;
    if (line.token !== null) {
      onGroup({ end: pos, token: line.token, lines: groupLines, rows: groupRows });
      lastToken = line.token;
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
    const line = parseLine(buf, start, lf, prefixes);
    if (line.kind !== 'bad' && line.token !== null && line.token > lastToken) return true;
    pos = lf;
  }
  return false;
}

/** `buf[start, lf)`: `RDATA <stream> [<instance>] <token|batch> <row>` or `POSITION <stream> [<instance> <prev>] <token>`. */
function parseLine(buf: Buffer, start: number, lf: number, prefixes: LinePrefixes): Line {
  const end = lf > start && buf[lf - 1] === CR ? lf - 1 : lf;
  if (startsWith(buf, start, end, prefixes.rdata)) {
    const first = wordAt(buf, start + prefixes.rdata.length, end);
    if (first === null) return { kind: 'bad', reason: 'an RDATA line without a token' };
    let tokenWord = first;
    if (!isBatch(buf, first) && parseToken(buf, first[0], first[1]) === null) {
      // Today's Synapse dialect: the writer instance comes before the token.
      const second = wordAt(buf, first[1] + 1, end);
      if (second === null) return { kind: 'bad', reason: 'an RDATA line without a token' };
      tokenWord = second;
    }
    if (tokenWord[1] >= end) return { kind: 'bad', reason: 'an RDATA line without a row' };
    if (isBatch(buf, tokenWord)) return { kind: 'row', token: null };
    const token = parseToken(buf, tokenWord[0], tokenWord[1]);
    return token === null ? { kind: 'bad', reason: 'an RDATA line with a malformed token' } : { kind: 'row', token };
  }
  if (startsWith(buf, start, end, prefixes.position)) {
    const lastSpace = buf.lastIndexOf(SPACE, end - 1);
    const token = lastSpace < start + prefixes.position.length - 1 ? null : parseToken(buf, lastSpace + 1, end);
    return token === null ? { kind: 'bad', reason: 'a POSITION line with a malformed token' } : { kind: 'position', token };
  }
  return { kind: 'bad', reason: "a line that is not this stream's RDATA or POSITION" };
}

function startsWith(buf: Buffer, start: number, end: number, prefix: Buffer): boolean {
  if (end - start < prefix.length) return false;
  return buf.compare(prefix, 0, prefix.length, start, start + prefix.length) === 0;
}

/** [start, end) of the word at `from`, or null when there is none. */
function wordAt(buf: Buffer, from: number, end: number): [number, number] | null {
  if (from >= end) return null;
  let stop = buf.indexOf(SPACE, from);
  if (stop === -1 || stop > end) stop = end;
  return stop === from ? null : [from, stop];
}

const BATCH = Buffer.from('batch');

function isBatch(buf: Buffer, word: [number, number]): boolean {
  return word[1] - word[0] === BATCH.length && buf.compare(BATCH, 0, BATCH.length, word[0], word[1]) === 0;
}

function parseToken(buf: Buffer, start: number, end: number): number | null {
  if (end <= start || end - start > MAX_TOKEN_DIGITS) return null;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return null;
    n = n * 10 + d;
  }
  return Number.isSafeInteger(n) ? n : null;
}
