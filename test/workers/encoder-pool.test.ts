import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import fc from 'fast-check';
import { EncoderPool, EncoderError, defaultThreads, isPlainData } from '../../src/workers/encoder-pool.js';
import { OrderedPublisher, tokensFromHead } from '../../src/core/ordered-commit.js';
import { encodeRows, RowEncodingError } from '../../src/core/row-encoding.js';
import { ownArrayBuffer } from '../../src/workers/task-data.js';
import { EXIT_STREAM, THROW_STREAM } from './support/crash-task.js';

const crashTaskUrl = new URL('./support/crash-task.js', import.meta.url);

function eventRows(n: number, from = 0): unknown[] {
  return Array.from({ length: n }, (_, k) => {
    const i = from + k;
    return [`$${i}:example.com`, `!room${i % 7}:example.com`, 'm.room.message', '@alice:example.com', null, { body: `hello ${i}`, n: i / 3 }];
  });
}

/** The error inline encoding throws for these rows, to compare the pool's with. */
function inlineError(stream: string, token: number, rows: readonly unknown[]): RowEncodingError {
  try {
    encodeRows(stream, token, rows);
  } catch (err) {
    assert.ok(err instanceof RowEncodingError);
    return err;
  }
  assert.fail('expected the rows to be rejected');
}

test('pool size defaults to available cores minus one, at least one', async () => {
  assert.equal(defaultThreads(), Math.max(1, os.availableParallelism() - 1));
  const pool = new EncoderPool();
  assert.equal(pool.threads, defaultThreads());
  await pool.close();
});

test('small batches are encoded inline, synchronously', async () => {
  const pool = new EncoderPool({ threads: 1, inlineMaxRows: 10 });
  const out = pool.encode('events', 7, eventRows(10));
  assert.ok(Buffer.isBuffer(out), 'a Buffer, not a Promise');
  const big = pool.encode('events', 8, eventRows(11));
  assert.ok(big instanceof Promise);
  assert.deepEqual(await big, encodeRows('events', 8, eventRows(11)));
  await pool.close();
});

test('threads 0 disables the pool: every batch is inline', async () => {
  const pool = new EncoderPool({ threads: 0, inlineMaxRows: 0 });
  const out = pool.encode('events', 1, eventRows(5000));
  assert.ok(Buffer.isBuffer(out));
  const frames = await pool.transcode(out);
  assert.ok(frames.length > 0);
  await pool.close();
});

test('pool and inline output are the same bytes, whatever the slicing', async () => {
  const pool = new EncoderPool({ threads: 2, inlineMaxRows: 0, taskRows: 7 });
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.jsonValue(), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        fc.constantFrom('events', 'caches', 'x', 'a_very_long_stream_name_for_slicing'),
        async (rows, token, stream) => {
          const pooled = await pool.encode(stream, token, rows);
          assert.ok(pooled.equals(encodeRows(stream, token, rows)));
        },
      ),
      { numRuns: 150 },
    );
    // Non-ASCII text, and rows the pool must hand back to this thread to match JSON.stringify.
    class Money {
      constructor(readonly cents: number) {}
      toJSON(): string {
        return `${this.cents / 100} EUR`;
      }
    }
    const odd: unknown[] = [
      { text: 'héllo wörld ☃ 🎉 日本語' },
      [new Date(0), new Map([[1, 2]]), Buffer.from('hi')],
      { money: new Money(1234), nested: [{ deeper: new Money(1) }] },
      { skipped: () => 1, kept: 1, undef: undefined },
      [undefined, () => 2, Symbol('s')],
    ];
    for (let n = 1; n <= odd.length; n++) {
      const rows = [...eventRows(20), ...odd.slice(0, n), ...eventRows(20)];
      assert.ok((await pool.encode('events', 99, rows)).equals(encodeRows('events', 99, rows)), `with ${n} odd rows`);
    }
    // Alone in their slice, so the clone itself refuses them (DataCloneError) and JSON decides.
    for (const row of odd.slice(3)) {
      const rows = [...eventRows(7), row, ...eventRows(6)];
      assert.ok((await pool.encode('events', 99, rows)).equals(encodeRows('events', 99, rows)), JSON.stringify(row));
    }
  } finally {
    await pool.close();
  }
});

