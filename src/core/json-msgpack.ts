/**
 * One JSON text's bytes -> the MessagePack bytes of its value, in one walk,
 * making no JS value and (on the common path) no string: the binary
 * WebSocket mode's rows (dialects/msgpack-frames.ts).
 *
 *     ["a",{"b":-1.5},7,null]  ->  94 a1 61 81 a1 62 cb bf f8 00 00 00 00 00 00 07 c0
 *
 * The input is a checked JSON text (writer rows are validated before they
 * are stored, their UTF-8 by the line scanner), so this reads the grammar's
 * shape only: it throws JsonTranscodeError where the shape breaks (a byte out
 * of place, the text cut short), and does not look for what only a
 * validator would (control bytes in strings, leading zeros, bad UTF-8).
 *
 * Decoded, the bytes are the value `JSON.parse` gives, as msgpackr's `pack`
 * of it would write it (plain MessagePack, no records), with one exception:
 * `-0` stays -0 (a float64), where `pack` writes the integer 0.
 * - arrays and maps: fix, 16 or 32 headers; keys in source order, duplicates
 *   kept (a decoder keeps the last, as JSON.parse does).
 * - strings: fixstr, str8, 16 or 32; escapes decoded, `\uXXXX` pairs to
 *   4-byte UTF-8.
 * - numbers: integers in [-2^31, 2^32) in the smallest int/uint form, any
 *   other number as float64. Larger integers are float64 as `pack` writes
 *   them, since decoders (msgpackr's default) read uint64/int64 as BigInt.
 */

import { writeNumber, writeStrHeader, writeUint32 } from './msgpack-write.js';

export class JsonTranscodeError extends Error {
  override readonly name = 'JsonTranscodeError';
  constructor(
    message: string,
    /** Offset of the byte where the text stopped being JSON, from the text's start. */
    readonly offset: number,
  ) {
    super(message);
  }
}

/**
 * Output bytes per input byte at most (plus TRANSCODE_SLACK_BYTES): `-0`
 * (2 bytes, 3 with its comma) becomes a 9-byte float64; nothing grows more.
 */
export const TRANSCODE_BYTES_PER_BYTE = 5;
export const TRANSCODE_SLACK_BYTES = 16;

/** Room `out` needs after `at` for the MessagePack of a JSON text of `jsonBytes` bytes. */
export function transcodeRoom(jsonBytes: number): number {
  return jsonBytes * TRANSCODE_BYTES_PER_BYTE + TRANSCODE_SLACK_BYTES;
}

// json-bytes.ts names these bytes too; imported there, this walk measured ~15% slower (rowsFromLines, W1 rows:
// 491 against 424 ns a row), so the module keeps its own.
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const QUOTE = 0x22;
const PLUS = 0x2b;
const COMMA = 0x2c;
const MINUS = 0x2d;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;
const COLON = 0x3a;
const OPEN_ARRAY = 0x5b;
const BACKSLASH = 0x5c;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

const FIXARRAY = 0x90;
const FIXMAP = 0x80;
const NIL = 0xc0;
const FALSE = 0xc2;
const TRUE = 0xc3;

/** Up to this many bytes a string is copied by a loop; longer ones by Buffer.copy (measured: its call costs ~110 ns, the loop ~1 ns a byte). */
const LOOP_COPY_MAX_BYTES = 112;
/** msgpackr writes a string shorter than this (UTF-16 units) with its own loop, longer ones with Buffer's UTF-8 writer: they differ on lone surrogates. */
const PACK_OWN_LOOP_UNITS = 64;
/** 2^53: a decimal mantissa below it is an exact double. */
const EXACT_MANTISSA = 2 ** 53;
/** 10^0..10^22 are exact doubles: mantissa × or ÷ one of them is one correctly rounded operation, as JSON.parse's result is. */
const POW10 = Array.from({ length: 23 }, (_, k) => 10 ** k);

