/**
 * The accept-or-refuse half of the JSON check (json-validator.ts), as a
 * WebAssembly module written by this file: string bodies are passed over
 * 16 bytes at a time (one SIMD compare for quote, backslash and control
 * characters, then a bitmask), structure is the same loop as the byte
 * checker's. It answers only yes or no; why a row is refused is the byte
 * checker's to say.
 *
 * Memory: the stack of open containers from address 0, then a window of the
 * caller's bytes, copied in once per 64 KiB (a chunk's rows are checked
 * against one copy), then 16 bytes of slack a vector load may read past the
 * row's end.
 *
 * While a row is checked, the byte at its end is a NUL (put back after): a
 * NUL ends every run the scan makes (not space, digit, letter or structure;
 * a control character in a string), so no step tests for the row's end.
 */
import { encodeModule, FunctionCode, OP, SIMD } from './wasm/assembler.js';
import { BACKSLASH, CLOSE_ARRAY, COLON, COMMA, DOT, JSON_SPACE, LOWER_A, LOWER_E, LOWER_U, MINUS, ONE, OPEN_ARRAY, OPEN_OBJECT, PLUS, QUOTE, SLASH, SPACE, ZERO } from './json-bytes.js';

/** `}` is `]` + 0x20: the closer a container expects is CLOSE_ARRAY + (inObject << 5). */
const OBJECT_CLOSER_SHIFT = 5;
/** The words after their first letter is seen, as little-endian i32 loads: `true`, `alse`, `null`. */
const TRUE_WORD = 0x65757274;
const ALSE_WORD = 0x65736c61;
const NULL_WORD = 0x6c6c756e;
const VECTOR_BYTES = 16;
/** Put at the row's end while it is scanned. */
const SENTINEL = 0;

/** i += n */
function advance(f: FunctionCode, n: number, local = 'i'): void {
  f.get(local).i32(n).op(OP.i32Add).set(local);
}

/** Whether the byte in `local` is space, tab, LF or CR: an i32 on the stack. */
function isSpace(f: FunctionCode, local: string): void {
  JSON_SPACE.forEach((b, k) => {
    f.get(local).i32(b).op(OP.i32Eq);
    if (k > 0) f.op(OP.i32Or);
  });
}

/** Space, tab, LF and CR from `i`; uses local `s`. */
function skipSpace(f: FunctionCode): void {
  f.block('space', () =>
    f.loop('spaceNext', () => {
      f.get('i').memory(OP.i32Load8U, 0).tee('s').i32(SPACE).op(OP.i32GtU).brIf('space');
      isSpace(f, 's');
      f.op(OP.i32Eqz).brIf('space');
      advance(f, 1);
      f.br('spaceNext');
    }),
  );
}

/** Refuses unless the byte at i is `byte` (at `end` it is the sentinel). */
function expect(f: FunctionCode, byte: number): void {
  f.get('i').memory(OP.i32Load8U, 0).i32(byte).op(OP.i32Ne).if(() => f.returns(0));
}

/** A key's string and colon, up to its value (whitespace before the value is the value dispatch's). */
function skipKey(f: FunctionCode): void {
  expect(f, QUOTE);
  advance(f, 1);
  skipString(f);
  skipSpace(f);
  expect(f, COLON);
  advance(f, 1);
}

/**
 * Whether `[i, end)` is one JSON text, the sentinel at `end`; the stack of
 * open containers is memory from 0, at most `maxDepth` deep. Whitespace is
 * not skipped before each step but is a case of each: a value's first byte
 * is dispatched once (whitespace a case of it), and after a value the comma
 * is tested first, then a closer, then whitespace or the end (measured: the
 * skips were ~5% of a W1 row; Synapse writes no whitespace).
 */
