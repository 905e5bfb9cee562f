// What the file log finds when it opens its directory again: the rows of
// the last run, a torn tail cut, corrupt data refused with its file and
// offset, retention by rows, bytes and age applied across restarts, and
// disk errors that leave nothing half stored.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileStreamLog, segmentName, type FileLogEvents, type FileLogOptions } from '../../src/bindings/file-log.js';
import { advanceEntry, type LogEntry, type StreamLog } from '../../src/core/stream-log.js';
import { entry, groupText } from '../core/support/log-contract.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rg-file-log-rec-'));
  dirs.push(dir);
  return dir;
}

interface Heard {
  torn: { file: string; offset: number; bytes: number }[];
  corrupt: { file: string; offset: number; reason: string }[];
  failed: { file: string; message: string }[];
  deleted: { file: string; why: string }[];
}

function open(dir: string, options: Partial<FileLogOptions> = {}): Promise<FileStreamLog & { heard: Heard }> {
  const heard: Heard = { torn: [], corrupt: [], failed: [], deleted: [] };
  const events: Partial<FileLogEvents> = {
    tornTailCut: (file, offset, bytes) => heard.torn.push({ file, offset, bytes }),
    corrupt: (file, offset, reason) => heard.corrupt.push({ file, offset, reason }),
    appendFailed: (file, err) => heard.failed.push({ file, message: err.message }),
    segmentDeleted: (file, why) => heard.deleted.push({ file, why }),
  };
  return FileStreamLog.open('s', dir, {
    retentionRows: 1_000_000,
    retentionBytes: 512 * 1024 * 1024,
    retentionAgeMs: null,
    fsync: { kind: 'interval', ms: 100 },
    ...options,
    events,
  }).then((log) => Object.assign(log, { heard }));
}

async function readAfter(log: StreamLog, token: number): Promise<string> {
  const cursor = await log.cursorAfter(token);
  assert.ok(cursor !== null, `cursorAfter(${token}) is null (oldest ${log.oldest})`);
  let text = '';
  let lines = 0;
  for (;;) {
    const r = await log.read(cursor, 300);
    assert.ok(r !== null, 'evicted under the cursor');
    if (r.chunks.length === 0) break;
    text += Buffer.concat(r.chunks).toString();
    lines += r.lines;
  }
  assert.equal(lines, text.split('\n').length - 1, 'reads count the lines they send');
  return text;
}

const rows = (from: number, to: number): string => {
  let s = '';
  for (let t = from; t <= to; t++) s += groupText('s', { token: t, rows: 1 });
  return s;
};

async function appendAll(log: StreamLog, entries: LogEntry[]): Promise<void> {
  for (const e of entries) await log.append(e);
}

function onlySegment(dir: string): string {
  const segs = readdirSync(dir).filter((n) => n.endsWith('.seg'));
  assert.equal(segs.length, 1, `one segment in ${dir}: ${segs.join(', ')}`);
  return path.join(dir, segs[0]!);
}