// Open containers: where each one's header byte is in `out`, how many members it has so far, whether it is a map.
let headerAt = new Int32Array(64);
let members = new Int32Array(64);
let isMap = new Uint8Array(64);
/** Where the last string or number read ended in the source (helpers return the output position). */
let readEnd = 0;
/** Where the text being read starts (errors give offsets from it) and ends. */
let textStart = 0;
let textEnd = 0;

const EMPTY = Buffer.alloc(0);

/**
 * Transcodes JSON texts, keeping what it learnt of the last source and output
 * buffers: DataViews on both (strings are copied 4 bytes a step), and where
 * the next backslash is, so plain strings are found with indexOf and searched
 * for escapes once per buffer, not once per string. One per chunk of lines
 * (it holds the buffers it was last given).
 */
export class JsonTranscoder {
  private src: Buffer = EMPTY;
  private srcView: DataView<ArrayBufferLike> = new DataView(EMPTY.buffer, 0, 0);
  private out: Buffer = EMPTY;
  private outView: DataView<ArrayBufferLike> = new DataView(EMPTY.buffer, 0, 0);
  /** No backslash in src[backslashFrom, backslashAt); backslashAt is src.length if none follows. */
  private backslashFrom = 0;
  private backslashAt = -1;

  /**
   * Writes the MessagePack of the JSON text `src[start, end)` into `out` from
   * `at`, returning where it ends. `out` must have transcodeRoom(end - start)
   * bytes from `at`. Throws JsonTranscodeError if the text is not JSON's shape.
   */
  transcode(src: Buffer, start: number, end: number, out: Buffer, at: number): number {
    if (src !== this.src) {
      this.src = src;
      this.srcView = new DataView(src.buffer, src.byteOffset, src.length);
      this.backslashAt = -1;
    }
    if (out !== this.out) {
      this.out = out;
      this.outView = new DataView(out.buffer, out.byteOffset, out.length);
    }
    return this.walk(src, start, end, out, at);
  }

