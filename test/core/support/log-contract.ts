// The stream log contract: every log (memory, file, Redis) runs these same
// tests through `contract(name, makeLog)`. Answers are awaited, so a log may
// answer now or later; a factory may open its log asynchronously and
// registers its own clean-up (node:test's after()).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { advanceEntry, type LogCursor, type LogEntry, type MemoryLogOptions, type StreamLog } from '../../../src/core/stream-log.js';

/** One group: `rows` RDATA lines sharing `token` (all but the last say `batch`), or a POSITION when rows is 0. */
export interface Group {
  token: number;
  rows: number;
}

export function groupText(stream: string, g: Group): string {
  if (g.rows === 0) return `POSITION ${stream} ${g.token}\n`;
  let text = '';
  for (let i = 0; i < g.rows; i++) {
    const word = i === g.rows - 1 ? String(g.token) : 'batch';
    text += `RDATA ${stream} ${word} ["row ${g.token}.${i}",{"k":"a b"}]\n`;
  }
  return text;
}

/** An entry of whole groups, carrying its group boundaries as a writer's ingest builds them. */
export function entry(groups: Group[], stream = 's'): LogEntry {
  const texts = groups.map((g) => groupText(stream, g));
  const bytes = Buffer.from(texts.join(''));
  const rows = groups.reduce((n, g) => n + g.rows, 0);
  const lines = groups.reduce((n, g) => n + Math.max(1, g.rows), 0);
  let bounds: Float64Array | undefined;
  if (groups.length > 1) {
    bounds = new Float64Array(groups.length * 3);
    let end = 0;
    let lineCount = 0;
    groups.forEach((g, i) => {
      end += Buffer.byteLength(texts[i]!);
      lineCount += Math.max(1, g.rows);
      bounds!.set([end, g.token, lineCount], i * 3);
    });
  }
  return { firstToken: groups[0]!.token, lastToken: groups[groups.length - 1]!.token, bytes, lines, rows, groups: bounds };
}


/** Makes a fresh, empty log with these options (retention, start token). */
export type MakeLog = (options?: MemoryLogOptions) => StreamLog | Promise<StreamLog>;


