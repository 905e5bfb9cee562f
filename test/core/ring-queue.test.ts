import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RingQueue, DEFAULT_MAX_QUEUE_BYTES, DEFAULT_MAX_QUEUE_COMMANDS } from '../../src/core/ring-queue.js';

test('defaults are 10,000 commands and 64 MiB', () => {
  const q = new RingQueue();
  assert.equal(q.maxCommands, DEFAULT_MAX_QUEUE_COMMANDS);
  assert.equal(DEFAULT_MAX_QUEUE_COMMANDS, 10_000);
  assert.equal(q.maxBytes, DEFAULT_MAX_QUEUE_BYTES);
  assert.equal(DEFAULT_MAX_QUEUE_BYTES, 64 * 1024 * 1024);
});

test('keeps FIFO order across growth and wrap-around', () => {
  const q = new RingQueue(1000, 1 << 20);
  let next = 0;
  let expect = 0;
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 37; i++) assert.ok(q.push(Buffer.from(String(next++))));
    for (let i = 0; i < 30; i++) assert.equal(q.shift()!.toString(), String(expect++));
  }
  while (q.length > 0) assert.equal(q.shift()!.toString(), String(expect++));
  assert.equal(expect, next);
  assert.equal(q.shift(), undefined);
});

test('refuses a push that would cross the command limit, and keeps what it had', () => {
  const q = new RingQueue(3, 1000);
  assert.ok(q.push(Buffer.from('a')));
  assert.ok(q.push(Buffer.from('bc'), 2));
  assert.equal(q.push(Buffer.from('d')), false);
  assert.equal(q.commands, 3);
  assert.equal(q.bytes, 3);
  assert.deepEqual(q.takeAll().map(String), ['a', 'bc']);
});

test('refuses a push that would cross the byte limit', () => {
  const q = new RingQueue(100, 10);
  assert.ok(q.push(Buffer.alloc(6)));
  assert.equal(q.push(Buffer.alloc(5)), false);
  assert.ok(q.push(Buffer.alloc(4)));
  assert.equal(q.bytes, 10);
  assert.equal(q.fits(1), false);
});

test('takeAll hands everything over in order for one vectored write and empties the queue', () => {
  const q = new RingQueue();
  for (let i = 0; i < 20; i++) q.push(Buffer.from(`${i}\n`));
  for (let i = 0; i < 5; i++) q.shift();
  const out = q.takeAll();
  assert.equal(Buffer.concat(out).toString(), Array.from({ length: 15 }, (_, i) => `${i + 5}\n`).join(''));
  assert.equal(q.length, 0);
  assert.equal(q.commands, 0);
  assert.equal(q.bytes, 0);
  q.push(Buffer.from('x'));
  assert.equal(q.shift()!.toString(), 'x');
});

test('property: counts match a plain array model', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.record({ push: fc.nat(20), n: fc.integer({ min: 1, max: 3 }) }), fc.constant(null)), {
        maxLength: 200,
      }),
      (ops) => {
        const q = new RingQueue(50, 300);
        const model: { len: number; n: number }[] = [];
        for (const op of ops) {
          if (op === null) {
            const m = model.shift();
            const b = q.shift();
            assert.equal(b?.length, m?.len);
          } else {
            const cmds = model.reduce((s, m) => s + m.n, 0);
            const bytes = model.reduce((s, m) => s + m.len, 0);
            const ok = cmds + op.n <= 50 && bytes + op.push <= 300;
            assert.equal(q.push(Buffer.alloc(op.push), op.n), ok);
            if (ok) model.push({ len: op.push, n: op.n });
          }
          assert.equal(q.length, model.length);
          assert.equal(q.commands, model.reduce((s, m) => s + m.n, 0));
          assert.equal(q.bytes, model.reduce((s, m) => s + m.len, 0));
        }
      },
    ),
  );
});

test('takeUpTo takes whole entries from the head while they fit (always at least one), and leaves the rest with their counts', () => {
  const q = new RingQueue(100, 1_000);
  for (let i = 0; i < 5; i++) assert.ok(q.push(Buffer.alloc(100, 48 + i), 2));
  q.push(Buffer.alloc(400, 53), 1);
  assert.deepEqual(q.takeUpTo(250).map((b) => b[0]), [48, 49]);
  assert.deepEqual([q.length, q.commands, q.bytes], [4, 7, 700]);
  assert.deepEqual(q.takeUpTo(50).map((b) => b.length), [100], 'an entry larger than the limit still goes, alone');
  assert.deepEqual(q.takeUpTo(10_000).map((b) => b[0]), [51, 52, 53]);
  assert.deepEqual([q.length, q.commands, q.bytes], [0, 0, 0]);
  assert.deepEqual(q.takeUpTo(100), []);
});
