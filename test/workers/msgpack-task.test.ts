import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Unpackr, unpackMultiple } from 'msgpackr';
import { EncoderPool } from '../../src/workers/encoder-pool.js';
import { rowsFromLines } from '../../src/core/dialects/msgpack-frames.js';
import { encodeRows } from '../../src/core/row-encoding.js';

/** The frames a subscriber should see for these lines: rows as JSON.parse reads them. */
function expectedFrames(lines: Buffer): unknown[] {
  return lines
    .toString()
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [, stream, token] = l.split(' ', 3);
      const json = l.slice(`RDATA ${stream} ${token} `.length);
      return ['RDATA', stream, token === 'batch' ? 'batch' : Number(token), JSON.parse(json)];
    });
}

test('a batch becomes "batch" frames and its numbered row, in one message', async () => {
  const lines = Buffer.from(
    'RDATA caches batch ["get_user_by_id",["@a:hs"],1490197670513]\n' +
      'RDATA caches 54 ["get_user_by_id",["@b:hs"],1490197670513]\n',
  );
  const pool = new EncoderPool({ threads: 0 });
  assert.deepEqual(unpackMultiple(await pool.transcode(lines)), [
    ['RDATA', 'caches', 'batch', ['get_user_by_id', ['@a:hs'], 1490197670513]],
    ['RDATA', 'caches', 54, ['get_user_by_id', ['@b:hs'], 1490197670513]],
  ]);
  await pool.close();
});

test('frames decode to the same values as JSON.parse of the rows, inline and on the pool', async () => {
  const inline = new EncoderPool({ threads: 0 });
  const pooled = new EncoderPool({ threads: 1, transcodeInlineMaxBytes: 0 });
  try {
    await fc.assert(
      fc.asyncProperty(
        // msgpackr renames a "__proto__" key (prototype-pollution guard): not a row value we model.
        fc.array(fc.jsonValue({ stringUnit: 'grapheme' }), { minLength: 1, maxLength: 30 }).filter((rows) => !JSON.stringify(rows).includes('"__proto__"')),
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        async (rows, token) => {
          const lines = encodeRows('events', token, rows);
          const a = await inline.transcode(lines);
          const b = await pooled.transcode(lines);
          assert.ok(a.equals(b), 'pool and inline frames are the same bytes');
          assert.deepEqual(unpackMultiple(a), expectedFrames(lines));
          assert.deepEqual(
            unpackMultiple(a).map((f) => (f as unknown[])[3]),
            rows.map((r) => JSON.parse(JSON.stringify(r)) as unknown),
          );
        },
      ),
      { numRuns: 120 },
    );
  } finally {
    await inline.close();
    await pooled.close();
  }
});

test('large inputs run on the pool and give the inline bytes', async () => {
  const rows = Array.from({ length: 3000 }, (_, i) => [`$${i}:hs`, `!r${i % 9}:hs`, 'm.room.message', '@u:hs', null, 'x'.repeat(80)]);
  const lines = Buffer.concat([encodeRows('events', 10, rows.slice(0, 1500)), encodeRows('events', 11, rows.slice(1500))]);
  const before = Buffer.from(lines);
  const pool = new EncoderPool({ threads: 1, transcodeInlineMaxBytes: 1024 });
  const frames = await pool.transcode(lines);
  assert.ok(frames.equals(rowsFromLines(lines, false) as Buffer));
  assert.deepEqual(lines, before, 'the input is left as it was');
  const decoded = unpackMultiple(frames) as unknown[][];
  assert.equal(decoded.length, 3000);
  assert.deepEqual(decoded[1499]!.slice(0, 3), ['RDATA', 'events', 10]);
  assert.deepEqual(decoded[1500]!.slice(0, 3), ['RDATA', 'events', 'batch']);
  assert.equal(frames.buffer.byteLength, frames.length, 'the message owns exactly its bytes');
  await pool.close();
});

test('records are off by default: frames carry no msgpackr record extension', async () => {
  const lines = encodeRows('events', 3, [{ a: 1, b: 2 }, { a: 3, b: 4 }]);
  const frames = rowsFromLines(lines, false) as Buffer;
  // 0xd4 0x72 would open a record definition.
  assert.equal(frames.indexOf(Buffer.from([0xd4, 0x72])), -1);
  assert.deepEqual(new Unpackr({ useRecords: false }).unpackMultiple(frames), expectedFrames(lines));
});

test('with records, each message decodes on its own with a records-aware decoder', async () => {
  const pool = new EncoderPool({ threads: 1, transcodeInlineMaxBytes: 100 });
  const rows = Array.from({ length: 50 }, (_, i) => ({ event_id: `$${i}`, room_id: '!r:hs', depth: i }));
  const first = encodeRows('events', 1, rows.slice(0, 25));
  const second = encodeRows('events', 2, rows.slice(25));
  const plain = await pool.transcode(first);
  const recordsA = await pool.transcode(first, { records: true });
  const recordsB = await pool.transcode(second, { records: true });
  assert.ok(recordsA.length < plain.length, 'records make repeated row shapes smaller');
  assert.ok(recordsA.equals(rowsFromLines(first, true) as Buffer), 'pool and inline agree with records too');
  // A client that joined late sees only the second message: it must decode alone.
  assert.deepEqual(new Unpackr({ useRecords: true }).unpackMultiple(recordsB), expectedFrames(second));
  const shared = new Unpackr({ useRecords: true });
  assert.deepEqual(shared.unpackMultiple(recordsA), expectedFrames(first));
  assert.deepEqual(shared.unpackMultiple(recordsB), expectedFrames(second));
  await pool.close();
});

test('CRLF endings and blank lines are read as the line scanner reads them', async () => {
  const pool = new EncoderPool({ threads: 0 });
  const frames = await pool.transcode(Buffer.from('RDATA a batch 1\r\n\n  \nRDATA a 2 {"k":"v w"}\n'));
  assert.deepEqual(unpackMultiple(frames), [
    ['RDATA', 'a', 'batch', 1],
    ['RDATA', 'a', 2, { k: 'v w' }],
  ]);
  await pool.close();
});

test('input that is not whole RDATA lines is rejected with BAD_LINES, inline and on the pool', async () => {
  const inline = new EncoderPool({ threads: 0 });
  const pooled = new EncoderPool({ threads: 1, transcodeInlineMaxBytes: 0 });
  const cases: [string, RegExp][] = [
    ['POSITION events 5\n', /line 0: expected RDATA, got POSITION/],
    ['RDATA events 1 [1]\nRDATA events 2 [2', /line 1: not terminated by LF/],
    ['RDATA events 1 [1]\nRDATA events 2 {nope}\n', /line 1: bad JSON in RDATA/],
    ['RDATA events x [1]\n', /line 0: bad token 'x' in RDATA/],
    ['NONSENSE\n', /line 0: unknown command/],
  ];
  try {
    for (const pool of [inline, pooled]) {
      for (const [input, message] of cases) {
        await assert.rejects(pool.transcode(Buffer.from(input)), (err: unknown) => {
          assert.equal((err as { code?: string }).code, 'BAD_LINES', input);
          assert.match((err as Error).message, message);
          return true;
        });
      }
    }
  } finally {
    await inline.close();
    await pooled.close();
  }
});