test('isPlainData accepts JSON-like data and refuses what a clone would change', () => {
  assert.equal(isPlainData([1, 'a', null, [1, { a: [true] }], Object.create(null), new Date()]), true);
  assert.equal(isPlainData([Buffer.from('x')]), false);
  assert.equal(isPlainData([{ a: new Map() }]), false);
  class Row {}
  assert.equal(isPlainData([[new Row()]]), false);
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  assert.equal(isPlainData([cycle]), false);
});

test('a bad row rejects the whole publish, naming its index, as inline does', async () => {
  const pool = new EncoderPool({ threads: 2, inlineMaxRows: 0, taskRows: 10 });
  const cycle: Record<string, unknown> = { a: 1 };
  cycle.self = cycle;
  const cases: [string, unknown][] = [
    ['a BigInt', { n: 10n }],
    ['a cycle', cycle],
    ['top-level undefined', undefined],
    ['a function', () => 1],
    ['a symbol', Symbol('x')],
  ];
  try {
    for (const [what, bad] of cases) {
      for (const at of [0, 9, 10, 37, 49]) {
        const rows = eventRows(50);
        rows[at] = bad;
        const expected = inlineError('events', 5, rows);
        assert.equal(expected.rowIndex, at);
        await assert.rejects(
          Promise.resolve().then(() => pool.encode('events', 5, rows)),
          (err: unknown) => {
            assert.ok(err instanceof RowEncodingError, `${what} at ${at}: ${String(err)}`);
            assert.equal(err.code, 'BAD_ROW');
            assert.equal(err.rowIndex, at);
            assert.equal(err.message, expected.message);
            return true;
          },
        );
      }
    }
    // Two bad rows in different slices: the first is named, as inline names it.
    const rows = eventRows(50);
    rows[45] = 1n;
    rows[12] = undefined;
    await assert.rejects(Promise.resolve(pool.encode('events', 5, rows)), { rowIndex: 12 });
  } finally {
    await pool.close();
  }
});

test('a bad row stores nothing of its batch: the publisher commits nothing for it', async () => {
  const pool = new EncoderPool({ threads: 1, inlineMaxRows: 0, taskRows: 4 });
  const commits: number[] = [];
  let head = 0;
  const publisher = new OrderedPublisher({
    encoder: pool,
    tokens: tokensFromHead(() => head),
    commit: (_stream, token, bytes, rowCount) => {
      assert.equal(bytes.toString().split('\n').length - 1, rowCount);
      head = token;
      commits.push(token);
    },
  });
  const rows = eventRows(30);
  rows[29] = { when: 5n };
  const bad = publisher.publish('events', rows);
  const good = publisher.publish('events', eventRows(30));
  await assert.rejects(bad, { name: 'RowEncodingError', rowIndex: 29 });
  assert.equal(await good, 2);
  assert.deepEqual(commits, [2]);
  await pool.close();
});

test('thousands of interleaved publishes through the pool commit in order, inline and pool mixed', async () => {
  const pool = new EncoderPool({ threads: 2, inlineMaxRows: 8, taskRows: 16 });
  const streams = ['events', 'caches', 'typing', 'receipts', 'presence'];
  const heads = new Map<string, number>();
  const seen = new Map<string, { token: number; first: number }[]>();
  const publisher = new OrderedPublisher({
    encoder: pool,
    tokens: tokensFromHead((s) => heads.get(s) ?? 0),
    commit: (stream, token, bytes, rowCount) => {
      const lines = bytes.toString().split('\n');
      assert.equal(lines.length - 1, rowCount);
      assert.ok(lines.slice(0, -2).every((l) => l.startsWith(`RDATA ${stream} batch `)));
      assert.ok(lines[lines.length - 2]!.startsWith(`RDATA ${stream} ${token} `));
      heads.set(stream, token);
      const first = (JSON.parse(lines[0]!.slice(lines[0]!.indexOf('['))) as [string])[0];
      (seen.get(stream) ?? seen.set(stream, []).get(stream)!).push({ token, first: Number(first.slice(1, first.indexOf(':'))) });
    },
  });
  const rand = fc.sample(fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 1, max: 60 })), { numRuns: 3000, seed: 7 });
  const published = new Map<string, number[]>();
  const all: Promise<number>[] = [];
  let id = 0;
  for (const [s, n] of rand) {
    const stream = streams[s]!;
    (published.get(stream) ?? published.set(stream, []).get(stream)!).push(id);
    all.push(publisher.publish(stream, eventRows(n, id)));
    id += n;
    if (all.length % 200 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  const tokens = await Promise.all(all);
  assert.equal(tokens.length, 3000);
  for (const stream of streams) {
    const commits = seen.get(stream)!;
    assert.deepEqual(
      commits.map((c) => c.first),
      published.get(stream),
      `${stream} commits in publish order`,
    );
    assert.deepEqual(
      commits.map((c) => c.token),
      commits.map((_, k) => k + 1),
      `${stream} tokens rise by one`,
    );
  }
  await pool.close();
});