  private walk(src: Buffer, start: number, end: number, out: Buffer, at: number): number {
    textStart = start;
    textEnd = end;
    let i = start;
    let o = at;
    let depth = 0;
    let c = 0;
    for (;;) {
      // A value starts here.
      while (i < end && isSpace((c = src[i]!))) i++;
      if (i >= end) throw cut(i);
      if (c === QUOTE) {
        o = this.string(src, i, end, out, o);
        i = readEnd;
      } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
        const map = c === OPEN_OBJECT;
        if (depth === headerAt.length) growStack();
        headerAt[depth] = o;
        members[depth] = 0;
        isMap[depth] = map ? 1 : 0;
        depth++;
        out[o++] = map ? FIXMAP : FIXARRAY;
        i++;
        while (i < end && isSpace((c = src[i]!))) i++;
        if (c === (map ? CLOSE_OBJECT : CLOSE_ARRAY) && i < end) {
          // Empty: the fix header already says 0.
          depth--;
          i++;
        } else if (map) {
          i = key(src, i, end);
          o = this.string(src, i, end, out, o);
          i = colon(src, readEnd, end);
          continue;
        } else {
          continue;
        }
      } else if (c === MINUS || (c >= ZERO && c <= NINE)) {
        o = writeJsonNumber(src, i, end, out, o);
        i = readEnd;
      } else if (c === 0x74 /* t */ && word(src, i, end, 0x72, 0x75, 0x65)) {
        out[o++] = TRUE;
        i += 4;
      } else if (c === 0x66 /* f */ && i + 4 < end && src[i + 4] === 0x65 && word(src, i, end, 0x61, 0x6c, 0x73)) {
        out[o++] = FALSE;
        i += 5;
      } else if (c === 0x6e /* n */ && word(src, i, end, 0x75, 0x6c, 0x6c)) {
        out[o++] = NIL;
        i += 4;
      } else {
        throw unexpected(src, i);
      }
      // A value ended: close what it ends, then go on to the next member.
      for (;;) {
        if (depth === 0) {
          while (i < end && isSpace(src[i]!)) i++;
          if (i !== end) throw unexpected(src, i);
          return o;
        }
        const top = depth - 1;
        members[top] = members[top]! + 1;
        while (i < end && isSpace((c = src[i]!))) i++;
        if (i >= end) throw cut(i);
        if (c === COMMA) {
          i++;
          if (isMap[top] === 1) {
            i = key(src, i, end);
            o = this.string(src, i, end, out, o);
            i = colon(src, readEnd, end);
          }
          break;
        }
        if (c !== (isMap[top] === 1 ? CLOSE_OBJECT : CLOSE_ARRAY)) throw unexpected(src, i);
        i++;
        o = closeContainer(out, headerAt[top]!, o, members[top]!, isMap[top] === 1);
        depth--;
      }
    }
  }

  /** The string whose opening quote is `src[q]`; sets readEnd past its closing quote. */
  private string(src: Buffer, q: number, end: number, out: Buffer, o: number): number {
    const s = q + 1;
    // The first quote ends the string unless a backslash comes before it.
    const close = src.indexOf(QUOTE, s);
    if (close < 0 || close >= end) throw cut(end);
    if (this.backslashAt < s || this.backslashFrom > s) {
      const b = src.indexOf(BACKSLASH, s);
      this.backslashFrom = s;
      this.backslashAt = b < 0 ? src.length : b;
    }
    if (this.backslashAt < close) return writeEscapedString(src, s, this.backslashAt, end, out, o);
    // No escapes: the bytes are the string's UTF-8 as they are.
    const n = close - s;
    o = writeStrHeader(out, o, n);
    if (n > LOOP_COPY_MAX_BYTES) {
      src.copy(out, o, s, close);
    } else {
      const srcView = this.srcView;
      const outView = this.outView;
      let k = s;
      let p = o;
      for (; k + 4 <= close; k += 4, p += 4) outView.setUint32(p, srcView.getUint32(k));
      for (; k < close; k++) out[p++] = src[k]!;
    }
    readEnd = close + 1;
    return o + n;
  }
}


function isSpace(c: number): boolean {
  return c === SPACE || c === TAB || c === LF || c === CR;
}

/** Whether `src[i + 1..i + 3]` are a, b, c (the rest of true, null, and fals). */
function word(src: Buffer, i: number, end: number, a: number, b: number, c: number): boolean {
  return i + 3 < end && src[i + 1] === a && src[i + 2] === b && src[i + 3] === c;
}

/** Skips space to an object key's opening quote. */
function key(src: Buffer, i: number, end: number): number {
  while (i < end && isSpace(src[i]!)) i++;
  if (i >= end) throw cut(i);
  if (src[i] !== QUOTE) throw unexpected(src, i);
  return i;
}

/** Skips space, a colon and space after a key. */
function colon(src: Buffer, i: number, end: number): number {
  while (i < end && isSpace(src[i]!)) i++;
  if (i >= end) throw cut(i);
  if (src[i] !== COLON) throw unexpected(src, i);
  return i + 1;
}

/**
 * Writes the header of a closed container over its 1-byte placeholder. Fix
 * first and shift the members for a wider header: rows' containers are mostly
 * under 16 members, and a wide header reserved up front would have to be
 * shifted down for each of those instead.
 */
function closeContainer(out: Buffer, h: number, o: number, n: number, map: boolean): number {
  if (n < 16) {
    out[h] = (map ? FIXMAP : FIXARRAY) | n;
    return o;
  }
  if (n < 0x10000) {
    out.copyWithin(h + 3, h + 1, o);
    out[h] = map ? 0xde : 0xdc;
    out[h + 1] = n >>> 8;
    out[h + 2] = n & 0xff;
    return o + 2;
  }
  out.copyWithin(h + 5, h + 1, o);
  out[h] = map ? 0xdf : 0xdd;
  writeUint32(out, h + 1, n);
  return o + 4;
}