describe('file log: reopening', () => {
  test('a reopened log has the same head, oldest and rows (batches whole), and appends go on after them', async () => {
    const dir = tempDir();
    const first = await open(dir);
    await appendAll(first, [
      entry([{ token: 5, rows: 1 }]),
      entry([{ token: 6, rows: 3 }, { token: 8, rows: 1 }]),
      advanceEntry(12),
      entry([{ token: 13, rows: 2 }]),
    ]);
    const before = await readAfter(first, 4);
    await first.close();

    const again = await open(dir);
    assert.deepEqual([again.head, again.lastAppended, again.oldest, again.retainedRows], [13, 13, 4, 7]);
    assert.equal(await readAfter(again, 4), before, 'the same bytes; the advance to 12 is not served');
    assert.equal(before, groupText('s', { token: 5, rows: 1 }) + groupText('s', { token: 6, rows: 3 }) + groupText('s', { token: 8, rows: 1 }) + groupText('s', { token: 13, rows: 2 }));
    assert.equal(await readAfter(again, 6), groupText('s', { token: 8, rows: 1 }) + groupText('s', { token: 13, rows: 2 }), 'a start inside a span read back from disk');
    assert.equal(await readAfter(again, 8), groupText('s', { token: 13, rows: 2 }), 'past two groups of the span');
    assert.equal(await again.cursorAfter(3), null, 'before the first row is still unknown');
    await again.append(entry([{ token: 14, rows: 1 }]));
    assert.equal(await readAfter(again, 13), groupText('s', { token: 14, rows: 1 }));
    assert.deepEqual(again.heard, { torn: [], corrupt: [], failed: [], deleted: [] });
    await again.close();
    assert.equal((await open(dir)).head, 14);
  });

  test('a start token is kept by the first segment, and an advance at the end is the head after a restart', async () => {
    const dir = tempDir();
    const log = await open(dir, { startToken: 0 });
    await appendAll(log, [entry([{ token: 3, rows: 1 }]), advanceEntry(9)]);
    await log.close();
    const again = await open(dir);
    assert.deepEqual([again.head, again.oldest], [9, 0]);
    assert.equal(await readAfter(again, 0), groupText('s', { token: 3, rows: 1 }));
    await again.close();
  });

  test('restartAt survives a restart: the history before its token stays unknown', async () => {
    const dir = tempDir();
    const log = await open(dir);
    await appendAll(log, [entry([{ token: 1, rows: 1 }]), entry([{ token: 2, rows: 1 }])]);
    log.restartAt(500);
    await log.close();
    const again = await open(dir);
    assert.deepEqual([again.head, again.oldest], [500, 500]);
    assert.equal(await again.cursorAfter(2), null);
    await again.close();
  });
});

describe('file log: a torn tail is cut on open', () => {
  for (const [what, tail] of [
    ['a last line without its LF', 'RDATA s 99 ["row 99.0",{"k":'],
    ['batch rows without their numbered row', groupText('s', { token: 99, rows: 3 }).split('\n').slice(0, 2).join('\n') + '\n'],
    ['zeros where the write never landed', '\0'.repeat(300)],
    ['a batch cut inside its second line', 'RDATA s batch ["row 99.0"]\nRDATA s bat'],
  ] as const) {
    test(`${what}: cut, reported, and appends resume after the last complete row`, async () => {
      const dir = tempDir();
      const log = await open(dir);
      await appendAll(log, [entry([{ token: 1, rows: 1 }]), entry([{ token: 2, rows: 2 }])]);
      await log.close();
      const file = onlySegment(dir);
      const good = statSync(file).size;
      appendFileSync(file, tail);

      const again = await open(dir);
      assert.deepEqual(again.heard.torn, [{ file, offset: good, bytes: Buffer.byteLength(tail) }]);
      assert.equal(statSync(file).size, good, 'the file is cut back to its last complete row');
      assert.deepEqual([again.head, again.retainedRows], [2, 3]);
      await again.append(entry([{ token: 3, rows: 1 }]));
      await again.close();
      const third = await open(dir);
      assert.equal(await readAfter(third, 0), rows(1, 1) + groupText('s', { token: 2, rows: 2 }) + rows(3, 3));
      assert.deepEqual(third.heard.torn, []);
      await third.close();
    });
  }
});