export function contract(name: string, makeLog: MakeLog, propertyRuns = 200): void {
  /** Everything from `cursor` to the head, `maxBytes` at a time. */
  async function readAll(log: StreamLog, cursor: LogCursor, maxBytes = 1 << 20): Promise<{ text: string; reads: number; lines: number }> {
    let text = '';
    let reads = 0;
    let lines = 0;
    for (;;) {
      const r = await log.read(cursor, maxBytes);
      assert.ok(r !== null, 'entries were evicted under the cursor');
      if (r.chunks.length === 0) return { text, reads, lines };
      text += Buffer.concat(r.chunks).toString();
      lines += r.lines;
      reads++;
    }
  }

  async function readAfter(log: StreamLog, token: number): Promise<string> {
    const cursor = await log.cursorAfter(token);
    assert.ok(cursor !== null, `cursorAfter(${token}) is null`);
    return (await readAll(log, cursor)).text;
  }

  const append = async (log: StreamLog, e: LogEntry): Promise<void> => {
    await log.append(e);
  };

  describe(`stream log contract: ${name}`, () => {
    test('starts empty at its start token, with oldest equal to the head', async () => {
      const log = await makeLog({ startToken: 100 });
      assert.equal(log.head, 100);
      assert.equal(log.oldest, 100);
      assert.equal(log.retainedRows, 0);
      assert.equal(await readAfter(log, 100), '');
      assert.equal(await log.cursorAfter(99), null, 'rows at or below the start token were never here');
      assert.equal(await readAfter(log, 150), '', 'a token past the head reads nothing');
    });

    test('reads appended entries back in order, in chunks of about maxBytes, each a whole entry', async () => {
      const log = await makeLog();
      const entries: LogEntry[] = [];
      for (let t = 1; t <= 50; t++) {
        const e = entry([{ token: t, rows: 1 + (t % 3) }]);
        entries.push(e);
        await log.append(e);
      }
      assert.equal(log.head, 50);
      assert.equal(log.oldest, 0);
      assert.equal(log.retainedRows, entries.reduce((n, e) => n + e.rows, 0));
      assert.equal(log.retainedBytes, entries.reduce((n, e) => n + e.bytes.length, 0));
      const cursor = (await log.cursorAfter(0))!;
      const r1 = (await log.read(cursor, 1))!;
      assert.equal(r1.chunks.length, 1, 'at least one whole entry even when maxBytes is tiny');
      assert.deepEqual(r1.chunks[0], entries[0]!.bytes, 'a whole entry');
      assert.equal(r1.lastToken, 1);
      assert.equal(r1.lines, entries[0]!.lines);
      const rest = await readAll(log, cursor, 500);
      assert.ok(rest.reads > 5, `read in several chunks (${rest.reads})`);
      assert.equal(
        Buffer.concat([r1.chunks[0]!, Buffer.from(rest.text)]).toString(),
        Buffer.concat(entries.map((e) => e.bytes)).toString(),
      );
      assert.equal(rest.lines + r1.lines, entries.reduce((n, e) => n + e.lines, 0));
      const atHead = (await log.read(cursor, 500))!;
      assert.deepEqual(atHead.chunks, [], 'empty at the head');
      await log.append(entry([{ token: 51, rows: 1 }]));
      assert.equal((await readAll(log, cursor)).text, groupText('s', { token: 51, rows: 1 }), 'the same cursor goes on past later appends');
    });

    test('the history before the first entry is unknown unless a start token says where it begins', async () => {
      const fresh = await makeLog();
      await fresh.append(entry([{ token: 500, rows: 2 }]));
      assert.equal(fresh.oldest, 499, 'rows from 500: 499 is the oldest token a catch-up can start from');
      assert.equal(await fresh.cursorAfter(0), null, 'tokens 1..499 are unknown, not empty');
      assert.equal(await readAfter(fresh, 499), groupText('s', { token: 500, rows: 2 }));
      await fresh.append(entry([{ token: 900, rows: 1 }]));
      assert.equal(fresh.oldest, 499, 'a later gap is a gap in the tokens, not in what is known');

      const advanced = await makeLog();
      await advanced.append(advanceEntry(70));
      assert.equal(advanced.oldest, 70, 'a first advance to 70 says nothing of the rows up to 70');

      const complete = await makeLog({ startToken: 0 });
      await complete.append(entry([{ token: 2, rows: 1 }]));
      assert.equal(complete.oldest, 0, 'a log told its history starts at 0 serves it from 0');
      assert.equal(await readAfter(complete, 0), groupText('s', { token: 2, rows: 1 }));
    });

    test('cursorAfter a token inside a multi-group entry starts at the next group', async () => {
      const log = await makeLog({ startToken: 0 });
      const groups: Group[] = [
        { token: 3, rows: 1 },
        { token: 4, rows: 3 },
        { token: 7, rows: 0 },
        { token: 9, rows: 2 },
      ];
      await log.append(entry(groups));
      const after = (t: number): string => groups.filter((g) => g.token > t).map((g) => groupText('s', g)).join('');
      for (const t of [0, 2, 3, 4, 5, 6, 7, 8]) assert.equal(await readAfter(log, t), after(t), `after ${t}`);
      assert.equal(await readAfter(log, 9), '');
    });

    test('a resume from inside a batch never starts mid-batch: the whole batch is replayed with its framing', async () => {
      const log = await makeLog();
      await log.append(entry([{ token: 1, rows: 1 }, { token: 5, rows: 4 }, { token: 6, rows: 1 }]));
      await log.append(entry([{ token: 10, rows: 3 }]));
      // A client cut off after two `batch` lines of token 5 still holds token 1.
      const text = await readAfter(log, 1);
      const lines = text.trimEnd().split('\n');
      assert.match(lines[0]!, /^RDATA s batch \["row 5\.0"/);
      assert.deepEqual(
        lines.map((l) => l.split(' ')[2]),
        ['batch', 'batch', 'batch', '5', '6', 'batch', 'batch', '10'],
      );
      // Tokens between groups (2..4 were never used) resume at the same place.
      assert.equal(await readAfter(log, 3), text);
      assert.match(await readAfter(log, 6), /^RDATA s batch \["row 10\.0"/);
    });

    test('retention by rows evicts whole entries, oldest first, and moves oldest to the last evicted token', async () => {
      const log = await makeLog({ retentionRows: 10 });
      for (let t = 1; t <= 25; t++) await log.append(entry([{ token: t, rows: 1 }]));
      assert.equal(log.retainedRows, 10);
      assert.equal(log.oldest, 15);
      assert.equal(log.head, 25);
      assert.equal(await log.cursorAfter(14), null);
      assert.equal(await log.cursorAfter(0), null);
      const text = await readAfter(log, 15);
      assert.deepEqual(
        text.trimEnd().split('\n').map((l) => Number(l.split(' ')[2])),
        [16, 17, 18, 19, 20, 21, 22, 23, 24, 25],
      );
      // A batch counts as its rows and goes as a whole.
      await log.append(entry([{ token: 26, rows: 4 }]));
      assert.equal(log.retainedRows, 10);
      assert.equal(log.oldest, 19);
    });

    test('retention by bytes evicts until the retained bytes fit, keeping the newest entry however large', async () => {
      const one = entry([{ token: 10, rows: 1 }]).bytes.length;
      const log = await makeLog({ retentionBytes: one * 5 + 3 });
      for (let t = 10; t <= 29; t++) await log.append(entry([{ token: t, rows: 1 }]));
      assert.ok(log.retainedBytes <= one * 5 + 3);
      assert.equal(log.retainedRows, 5);
      assert.equal(log.oldest, 24);
      const big = entry([{ token: 30, rows: 50 }]);
      assert.ok(big.bytes.length > one * 5 + 3);
      await log.append(big);
      assert.equal(log.retainedRows, 50, 'only the newest, oversized entry is left');
      assert.equal(log.oldest, 29);
      assert.equal(await readAfter(log, 29), big.bytes.toString());
    });

    test('an advance is stored without a line: no rows, no bytes, and a read passes over it to the next row', async () => {
      const log = await makeLog({ retentionRows: 2 });
      const advance = advanceEntry;
      await log.append(entry([{ token: 1, rows: 1 }]));
      for (let t = 2; t <= 10; t++) await log.append(advance(t));
      await log.append(entry([{ token: 11, rows: 1 }]));
      await log.append(advance(12));
      assert.equal(log.retainedRows, 2);
      assert.equal(log.retainedBytes, Buffer.byteLength(await readAfter(log, 0)));
      assert.equal(log.head, 12);
      assert.equal(await readAfter(log, 0), groupText('s', { token: 1, rows: 1 }) + groupText('s', { token: 11, rows: 1 }));
      assert.equal(await readAfter(log, 5), groupText('s', { token: 11, rows: 1 }));
      assert.equal(await readAfter(log, 11), '');
    });

    test('a cursor whose entries were evicted reads null, including one that stopped mid-read', async () => {
      const log = await makeLog({ retentionRows: 20 });
      for (let t = 1; t <= 20; t++) await log.append(entry([{ token: t, rows: 1 }]));
      const idle = (await log.cursorAfter(0))!;
      const midway = (await log.cursorAfter(0))!;
      assert.equal((await log.read(midway, 1))!.lastToken, 1);
      const fresh = (await log.cursorAfter(19))!;
      for (let t = 21; t <= 25; t++) await log.append(entry([{ token: t, rows: 1 }]));
      assert.equal(await log.read(idle, 1 << 20), null);
      assert.equal(await log.read(midway, 1 << 20), null);
      assert.equal((await readAll(log, fresh)).lines, 6, 'a cursor past the evicted entries reads on');
    });

    test('restartAt forgets every entry: older tokens are too old and every earlier cursor reads null, even one at the head', async () => {
      const log = await makeLog();
      for (let t = 1; t <= 5; t++) await log.append(entry([{ token: t, rows: 1 }]));
      const idle = (await log.cursorAfter(0))!;
      const midway = (await log.cursorAfter(0))!;
      assert.equal((await log.read(midway, 1))!.lastToken, 1);
      const atHead = (await log.cursorAfter(5))!;
      assert.deepEqual((await log.read(atHead, 1 << 20))!.chunks, []);
      log.restartAt(12_000);
      assert.deepEqual([log.head, log.oldest, log.retainedRows, log.retainedBytes], [12_000, 12_000, 0, 0]);
      for (const c of [idle, midway, atHead]) assert.equal(await log.read(c, 1 << 20), null);
      assert.equal(await log.cursorAfter(0), null, 'no silent gap: history before the restart is unknown');
      assert.equal(await log.cursorAfter(11_999), null);
      assert.equal(await readAfter(log, 12_000), '');
      await log.append(entry([{ token: 12_001, rows: 2 }]));
      assert.equal(await readAfter(log, 12_000), groupText('s', { token: 12_001, rows: 2 }));
      assert.equal(log.retainedRows, 2);
      assert.throws(() => log.restartAt(12_000), RangeError, 'never below the head');
      log.restartAt(12_001);
      assert.equal(await log.cursorAfter(12_000), null);
    });

    test('cursors survive the compaction of a long evicted prefix', async () => {
      const log = await makeLog({ retentionRows: 3000 });
      for (let t = 1; t <= 5600; t++) await log.append(entry([{ token: t, rows: 1 }]));
      const cursor = (await log.cursorAfter(5500))!;
      const stale = (await log.cursorAfter(2700))!;
      // Past 6000 entries the evicted prefix is more than half the array: it is compacted away.
      for (let t = 5601; t <= 8000; t++) await log.append(entry([{ token: t, rows: 1 }]));
      assert.equal(log.oldest, 5000);
      assert.equal(await log.read(stale, 1 << 20), null);
      const tokens = (await readAll(log, cursor)).text.trimEnd().split('\n').map((l) => Number(l.split(' ')[2]));
      assert.equal(tokens.length, 2500);
      assert.equal(tokens[0], 5501);
      assert.equal(tokens[2499], 8000);
      assert.equal((await readAfter(log, 5000)).split('\n').length - 1, 3000);
    });

    test('property: catch-up from any token >= oldest is exactly the groups after it, whole, in order', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.array(fc.record({ gap: fc.integer({ min: 1, max: 3 }), rows: fc.integer({ min: 0, max: 4 }) }), { minLength: 1, maxLength: 4 }), {
            minLength: 1,
            maxLength: 40,
          }),
          fc.integer({ min: 1, max: 60 }),
          fc.integer({ min: 1, max: 400 }),
          async (entries, retentionRows, chunkBytes) => {
            const log = await makeLog({ retentionRows });
            const all: Group[] = [];
            let token = 0;
            for (const spec of entries) {
              const groups = spec.map((g) => ({ token: (token += g.gap), rows: g.rows }));
              all.push(...groups);
              await log.append(entry(groups));
            }
            assert.equal(log.head, token);
            for (let t = 0; t <= token + 1; t++) {
              const cursor = await log.cursorAfter(t);
              if (t < log.oldest) {
                assert.equal(cursor, null);
                continue;
              }
              assert.ok(cursor !== null);
              const expected = all.filter((g) => g.token > t).map((g) => groupText('s', g)).join('');
              assert.equal((await readAll(log, cursor, chunkBytes)).text, expected, `after ${t} (oldest ${log.oldest})`);
            }
          },
        ),
        { numRuns: propertyRuns },
      );
    });
    test('tells its listener of every stored entry, in order, before the append answers; lastAppended is then the head', async () => {
      const log = await makeLog({ startToken: 0 });
      const heard: number[] = [];
      log.listen({ stored: (e) => heard.push(e.lastToken), gap: (t) => assert.fail(`no entry was lost, yet the log reported a gap after ${t}`) });
      const answers = [entry([{ token: 1, rows: 1 }]), advanceEntry(4), entry([{ token: 5, rows: 2 }, { token: 6, rows: 1 }])].map(
        (e) => log.append(e),
      );
      assert.equal(log.lastAppended, 6, 'lastAppended counts entries still being stored');
      for (const [i, answer] of answers.entries()) {
        await answer;
        assert.ok(heard.length > i, `entry ${i} was heard before its append answered`);
      }
      assert.deepEqual(heard, [1, 4, 6]);
      assert.equal(log.head, 6);
      assert.equal(log.lastAppended, 6);
      assert.equal(log.retainedRows, 4);
    });

    test('reserves publish tokens above lastAppended and every reservation until released', async () => {
      const log = await makeLog({ startToken: 0 });
      await append(log, entry([{ token: 7, rows: 1 }]));
      assert.equal(log.reserve(), 8);
      assert.equal(log.reserve(), 9);
      log.release();
      assert.equal(log.reserve(), 8, 'released: reservations follow lastAppended again');
      await append(log, entry([{ token: 20, rows: 1 }]));
      assert.equal(log.reserve(), 21, 'never at or below what was appended');
    });
  });
}