function growStack(): void {
  const size = headerAt.length * 2;
  const h = new Int32Array(size);
  h.set(headerAt);
  headerAt = h;
  const m = new Int32Array(size);
  m.set(members);
  members = m;
  const k = new Uint8Array(size);
  k.set(isMap);
  isMap = k;
}

/**
 * A string with escapes, `src[s..]`, the first backslash at `b`. Decoded
 * after room for the widest header (its length is known only at the end),
 * then moved down behind the header it needs.
 */
function writeEscapedString(src: Buffer, s: number, b: number, end: number, out: Buffer, o: number): number {
  const body = o + 5;
  let p = body;
  for (let k = s; k < b; k++) out[p++] = src[k]!;
  let j = b;
  let loneSurrogates = false;
  for (;;) {
    if (j >= end) throw cut(j);
    const c = src[j]!;
    if (c === QUOTE) break;
    if (c !== BACKSLASH) {
      out[p++] = c;
      j++;
      continue;
    }
    if (j + 1 >= end) throw cut(j + 1);
    const e = src[j + 1]!;
    j += 2;
    switch (e) {
      case QUOTE:
      case BACKSLASH:
      case 0x2f /* / */:
        out[p++] = e;
        break;
      case 0x62 /* b */:
        out[p++] = 0x08;
        break;
      case 0x66 /* f */:
        out[p++] = 0x0c;
        break;
      case 0x6e /* n */:
        out[p++] = LF;
        break;
      case 0x72 /* r */:
        out[p++] = CR;
        break;
      case 0x74 /* t */:
        out[p++] = TAB;
        break;
      case 0x75 /* u */: {
        let u = hex4(src, j, end);
        if (u < 0) throw unexpected(src, j);
        j += 4;
        if (u >= 0xd800 && u <= 0xdbff && src[j] === BACKSLASH && src[j + 1] === 0x75) {
          const low = hex4(src, j + 2, end);
          if (low >= 0xdc00 && low <= 0xdfff) {
            u = 0x10000 + ((u - 0xd800) << 10) + (low - 0xdc00);
            j += 6;
          }
        }
        if (u < 0x80) {
          out[p++] = u;
        } else if (u < 0x800) {
          out[p++] = 0xc0 | (u >>> 6);
          out[p++] = 0x80 | (u & 0x3f);
        } else if (u < 0x10000) {
          // A lone surrogate too, in the 3-byte form of any other unit (fixed below for long strings).
          if (u >= 0xd800 && u <= 0xdfff) loneSurrogates = true;
          out[p++] = 0xe0 | (u >>> 12);
          out[p++] = 0x80 | ((u >>> 6) & 0x3f);
          out[p++] = 0x80 | (u & 0x3f);
        } else {
          out[p++] = 0xf0 | (u >>> 18);
          out[p++] = 0x80 | ((u >>> 12) & 0x3f);
          out[p++] = 0x80 | ((u >>> 6) & 0x3f);
          out[p++] = 0x80 | (u & 0x3f);
        }
        break;
      }
      default:
        throw unexpected(src, j - 1);
    }
  }
  readEnd = j + 1;
  const n = p - body;
  if (loneSurrogates && utf16Units(out, body, p) >= PACK_OWN_LOOP_UNITS) replaceSurrogates(out, body, p);
  const h = writeStrHeader(out, o, n);
  if (h !== body) out.copyWithin(h, body, p);
  return h + n;
}

/**
 * How many UTF-16 units the UTF-8 `out[from, to)` is (a surrogate's 3 bytes
 * are one): what msgpackr's choice between its two string writers goes by.
 */
function utf16Units(out: Buffer, from: number, to: number): number {
  let units = 0;
  for (let k = from; k < to; k++) {
    const c = out[k]!;
    if ((c & 0xc0) !== 0x80) units += c >= 0xf0 ? 2 : 1;
  }
  return units;
}