describe('file log: corrupt data in a segment', () => {
  test('is reported with its file and offset; catch-up serves up to it, then fails naming it, never serving past it', async () => {
    const dir = tempDir();
    const good = rows(1, 3);
    const garbage = 'RDATA s 4 ["row 4.0"]\nRDATxx s 5 garbage\n';
    const after = rows(6, 8);
    const file = path.join(dir, segmentName(0));
    writeFileSync(file, good + garbage + after);
    writeFileSync(path.join(dir, segmentName(8)), rows(9, 10));
    const offset = Buffer.byteLength(good) + Buffer.byteLength('RDATA s 4 ["row 4.0"]\n');

    const log = await open(dir);
    assert.equal(log.heard.corrupt.length, 1);
    assert.equal(log.heard.corrupt[0]!.file, file);
    assert.equal(log.heard.corrupt[0]!.offset, offset);
    assert.match(log.heard.corrupt[0]!.reason, /not this stream's RDATA/);
    assert.equal(log.head, 10, 'the later segment is intact');

    const cursor = (await log.cursorAfter(0))!;
    let served = '';
    let failure: Error | null = null;
    for (let i = 0; i < 20 && failure === null; i++) {
      try {
        const r = await log.read(cursor, 64);
        assert.ok(r !== null);
        if (r.chunks.length === 0) break;
        served += Buffer.concat(r.chunks).toString();
      } catch (err) {
        failure = err as Error;
      }
    }
    assert.equal(served, rows(1, 3) + 'RDATA s 4 ["row 4.0"]\n', 'the rows before the bad line, none after it');
    assert.ok(failure !== null, 'the read past the bad line fails');
    assert.ok(failure.message.includes(file) && failure.message.includes(`offset ${offset}`), failure.message);
    for (const t of [4, 5, 7]) {
      await assert.rejects(async () => log.read((await log.cursorAfter(t))!, 1 << 20), /corrupt data/, `after ${t}`);
    }
    assert.equal(await readAfter(log, 8), rows(9, 10), 'the next segment, past the corrupt stretch, is served');
    await log.close();
  });

  test('in the last segment: the good rows before it stay, appends go to a new segment, never after the bad bytes', async () => {
    const dir = tempDir();
    const file = path.join(dir, segmentName(0));
    const bad = 'POSITION s notatoken\n';
    writeFileSync(file, rows(1, 2) + bad + rows(3, 3));
    const log = await open(dir);
    assert.equal(log.heard.corrupt.length, 1);
    assert.equal(log.heard.corrupt[0]!.offset, Buffer.byteLength(rows(1, 2)));
    assert.equal(log.head, 2);
    await log.append(entry([{ token: 3, rows: 1 }]));
    assert.equal(readFileSync(file, 'utf8'), rows(1, 2) + bad + rows(3, 3), 'the corrupt segment is never written');
    assert.equal(log.segmentFiles.length, 2);
    await assert.rejects(async () => {
      const c = (await log.cursorAfter(0))!;
      for (let i = 0; i < 5; i++) await log.read(c, 1 << 20);
    }, /corrupt data/);
    assert.equal(await readAfter(log, 2), rows(3, 3));
    await log.close();
  });

  test('tokens that do not rise are corrupt, not served', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, segmentName(0)), rows(1, 3) + rows(2, 2) + rows(4, 5));
    const log = await open(dir);
    assert.match(log.heard.corrupt[0]?.reason ?? '', /token 2 does not rise above 3/);
    await log.close();
  });

  test("a log that keeps descending rows (a followed Synapse pair's) reads a row below the row just before it back at that row's token; after a POSITION it is corrupt", async () => {
    const text = (lines: string[]): string => lines.map((l) => `${l}\n`).join('');
    const dir = tempDir();
    const lines = ['RDATA s w 7 ["a"]', 'RDATA s w 6 ["b"]', 'RDATA s w batch ["c"]', 'RDATA s w 5 ["d"]', 'RDATA s w 8 ["e"]', 'POSITION s w 8 9', 'RDATA s w 10 ["f"]'];
    writeFileSync(path.join(dir, segmentName(0)), text(lines));
    const log = await open(dir, { descendingRows: true });
    assert.deepEqual(log.heard.corrupt, []);
    assert.equal(log.head, 10);
    assert.equal(await readAfter(log, 0), text(lines.filter((l) => !l.startsWith('POSITION'))));
    // The descending rows count at 7's token: a catch-up from 7 starts after them.
    assert.equal(await readAfter(log, 7), text(['RDATA s w 8 ["e"]', 'RDATA s w 10 ["f"]']));
    await log.close();
    const declared = await open(dir);
    assert.match(declared.heard.corrupt[0]?.reason ?? '', /token 6 does not rise above 7/, 'a declared stream refuses them');
    await declared.close();

    const afterPosition = tempDir();
    writeFileSync(path.join(afterPosition, segmentName(0)), text(['RDATA s w 7 ["a"]', 'POSITION s w 7 9', 'RDATA s w 4 ["b"]', 'RDATA s w 10 ["c"]']));
    const refused = await open(afterPosition, { descendingRows: true });
    assert.match(refused.heard.corrupt[0]?.reason ?? '', /token 4 does not rise above 9/);
    await refused.close();
  });
});