function validFunction(): FunctionCode {
  const f = new FunctionCode(['i', 'end', 'maxDepth'], ['depth', 's', 'inObject', 'c', 'from', 'mask', 'v'], 1);
  const cases = ['space', 'string', 'array', 'object', 'number', 'true', 'false', 'null', 'bad'];
  const targets: string[] = new Array<string>(256).fill('bad');
  targets[QUOTE] = 'string';
  targets[OPEN_ARRAY] = 'array';
  targets[OPEN_OBJECT] = 'object';
  targets[MINUS] = 'number';
  for (let d = ZERO; d <= ZERO + 9; d++) targets[d] = 'number';
  targets[0x74] = 'true';
  targets[0x66] = 'false';
  targets[0x6e] = 'null';
  for (const b of JSON_SPACE) targets[b] = 'space';
  // A word cut short by the row's end has the sentinel in its load.
  const word = (letters: number, value: number, offset: number) => {
    f.get('i').memory(OP.i32Load, 0, offset).i32(value).op(OP.i32Ne).if(() => f.returns(0));
    advance(f, letters);
    f.br('after');
  };
  const open = (closer: number, inObject: number) => {
    f.get('depth').get('maxDepth').op(OP.i32Eq).if(() => f.returns(0));
    advance(f, 1);
    skipSpace(f);
    f.get('i').memory(OP.i32Load8U, 0).i32(closer).op(OP.i32Eq).if(() => {
      advance(f, 1);
      f.br('after');
    });
    f.get('depth').i32(inObject).memory(OP.i32Store8, 0);
    advance(f, 1, 'depth');
    f.i32(inObject).set('inObject');
    if (inObject) skipKey(f);
    f.br('value');
  };
  const bodies: Record<string, () => void> = {
    space: () => {
      advance(f, 1);
      f.br('value');
    },
    string: () => {
      advance(f, 1);
      skipString(f);
      f.br('after');
    },
    array: () => open(CLOSE_ARRAY, 0),
    object: () => open(CLOSE_ARRAY + (1 << OBJECT_CLOSER_SHIFT), 1),
    number: () => {
      skipNumber(f);
      f.br('after');
    },
    true: () => word(4, TRUE_WORD, 0),
    false: () => word(5, ALSE_WORD, 1),
    null: () => word(4, NULL_WORD, 0),
    bad: () => f.returns(0),
  };
  // br_table over nested blocks: case k's code follows the end of block k.
  const nest = (k: number): void => {
    if (k < 0) {
      f.get('i').memory(OP.i32Load8U, 0).brTable(targets, 'bad');
      return;
    }
    f.block(cases[k]!, () => nest(k - 1));
    bodies[cases[k]!]!();
  };

  f.loop('value', () => {
    // A value starts at i, or whitespace before it.
    f.block('after', () => nest(cases.length - 1));
    // A value ended before i: what may follow depends on the container it is in, a comma first (the most common).
    f.loop('close', () => {
      f.get('i').memory(OP.i32Load8U, 0).tee('c').i32(COMMA).op(OP.i32Eq).if(() => {
        f.get('depth').op(OP.i32Eqz).if(() => f.returns(0));
        advance(f, 1);
        f.get('inObject').if(() => {
          skipSpace(f);
          skipKey(f);
        });
        f.br('value');
      });
      f.get('depth').if(() => {
        f.get('c').i32(CLOSE_ARRAY).get('inObject').i32(OBJECT_CLOSER_SHIFT).op(OP.i32Shl).op(OP.i32Add).op(OP.i32Eq).if(() => {
          f.get('depth').i32(1).op(OP.i32Sub).tee('depth');
          f.if(() => f.get('depth').i32(1).op(OP.i32Sub).memory(OP.i32Load8U, 0).set('inObject'));
          advance(f, 1);
          f.br('close');
        });
      });
      // Whitespace, or the end of the text: only the sentinel at its end may follow the one value at depth 0.
      isSpace(f, 'c');
      f.if(() => {
        advance(f, 1);
        f.br('close');
      });
      f.get('depth').op(OP.i32Eqz).get('i').get('end').op(OP.i32Eq).op(OP.i32And).op(OP.return);
    });
  });
  f.op(OP.unreachable);
  return f;
}

