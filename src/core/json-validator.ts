/**
 * Checks that bytes are one JSON text (RFC 8259), without building a value
 * or a string: a writer's row is stored and forwarded as the bytes it sent,
 * so it is only checked, never parsed (DESIGN.md, Bytes in, bytes out).
 *
 *     RDATA events 5 ["$ev:hs","!r:hs",null,{"k":[1,-2.5e3,true]}]   valid
 *     RDATA events 6 ["$ev:hs",                                        unexpected end of the row at byte 9
 *     RDATA events 7 not-json                                          unexpected 'n' at byte 0
 *
 * Two checkers give the same answers: a WebAssembly scanner says yes or no
 * (json-scanner-wasm.ts: ~3x this file's loop, docs/benchmarks.md M5), and
 * the byte checker here says why a row it refused is not JSON.
 *
 * UTF-8 is the line scanner's check, so bytes from 0x80 inside strings are
 * passed over here. Nesting is bounded (a subscriber's parser recurses), and
 * the stack of open containers is one preallocated array: checking a row
 * allocates nothing.
 */
import { WasmJsonScanner } from './json-scanner-wasm.js';
import { BACKSLASH, CLOSE_ARRAY, CLOSE_OBJECT, COLON, COMMA, DOT, JSON_SPACE, LOWER_E, MINUS, NINE, OPEN_ARRAY, OPEN_OBJECT, PLUS, QUOTE, SPACE, UPPER_E, ZERO } from './json-bytes.js';

/** Containers open at once in a row, at most: far beyond any Synapse row, well inside every parser's stack. */
export const MAX_JSON_DEPTH = 256;

/** Bytes a string holds as they are: not a quote, a backslash or a control character. */
const PLAIN_IN_STRING = new Uint8Array(256);
for (let b = SPACE; b < 256; b++) PLAIN_IN_STRING[b] = b === QUOTE || b === BACKSLASH ? 0 : 1;

/** Bytes that may follow a backslash (the `u` takes four hex digits more). */
const ESCAPED = new Uint8Array(256);
for (const c of '"\\/bfnrtu') ESCAPED[c.charCodeAt(0)] = 1;

const IS_SPACE = new Uint8Array(256);
for (const b of JSON_SPACE) IS_SPACE[b] = 1;

const HEX = new Uint8Array(256);
for (const c of '0123456789abcdefABCDEF') HEX[c.charCodeAt(0)] = 1;

const IN_ARRAY = 0;
const IN_OBJECT = 1;

/** A helper's failure: the index of the byte that cannot be JSON there, as `-1 - index` (indexes are >= 0). */
function failAt(index: number): number {
  return -1 - index;
}

/**
 * One validator per reader (its memory is reused): `valid()` answers, and
 * after a false answer `errorAt` and `error` say where and why. Rows of one
 * buffer are copied into the scanner's memory once per 64 KiB: a reader that
 * changes a buffer's bytes after a check calls `forget()` first.
 */
export class JsonValidator {
  private readonly scanner: WasmJsonScanner;
  private readonly checker: JsonByteChecker;

  constructor(readonly maxDepth = MAX_JSON_DEPTH) {
    this.scanner = new WasmJsonScanner(maxDepth);
    this.checker = new JsonByteChecker(maxDepth);
  }

  /** Whether `buf[start, end)` is exactly one JSON value, with optional whitespace around it. */
  valid(buf: Buffer, start: number, end: number): boolean {
    // The byte checker is asked only about refusals (rare): its answer, with its reason, stands.
    return this.scanner.valid(buf, start, end) || this.checker.valid(buf, start, end);
  }

  /** The bytes of the buffers checked so far may change: the next check copies again. */
  forget(): void {
    this.scanner.forget();
  }

  /** After a failed check: the offset, from the text's start, of the first byte that cannot be JSON there (its length when the text ends too soon). */
  get errorAt(): number {
    return this.checker.errorAt;
  }

  /** Why the last check failed, as words for an ERROR line: `unexpected 'n' at byte 0`. */
  get error(): string {
    return this.checker.error;
  }
}

/** The same check byte by byte in JavaScript, which also says where and why a text is not JSON. */
export class JsonByteChecker {
  /** After a failed check: the offset, from the text's start, of the first byte that cannot be JSON there (its length when the text ends too soon). */
  errorAt = 0;
  private errorByte = -1;
  private tooDeep = false;
  private readonly stack: Uint8Array;

  constructor(readonly maxDepth = MAX_JSON_DEPTH) {
    this.stack = new Uint8Array(maxDepth);
  }