describe('file log: retention across restarts', () => {
  test('by rows: whole segments are deleted, and the oldest token is the same before and after a restart', async () => {
    const dir = tempDir();
    const options = { retentionRows: 50, segmentBytes: 1024 };
    const log = await open(dir, options);
    for (let t = 1; t <= 300; t++) await log.append(entry([{ token: t, rows: 1 }]));
    assert.equal(log.retainedRows, 50);
    assert.equal(log.oldest, 250);
    const files = readdirSync(dir).filter((n) => n.endsWith('.seg'));
    assert.ok(files.length <= 4, `old segments are deleted (${files.length} left)`);
    assert.ok(log.heard.deleted.length >= 5 && log.heard.deleted.every((d) => d.why === 'rows'), `${log.heard.deleted.length} deleted`);
    const firstKept = Number(files.sort()[0]!.slice(0, -4));
    assert.ok(firstKept <= 250, 'the segment holding the oldest retained rows is kept');
    await log.close();

    const again = await open(dir, options);
    assert.equal(again.head, 300);
    assert.ok(again.oldest <= 250 && again.oldest >= firstKept, `oldest ${again.oldest}: what the kept segments hold`);
    assert.ok(again.retainedRows >= 50 && again.retainedRows <= 50 + 30, `retained ${again.retainedRows}`);
    assert.equal(await again.cursorAfter(again.oldest - 1), null);
    assert.equal(await readAfter(again, again.oldest), rows(again.oldest + 1, 300));
    await again.close();
  });

  test('by bytes: the same, counted in bytes of lines', async () => {
    const dir = tempDir();
    const one = entry([{ token: 1, rows: 1 }]).bytes.length;
    const options = { retentionBytes: one * 40, segmentBytes: one * 10 };
    const log = await open(dir, options);
    for (let t = 1; t <= 200; t++) await log.append(entry([{ token: t, rows: 1 }]));
    assert.ok(log.retainedBytes <= one * 40);
    const oldest = log.oldest;
    await log.close();
    const again = await open(dir, options);
    assert.ok(again.oldest <= oldest && again.retainedBytes <= one * 40 + one * 11, `${again.oldest} / ${again.retainedBytes}`);
    assert.equal(await readAfter(again, again.oldest), rows(again.oldest + 1, 200));
    assert.ok(readdirSync(dir).filter((n) => n.endsWith('.seg')).length <= 6);
    await again.close();
  });

  test('by age: segments last written before the limit go on open, never the newest rows; oldest follows', async () => {
    const dir = tempDir();
    const log = await open(dir, { segmentBytes: 200 });
    for (let t = 1; t <= 40; t++) await log.append(entry([{ token: t, rows: 1 }]));
    await log.close();
    const segs = readdirSync(dir).filter((n) => n.endsWith('.seg')).sort();
    assert.ok(segs.length >= 4);
    const old = new Date(Date.now() - 3 * 86_400_000);
    for (const name of segs.slice(0, 2)) utimesSync(path.join(dir, name), old, old);
    const again = await open(dir, { segmentBytes: 200, retentionAgeMs: 86_400_000 });
    assert.deepEqual(
      again.heard.deleted.map((d) => [path.basename(d.file), d.why]),
      segs.slice(0, 2).map((n) => [n, 'age']),
    );
    const oldest = Number(segs[2]!.slice(0, -4));
    assert.equal(again.oldest, oldest);
    assert.equal(await readAfter(again, oldest), rows(oldest + 1, 40));
    await again.close();
    for (const name of readdirSync(dir).filter((n) => n.endsWith('.seg'))) utimesSync(path.join(dir, name), old, old);
    const third = await open(dir, { segmentBytes: 200, retentionAgeMs: 86_400_000 });
    assert.equal(third.head, 40);
    assert.ok(third.retainedRows > 0, 'every segment is old, but the newest rows stay');
    assert.equal(existsSync(third.segmentFiles[third.segmentFiles.length - 1]!), true);
    await third.close();
  });
});
