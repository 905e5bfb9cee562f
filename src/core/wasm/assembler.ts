/**
 * Writes the bytes of a small WebAssembly module: one memory, a few i32
 * functions, the SIMD instructions a byte scanner needs. Instructions are
 * named constants of the binary format (WebAssembly core spec 5.4, SIMD
 * proposal); branches name their target, and the depth the format wants is
 * counted here, so a function's code reads as its structure.
 */

export const I32 = 0x7f;
export const V128 = 0x7b;
const VOID_BLOCK = 0x40;
const FUNC_TYPE = 0x60;

/** One-byte opcodes. */
export const OP = {
  unreachable: 0x00,
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  brTable: 0x0e,
  return: 0x0f,
  call: 0x10,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Load: 0x28,
  i32Load8U: 0x2d,
  i32Store8: 0x3a,
  i32Const: 0x41,
  i32Eqz: 0x45,
  i32Eq: 0x46,
  i32Ne: 0x47,
  i32LtS: 0x48,
  i32LtU: 0x49,
  i32GtU: 0x4b,
  i32LeU: 0x4d,
  i32GeU: 0x4f,
  i32Ctz: 0x68,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32And: 0x71,
  i32Or: 0x72,
  i32Xor: 0x73,
  i32Shl: 0x74,
} as const;

/** SIMD opcodes, each after the 0xfd prefix. */
const SIMD_PREFIX = 0xfd;
export const SIMD = {
  v128Load: 0x00,
  i8x16Splat: 0x0f,
  i8x16Eq: 0x23,
  i8x16LtU: 0x26,
  v128Or: 0x50,
  i8x16Bitmask: 0x64,
  i8x16Sub: 0x71,
} as const;

const SECTION = { type: 1, function: 3, memory: 5, export: 7, code: 10 } as const;
const EXPORT_FUNC = 0;
const EXPORT_MEMORY = 2;

function unsigned(n: number, out: number[]): void {
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
}

function signed(n: number, out: number[]): void {
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return;
    }
    out.push(byte | 0x80);
  }
}

function name(text: string, out: number[]): void {
  const bytes = Buffer.from(text, 'utf8');
  unsigned(bytes.length, out);
  out.push(...bytes);
}

/** One function's code: its locals by name, its blocks by label. */
export class FunctionCode {
  readonly bytes: number[] = [];
  private readonly localIndex = new Map<string, number>();
  private readonly labels: string[] = [];

  constructor(
    readonly params: readonly string[],
    readonly locals: readonly string[],
    readonly results: number,
  ) {
    [...params, ...locals].forEach((n, i) => this.localIndex.set(n, i));
  }

  op(...codes: number[]): this {
    this.bytes.push(...codes);
    return this;
  }

  simd(code: number): this {
    this.bytes.push(SIMD_PREFIX);
    unsigned(code, this.bytes);
    return this;
  }

  /** A load or store with its alignment (log2 bytes) and a constant offset. */
  memory(code: number, alignLog2: number, offset = 0): this {
    this.op(code);
    unsigned(alignLog2, this.bytes);
    unsigned(offset, this.bytes);
    return this;
  }

  simdLoad(offset = 0): this {
    this.simd(SIMD.v128Load);
    unsigned(0, this.bytes);
    unsigned(offset, this.bytes);
    return this;
  }

  i32(n: number): this {
    this.op(OP.i32Const);
    signed(n | 0, this.bytes);
    return this;
  }

  get(local: string): this {
    return this.local(OP.localGet, local);
  }

  set(local: string): this {
    return this.local(OP.localSet, local);
  }

  tee(local: string): this {
    return this.local(OP.localTee, local);
  }

  call(index: number): this {
    this.op(OP.call);
    unsigned(index, this.bytes);
    return this;
  }

  block(label: string, body: () => void): this {
    return this.structured(OP.block, label, body);
  }

  loop(label: string, body: () => void): this {
    return this.structured(OP.loop, label, body);
  }

  /** `if` on the i32 on the stack, without a value. */
  if(then: () => void, otherwise?: () => void): this {
    this.op(OP.if, VOID_BLOCK);
    this.labels.push('');
    then();
    if (otherwise) {
      this.op(OP.else);
      otherwise();
    }
    this.labels.pop();
    return this.op(OP.end);
  }

  br(label: string): this {
    this.op(OP.br);
    unsigned(this.depthOf(label), this.bytes);
    return this;
  }

  brIf(label: string): this {
    this.op(OP.brIf);
    unsigned(this.depthOf(label), this.bytes);
    return this;
  }

  /** Branches to `targets[i32]`, or to `otherwise` past their end. */
  brTable(targets: readonly string[], otherwise: string): this {
    this.op(OP.brTable);
    unsigned(targets.length, this.bytes);
    for (const t of targets) unsigned(this.depthOf(t), this.bytes);
    unsigned(this.depthOf(otherwise), this.bytes);
    return this;
  }

  /** Returns the constant `n`. */
  returns(n: number): this {
    return this.i32(n).op(OP.return);
  }

  private local(code: number, local: string): this {
    const index = this.localIndex.get(local);
    if (index === undefined) throw new Error(`no local ${local}`);
    this.op(code);
    unsigned(index, this.bytes);
    return this;
  }

  private structured(code: number, label: string, body: () => void): this {
    this.op(code, VOID_BLOCK);
    this.labels.push(label);
    body();
    this.labels.pop();
    return this.op(OP.end);
  }

  private depthOf(label: string): number {
    const at = this.labels.lastIndexOf(label);
    if (at < 0) throw new Error(`no enclosing block ${label}`);
    return this.labels.length - 1 - at;
  }
}

export interface ExportedFunction {
  name: string;
  code: FunctionCode;
}

/**
 * A module of `functions` (called by their index in this list, all params
 * and locals i32 but those named in `v128Locals`) and one exported memory
 * called `memory`.
 */
export function encodeModule(functions: readonly ExportedFunction[], initialPages: number, v128Locals: ReadonlySet<string> = new Set()): Uint8Array {
  const types: number[] = [];
  unsigned(functions.length, types);
  for (const { code } of functions) {
    types.push(FUNC_TYPE);
    unsigned(code.params.length, types);
    for (let i = 0; i < code.params.length; i++) types.push(I32);
    unsigned(code.results, types);
    for (let i = 0; i < code.results; i++) types.push(I32);
  }
  const funcs: number[] = [];
  unsigned(functions.length, funcs);
  functions.forEach((_, i) => unsigned(i, funcs));
  const memory: number[] = [1, 0];
  unsigned(initialPages, memory);
  const exports: number[] = [];
  unsigned(functions.length + 1, exports);
  functions.forEach((f, i) => {
    name(f.name, exports);
    exports.push(EXPORT_FUNC);
    unsigned(i, exports);
  });
  name('memory', exports);
  exports.push(EXPORT_MEMORY, 0);
  const code: number[] = [];
  unsigned(functions.length, code);
  for (const { code: f } of functions) {
    const body: number[] = [];
    unsigned(f.locals.length, body);
    for (const l of f.locals) body.push(1, v128Locals.has(l) ? V128 : I32);
    body.push(...f.bytes, OP.end);
    unsigned(body.length, code);
    code.push(...body);
  }
  const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  const section = (id: number, content: number[]) => {
    out.push(id);
    unsigned(content.length, out);
    out.push(...content);
  };
  section(SECTION.type, types);
  section(SECTION.function, funcs);
  section(SECTION.memory, memory);
  section(SECTION.export, exports);
  section(SECTION.code, code);
  return Uint8Array.from(out);
}