/**
 * A string from just past its opening quote to just past the closing one, or
 * the row refused; inline in the scan (measured: ~10% faster than a call).
 * Bytes from 0x80 are UTF-8 the line scanner checked; the sentinel at the
 * row's end is a control character, so the scan stops there at the latest.
 * Locals mask, c, v.
 */
function skipString(f: FunctionCode): void {
  const refuse = () => f.returns(0);
  f.block('stringEnd', () =>
    f.loop('scan', () => {
      f.get('i').simdLoad().set('v');
      f.get('v').i32(QUOTE).simd(SIMD.i8x16Splat).simd(SIMD.i8x16Eq);
      f.get('v').i32(BACKSLASH).simd(SIMD.i8x16Splat).simd(SIMD.i8x16Eq).simd(SIMD.v128Or);
      f.get('v').i32(SPACE).simd(SIMD.i8x16Splat).simd(SIMD.i8x16LtU).simd(SIMD.v128Or);
      f.simd(SIMD.i8x16Bitmask).tee('mask');
      f.op(OP.i32Eqz).if(() => {
        advance(f, VECTOR_BYTES);
        f.br('scan');
      });
      f.get('i').get('mask').op(OP.i32Ctz).op(OP.i32Add).tee('i').memory(OP.i32Load8U, 0).tee('c').i32(QUOTE).op(OP.i32Eq).if(() => {
        advance(f, 1);
        f.br('stringEnd');
      });
      f.get('c').i32(BACKSLASH).op(OP.i32Ne).if(refuse);
      advance(f, 1);
      f.get('i').memory(OP.i32Load8U, 0).tee('c').i32(LOWER_U).op(OP.i32Eq).if(() => {
        // The sentinel is not a hex digit: a `\u` cut short by the row's end is refused.
        for (let k = 1; k <= 4; k++) {
          // A hex digit: 0-9, or a-f once lowercased.
          f.get('i').memory(OP.i32Load8U, 0, k).tee('c').i32(ZERO).op(OP.i32Sub).i32(10).op(OP.i32LtU);
          f.get('c').i32(0x20).op(OP.i32Or).i32(LOWER_A).op(OP.i32Sub).i32(6).op(OP.i32LtU).op(OP.i32Or);
          f.op(OP.i32Eqz).if(refuse);
        }
        advance(f, 5);
        f.br('scan');
      });
      const escapes = [QUOTE, BACKSLASH, SLASH, 0x62, 0x66, 0x6e, 0x72, 0x74];
      escapes.forEach((e, k) => {
        f.get('c').i32(e).op(OP.i32Eq);
        if (k > 0) f.op(OP.i32Or);
      });
      f.op(OP.i32Eqz).if(refuse);
      advance(f, 1);
      f.br('scan');
    }),
  );
}

/**
 * Digits from i, 16 at a time (a digit is a byte b with b - '0' < 10,
 * unsigned): W1's rows end in a 17-digit time. The sentinel is not a digit.
 * Locals v, mask.
 */
function skipDigits(f: FunctionCode): void {
  f.loop('digitNext', () => {
    f.get('i').simdLoad().i32(ZERO).simd(SIMD.i8x16Splat).simd(SIMD.i8x16Sub);
    f.i32(10).simd(SIMD.i8x16Splat).simd(SIMD.i8x16LtU).simd(SIMD.i8x16Bitmask);
    f.i32(0xffff).op(OP.i32Xor).tee('mask').op(OP.i32Eqz).if(() => {
      advance(f, VECTOR_BYTES);
      f.br('digitNext');
    });
    f.get('i').get('mask').op(OP.i32Ctz).op(OP.i32Add).set('i');
  });
}

/**
 * `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` from i to its end,
 * or the row refused (the sentinel ends it); inline in the scan. Locals c, from, v, mask.
 */