  /** Whether `buf[start, end)` is exactly one JSON value, with optional whitespace around it. */
  valid(buf: Buffer, start: number, end: number): boolean {
    const stack = this.stack;
    let depth = 0;
    let i = skipSpace(buf, start, end);
    for (;;) {
      // A value starts at i.
      if (i >= end) return this.fail(buf, start, end, end);
      const c = buf[i]!;
      if (c === QUOTE) {
        i = skipString(buf, i + 1, end);
      } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
        if (depth === this.maxDepth) return this.fail(buf, start, end, i, true);
        i = skipSpace(buf, i + 1, end);
        if (c === OPEN_ARRAY) {
          if (i < end && buf[i] === CLOSE_ARRAY) {
            i++;
          } else {
            stack[depth++] = IN_ARRAY;
            continue;
          }
        } else if (i < end && buf[i] === CLOSE_OBJECT) {
          i++;
        } else {
          stack[depth++] = IN_OBJECT;
          i = skipKey(buf, i, end);
          if (i < 0) return this.fail(buf, start, end, -1 - i);
          continue;
        }
      } else if (c === MINUS || (c >= ZERO && c <= NINE)) {
        i = skipNumber(buf, i, end);
      } else if (c === 0x74) {
        i = skipWord(buf, i, end, 'true');
      } else if (c === 0x66) {
        i = skipWord(buf, i, end, 'false');
      } else if (c === 0x6e) {
        i = skipWord(buf, i, end, 'null');
      } else {
        return this.fail(buf, start, end, i);
      }
      if (i < 0) return this.fail(buf, start, end, -1 - i);
      // A value ended before i: what may follow depends on the container it is in.
      for (;;) {
        i = skipSpace(buf, i, end);
        if (depth === 0) return i === end || this.fail(buf, start, end, i);
        if (i >= end) return this.fail(buf, start, end, end);
        const next = buf[i]!;
        const inObject = stack[depth - 1] === IN_OBJECT;
        if (next === COMMA) {
          i = skipSpace(buf, i + 1, end);
          if (inObject) {
            i = skipKey(buf, i, end);
            if (i < 0) return this.fail(buf, start, end, -1 - i);
          }
          break;
        }
        if (next !== (inObject ? CLOSE_OBJECT : CLOSE_ARRAY)) return this.fail(buf, start, end, i);
        depth--;
        i++;
      }
    }
  }

  /** Why the last check failed, as words for an ERROR line: `unexpected 'n' at byte 0`. */
  get error(): string {
    const at = `at byte ${this.errorAt}`;
    if (this.tooDeep) return `nested deeper than ${this.maxDepth} arrays and objects ${at}`;
    const b = this.errorByte;
    if (b < 0) return `unexpected end of the row ${at}`;
    if (b < SPACE) return `unexpected control character 0x${b.toString(16).padStart(2, '0')} ${at} (control characters in strings must be escaped)`;
    if (b >= 0x80) return `unexpected byte 0x${b.toString(16)} ${at}`;
    return `unexpected '${String.fromCharCode(b)}' ${at}`;
  }

  /** Notes where (and, for error, why) the check stopped at `buf[index]`; `index === end`: the text ended too soon. */
  private fail(buf: Buffer, start: number, end: number, index: number, tooDeep = false): false {
    this.errorAt = index - start;
    this.errorByte = index < end ? buf[index]! : -1;
    this.tooDeep = tooDeep;
    return false;
  }
}

function skipSpace(buf: Buffer, i: number, end: number): number {
  while (i < end && IS_SPACE[buf[i]!] === 1) i++;
  return i;
}

/** From just past an opening quote to just past the closing one; bytes from 0x80 are UTF-8 the scanner checked. */
function skipString(buf: Buffer, i: number, end: number): number {
  for (;;) {
    // Four at a time: most of a row's bytes are plain string bytes (measured: ~1.4x the one-byte loop).
    while (i + 4 <= end && (PLAIN_IN_STRING[buf[i]!]! & PLAIN_IN_STRING[buf[i + 1]!]! & PLAIN_IN_STRING[buf[i + 2]!]! & PLAIN_IN_STRING[buf[i + 3]!]!) === 1) i += 4;
    while (i < end && PLAIN_IN_STRING[buf[i]!] === 1) i++;
    if (i >= end) return failAt(end);
    const c = buf[i]!;
    if (c === QUOTE) return i + 1;
    if (c !== BACKSLASH) return failAt(i);
    i++;
    if (i >= end) return failAt(end);
    if (ESCAPED[buf[i]!] !== 1) return failAt(i);
    if (buf[i] === 0x75) {
      for (let k = 1; k <= 4; k++) {
        if (i + k >= end) return failAt(end);
        if (HEX[buf[i + k]!] !== 1) return failAt(i + k);
      }
      i += 4;
    }
    i++;
  }
}

/** An object's key and its colon, from the key's quote to the start of its value. */
function skipKey(buf: Buffer, i: number, end: number): number {
  if (i >= end) return failAt(end);
  if (buf[i] !== QUOTE) return failAt(i);
  i = skipString(buf, i + 1, end);
  if (i < 0) return i;
  i = skipSpace(buf, i, end);
  if (i >= end) return failAt(end);
  if (buf[i] !== COLON) return failAt(i);
  return skipSpace(buf, i + 1, end);
}

/** `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, exactly. */
function skipNumber(buf: Buffer, i: number, end: number): number {
  if (buf[i] === MINUS) i++;
  if (i >= end) return failAt(end);
  const first = buf[i]!;
  if (first === ZERO) {
    i++;
  } else if (first > ZERO && first <= NINE) {
    i = skipDigits(buf, i + 1, end);
  } else {
    return failAt(i);
  }
  if (i < end && buf[i] === DOT) {
    const fraction = i + 1;
    i = skipDigits(buf, fraction, end);
    if (i === fraction) return failAt(i);
  }
  if (i < end && (buf[i] === LOWER_E || buf[i] === UPPER_E)) {
    i++;
    if (i < end && (buf[i] === PLUS || buf[i] === MINUS)) i++;
    const exponent = i;
    i = skipDigits(buf, exponent, end);
    if (i === exponent) return failAt(i);
  }
  return i;
}

function skipDigits(buf: Buffer, i: number, end: number): number {
  while (i < end) {
    const c = buf[i]!;
    if (c < ZERO || c > NINE) break;
    i++;
  }
  return i;
}

/** `true`, `false` or `null`, whose first letter was seen. */
function skipWord(buf: Buffer, i: number, end: number, word: string): number {
  for (let k = 1; k < word.length; k++) {
    if (i + k >= end) return failAt(end);
    if (buf[i + k] !== word.charCodeAt(k)) return failAt(i + k);
  }
  return i + word.length;
}