for (const [path, rows] of [
  ['one task', 3],
  ['rows streamed in slices', 40],
] as const) {
  test(`a worker that exits fails only its tasks, with a clear error, and is replaced (${path})`, async () => {
    await workerExitCase(rows);
  });
}

async function workerExitCase(rowCount: number): Promise<void> {
  const pool = new EncoderPool({ threads: 2, inlineMaxRows: 0, taskRows: 10, encodeTaskUrl: crashTaskUrl });
  const crash = Promise.resolve(pool.encode(EXIT_STREAM, 1, eventRows(rowCount)));
  const bystander = Promise.resolve(pool.encode('events', 1, eventRows(rowCount)));
  await assert.rejects(crash, (err: unknown) => {
    assert.ok(err instanceof EncoderError);
    assert.equal(err.code, 'WORKER_FAILED');
    assert.match(err.message, /^encoder worker failed: worker exited with code: 3/);
    return true;
  });
  assert.deepEqual(await bystander, encodeRows('events', 1, eventRows(rowCount)));
  // The pool is whole again: enough work to need both workers succeeds.
  const after = await Promise.all(Array.from({ length: 8 }, (_, i) => pool.encode('events', i + 2, eventRows(50))));
  after.forEach((bytes, i) => assert.ok(bytes.equals(encodeRows('events', i + 2, eventRows(50)))));
  assert.equal(pool.pending, 0);
  await pool.close();
}

test('a task that throws (a bug, not a bad row) fails only that publish', async () => {
  const pool = new EncoderPool({ threads: 1, inlineMaxRows: 0, taskRows: 10, encodeTaskUrl: crashTaskUrl });
  for (const rows of [2, 30]) {
    await assert.rejects(Promise.resolve(pool.encode(THROW_STREAM, 1, eventRows(rows))), {
      name: 'EncoderError',
      code: 'WORKER_FAILED',
      message: 'encoder worker failed: boom in the encoder',
    });
  }
  assert.ok((await pool.encode('events', 2, eventRows(2))).equals(encodeRows('events', 2, eventRows(2))));
  await pool.close();
});

test('close() waits for tasks in flight and resolves them, then refuses new work', async () => {
  const pool = new EncoderPool({ threads: 1, inlineMaxRows: 0, taskRows: 100 });
  const inFlight = Array.from({ length: 6 }, (_, i) => Promise.resolve(pool.encode('events', i + 1, eventRows(1000))));
  const transcoding = pool.transcode(encodeRows('events', 9, eventRows(2000)));
  assert.equal(pool.pending, 7);
  let closed = false;
  const closing = pool.close().then(() => {
    closed = true;
  });
  const done = await Promise.all(inFlight);
  done.forEach((bytes, i) => assert.ok(bytes.equals(encodeRows('events', i + 1, eventRows(1000)))));
  assert.ok((await transcoding).length > 0);
  await closing;
  assert.equal(closed, true);
  assert.equal(pool.pending, 0);
  assert.throws(() => pool.encode('events', 10, eventRows(1)), { name: 'EncoderError', code: 'ENCODER_CLOSED' });
  await assert.rejects(pool.transcode(Buffer.from('RDATA events 1 1\n')), { code: 'ENCODER_CLOSED' });
  await pool.close(); // twice is harmless
});

test('ownArrayBuffer gives whole buffers as they are and copies views of a shared slab', () => {
  const whole = Buffer.from(new ArrayBuffer(8));
  assert.equal(ownArrayBuffer(whole), whole.buffer);
  const small = Buffer.from('RDATA events 1 1\n'); // a view of Node's pool slab
  const own = ownArrayBuffer(small);
  assert.notEqual(own, small.buffer);
  assert.equal(own.byteLength, small.length);
  assert.deepEqual(Buffer.from(own), small);
});
