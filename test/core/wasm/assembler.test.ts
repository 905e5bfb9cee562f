import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeModule, FunctionCode, OP, SIMD } from '../../../src/core/wasm/assembler.js';

interface Exports {
  memory: { buffer: ArrayBuffer };
  [name: string]: unknown;
}
const Wasm = (globalThis as unknown as { WebAssembly: { Module: new (b: Uint8Array) => object; Instance: new (m: object) => { exports: Exports } } }).WebAssembly;

function instantiate(...functions: { name: string; code: FunctionCode }[]): Exports {
  return new Wasm.Instance(new Wasm.Module(encodeModule(functions, 1, new Set(['v'])))).exports;
}

test('a module of functions that call each other, loop, branch by name and use constants of any size', () => {
  // sum(n) = 0 + 1 + ... + (n - 1), by a loop; big() = a constant needing five LEB128 bytes, negative.
  const sum = new FunctionCode(['n'], ['i', 'total'], 1);
  sum.block('done', () =>
    sum.loop('next', () => {
      sum.get('i').get('n').op(OP.i32GeU).brIf('done');
      sum.get('total').get('i').op(OP.i32Add).set('total');
      sum.get('i').i32(1).op(OP.i32Add).set('i').br('next');
    }),
  );
  sum.get('total');
  const twice = new FunctionCode(['n'], [], 1);
  twice.get('n').call(0).get('n').call(0).op(OP.i32Add);
  const big = new FunctionCode([], [], 1);
  big.i32(-2_000_000_000);
  const exports = instantiate({ name: 'sum', code: sum }, { name: 'twice', code: twice }, { name: 'big', code: big });
  assert.equal((exports.sum as (n: number) => number)(200), 19900);
  assert.equal((exports.twice as (n: number) => number)(5), 20);
  assert.equal((exports.big as () => number)(), -2_000_000_000);
});

test('br_table goes to the block named for the value, or the default past the table', () => {
  const pick = new FunctionCode(['x'], [], 1);
  pick.block('other', () => {
    pick.block('one', () => {
      pick.block('zero', () => pick.get('x').brTable(['zero', 'one'], 'other'));
      pick.returns(100);
    });
    pick.returns(101);
  });
  pick.i32(-1);
  const f = instantiate({ name: 'pick', code: pick }).pick as (x: number) => number;
  assert.deepEqual([0, 1, 2, 300].map(f), [100, 101, -1, -1]);
});

test('SIMD: sixteen bytes compared at once, the matches as a bitmask', () => {
  const find = new FunctionCode(['at', 'byte'], ['v'], 1);
  find.get('at').simdLoad().set('v');
  find.get('v').get('byte').simd(SIMD.i8x16Splat).simd(SIMD.i8x16Eq).simd(SIMD.i8x16Bitmask);
  const exports = instantiate({ name: 'find', code: find });
  new Uint8Array(exports.memory.buffer).set(Buffer.from('abcabcabcabcabca'), 8);
  // 'b' at 1, 4, 7, 10 and 13.
  assert.equal((exports.find as (at: number, b: number) => number)(8, 0x62), 0b0010010010010010);
});

test('a branch to a block that does not enclose it, or an unknown local, is refused while writing', () => {
  const f = new FunctionCode(['a'], [], 0);
  assert.throws(() => f.br('nowhere'), /no enclosing block nowhere/);
  f.block('here', () => {});
  assert.throws(() => f.br('here'), /no enclosing block here/);
  assert.throws(() => f.get('b'), /no local b/);
});