function skipNumber(f: FunctionCode): void {
  const refuse = () => f.returns(0);
  const atByte = (test: () => void, then: () => void) => {
    f.get('i').memory(OP.i32Load8U, 0);
    test();
    f.if(then);
  };
  const someDigits = () => {
    f.get('i').set('from');
    skipDigits(f);
    f.get('i').get('from').op(OP.i32Eq).if(refuse);
  };
  f.get('i').memory(OP.i32Load8U, 0).i32(MINUS).op(OP.i32Eq).if(() => advance(f, 1));
  f.get('i').memory(OP.i32Load8U, 0).tee('c').i32(ZERO).op(OP.i32Eq).if(
    () => advance(f, 1),
    () => {
      f.get('c').i32(ONE).op(OP.i32Sub).i32(9).op(OP.i32GeU).if(refuse);
      advance(f, 1);
      skipDigits(f);
    },
  );
  atByte(
    () => f.i32(DOT).op(OP.i32Eq),
    () => {
      advance(f, 1);
      someDigits();
    },
  );
  atByte(
    () => f.i32(0x20).op(OP.i32Or).i32(LOWER_E).op(OP.i32Eq),
    () => {
      advance(f, 1);
      atByte(
        () => f.tee('c').i32(PLUS).op(OP.i32Eq).get('c').i32(MINUS).op(OP.i32Eq).op(OP.i32Or),
        () => advance(f, 1),
      );
      someDigits();
    },
  );
}

/** The part of the WebAssembly JavaScript API used here: Node has it, lib ES2022 does not type it. */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
}
const WebAssembly = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

let compiled: object | undefined;

/** The module, compiled once per process (a few hundred bytes: synchronous compiling is fine). */
function jsonScannerModule(): object {
  compiled ??= new WebAssembly.Module(
    encodeModule(
      [
        { name: 'valid', code: validFunction() },
      ],
      2,
      new Set(['v']),
    ),
  );
  return compiled;
}

/** Bytes copied into the module's memory at once: a socket chunk's worth. */
const WINDOW_BYTES = 64 * 1024;
const PAGE_BYTES = 64 * 1024;

/**
 * One per validator. A buffer's bytes are copied in once per window and the
 * copy reused while rows of the same buffer fall inside it: a caller that
 * changes a buffer's bytes after a check calls `forget()` before checking
 * that buffer again.
 */
export class WasmJsonScanner {
  private readonly memory: WasmMemory;
  private readonly check: (start: number, end: number, maxDepth: number) => number;
  private bytes: Buffer;
  /** Where the window starts in memory: after the stack, 16-byte aligned. */
  private readonly windowAt: number;
  private held: Buffer | null = null;
  private heldStart = 0;
  private heldEnd = 0;

  constructor(readonly maxDepth: number) {
    const instance = new WebAssembly.Instance(jsonScannerModule());
    this.memory = instance.exports.memory as WasmMemory;
    this.check = instance.exports.valid as (start: number, end: number, maxDepth: number) => number;
    this.bytes = Buffer.from(this.memory.buffer);
    this.windowAt = (maxDepth + VECTOR_BYTES - 1) & ~(VECTOR_BYTES - 1);
  }

  /** Whether `buf[start, end)` is exactly one JSON value, with optional whitespace around it. */
  valid(buf: Buffer, start: number, end: number): boolean {
    if (buf !== this.held || start < this.heldStart || end > this.heldEnd) this.hold(buf, start, end);
    const shift = this.windowAt - this.heldStart;
    const at = end + shift;
    const held = this.bytes[at]!;
    this.bytes[at] = SENTINEL;
    const answer = this.check(start + shift, at, this.maxDepth);
    this.bytes[at] = held;
    return answer === 1;
  }

  /** The bytes checked so far may change: the next check copies again. */
  forget(): void {
    this.held = null;
  }

  private hold(buf: Buffer, start: number, end: number): void {
    const to = Math.min(buf.length, Math.max(end, start + WINDOW_BYTES));
    const needed = this.windowAt + (to - start) + VECTOR_BYTES;
    if (needed > this.bytes.length) {
      this.memory.grow(Math.ceil((needed - this.bytes.length) / PAGE_BYTES));
      this.bytes = Buffer.from(this.memory.buffer);
    }
    buf.copy(this.bytes, this.windowAt, start, to);
    this.held = buf;
    this.heldStart = start;
    this.heldEnd = to;
  }
}
