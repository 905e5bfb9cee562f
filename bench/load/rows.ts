// Synapse-like `events` rows for the end-to-end benchmarks, as RDATA lines of
// ROW_LINE_BYTES bytes (LF included):
//
//   RDATA events 7 ["$7:example.com","!room7:example.com","m.room.message","@alice:example.com",null,"xx…x",1732608000000.125]
//
// The padding string brings every line to the same size; the last field is
// the time the writer produced the row (epoch ms with µs, from
// performance.timeOrigin + performance.now()) so subscribers can measure
// writer-to-subscriber latency. The token rises by one per row. In today's
// Synapse dialect (W9) the stream is followed by the writer instance:
//
//   RDATA events w9_writer 7 [...]
//
// (callers pass `events w9_writer` as the stream words).

export const ROW_LINE_BYTES = 200;
/** Writers emit lines in chunks of about this size: large writes, still cheap to precompute. */
export const CHUNK_BYTES = 64 * 1024;

const ROOMS = 100;
const PAD = 'x'.repeat(ROW_LINE_BYTES);

/** Epoch milliseconds with sub-ms precision, comparable across processes on one machine. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

function lineText(stream: string, token: number, sentText: string): string {
  const head =
    `RDATA ${stream} ${token} ["$${token}:example.com","!room${token % ROOMS}:example.com",` +
    `"m.room.message","@alice:example.com",null,"`;
  const tail = `",${sentText}]\n`;
  const pad = ROW_LINE_BYTES - head.length - tail.length;
  return head + (pad > 0 ? PAD.slice(0, pad) : '') + tail;
}

/** The RDATA line (LF included) for `token`. */
export function rdataLine(token: number, sentMs = 0, stream = 'events'): Buffer {
  return Buffer.from(lineText(stream, token, sentMs.toFixed(3)), 'latin1');
}

/**
 * Writes whole lines for tokens firstToken, firstToken+1, … into buf from
 * `offset`, stopping at maxRows or when the next line would not fit.
 * Returns how many rows and where the written bytes end.
 */
export function fillRows(
  buf: Buffer,
  offset: number,
  firstToken: number,
  maxRows: number,
  sentMs: number,
  stream = 'events',
): { rows: number; end: number } {
  const sentText = sentMs.toFixed(3);
  let end = offset;
  let rows = 0;
  while (rows < maxRows) {
    const text = lineText(stream, firstToken + rows, sentText);
    if (end + text.length > buf.length) break;
    end += buf.write(text, end, 'latin1');
    rows++;
  }
  return { rows, end };
}

/**
 * A fresh buffer of whole lines (about `chunkBytes`), starting at firstToken.
 * Fresh on purpose: sockets and client libraries keep references to what
 * they were handed until it is flushed, so a chunk is never reused.
 */
export function rowChunk(
  firstToken: number,
  maxRows: number,
  sentMs: number,
  stream = 'events',
  chunkBytes = CHUNK_BYTES,
): { buf: Buffer; rows: number } {
  const buf = Buffer.allocUnsafe(Math.max(chunkBytes, ROW_LINE_BYTES * 2));
  const { rows, end } = fillRows(buf, 0, firstToken, maxRows, sentMs, stream);
  return { buf: buf.subarray(0, end), rows };
}

/**
 * The send time carried by the row line buf[start, end) (end excludes the LF;
 * a CR before it is skipped), or NaN if the line does not end in `,<ms>]`.
 */
export function sentMsOfLine(buf: Uint8Array, start: number, end: number): number {
  if (end > start && buf[end - 1] === 13) end--;
  if (buf[end - 1] !== 93 /* ] */) return NaN;
  let i = end - 2;
  while (i > start && buf[i] !== 44 /* , */) i--;
  let whole = 0;
  let frac = 0;
  let scale = 1;
  let seenDot = false;
  for (let j = i + 1; j < end - 1; j++) {
    const c = buf[j]!;
    if (c === 46 /* . */ && !seenDot) seenDot = true;
    else if (c >= 48 && c <= 57) {
      if (seenDot) {
        scale *= 10;
        frac = frac * 10 + (c - 48);
      } else whole = whole * 10 + (c - 48);
    } else return NaN;
  }
  return whole + frac / scale;
}