/** Lone surrogates as U+FFFD, what Buffer's UTF-8 writer (msgpackr's for long strings) makes of them. Same length: 3 bytes. */
function replaceSurrogates(out: Buffer, from: number, to: number): void {
  // Everything else here is valid UTF-8 (escapes decoded, raw bytes checked), where ED is never followed by A0-BF.
  for (let k = from; k + 2 < to; k++) {
    if (out[k] === 0xed && out[k + 1]! >= 0xa0) {
      out[k] = 0xef;
      out[k + 1] = 0xbf;
      out[k + 2] = 0xbd;
      k += 2;
    }
  }
}

/** The 4 hex digits at `src[j..]` as a number, or -1. */
function hex4(src: Buffer, j: number, end: number): number {
  if (j + 4 > end) return -1;
  let v = 0;
  for (let k = j; k < j + 4; k++) {
    const c = src[k]!;
    let d: number;
    if (c >= ZERO && c <= NINE) d = c - ZERO;
    else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
    else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
    else return -1;
    v = (v << 4) | d;
  }
  return v;
}

/**
 * The number at `src[i..]`; sets readEnd past it. Its value is made from the
 * digits where that is exact (at most 2^53 as a mantissa, a power of ten up
 * to 22: one rounding, the same double JSON.parse makes), else by Number() of
 * its text (more digits, larger exponents: rare in rows).
 */
function writeJsonNumber(src: Buffer, i: number, end: number, out: Buffer, o: number): number {
  const numberStart = i;
  const negative = src[i] === MINUS;
  if (negative) i++;
  let mantissa = 0;
  let c = 0;
  const intStart = i;
  while (i < end && (c = src[i]!) >= ZERO && c <= NINE) {
    mantissa = mantissa * 10 + (c - ZERO);
    i++;
  }
  let digits = i - intStart;
  if (digits === 0) throw unexpected(src, i);
  let exponent = 0;
  if (i < end && c === DOT) {
    i++;
    const fracStart = i;
    while (i < end && (c = src[i]!) >= ZERO && c <= NINE) {
      mantissa = mantissa * 10 + (c - ZERO);
      i++;
    }
    if (i === fracStart) throw unexpected(src, i);
    digits += i - fracStart;
    exponent = fracStart - i;
  }
  if (i < end && (c === 0x65 || c === 0x45) /* e E */) {
    i++;
    let sign = 1;
    if (i < end && (src[i] === MINUS || src[i] === PLUS)) sign = src[i++] === MINUS ? -1 : 1;
    const expStart = i;
    let e = 0;
    while (i < end && (c = src[i]!) >= ZERO && c <= NINE) {
      // Capped: past this the value is 0 or Infinity whatever the digits (Number() decides).
      if (e < 100_000) e = e * 10 + (c - ZERO);
      i++;
    }
    if (i === expStart) throw unexpected(src, i);
    exponent += sign * e;
  }
  readEnd = i;
  let value: number;
  if (digits <= 16 && mantissa < EXACT_MANTISSA && exponent >= -22 && exponent <= 22) {
    value = exponent === 0 ? mantissa : exponent > 0 ? mantissa * POW10[exponent]! : mantissa / POW10[-exponent]!;
    if (negative) value = -value;
  } else {
    value = Number(src.toString('latin1', numberStart, i));
  }
  return writeNumber(out, o, value);
}

function cut(i: number): JsonTranscodeError {
  return new JsonTranscodeError(`unexpected end of JSON at byte ${i - textStart}`, i - textStart);
}

function unexpected(src: Buffer, i: number): JsonTranscodeError {
  if (i >= textEnd) return cut(i);
  return new JsonTranscodeError(`unexpected byte 0x${src[i]!.toString(16).padStart(2, '0')} in JSON at byte ${i - textStart}`, i - textStart);
}
