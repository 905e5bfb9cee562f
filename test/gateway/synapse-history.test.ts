import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { SynapseFollower } from '../../src/core/synapse-follower.js';
import { SynapseHistory, filePairLogs, memoryPairLogs, type PairLogSource } from '../../src/gateway/synapse-history.js';
import type { StreamLog } from '../../src/core/stream-log.js';

const quiet = pino({ level: 'silent' });
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function fileSource(dir: string, more: { segmentBytes?: number; corrupt?: string[] } = {}): PairLogSource {
  const events = { corrupt: (file: string, offset: number, reason: string) => more.corrupt?.push(`${file}@${offset}: ${reason}`) };
  return filePairLogs(dir, { retentionRows: 10_000, retentionBytes: 1 << 24, retentionAgeMs: null, fsync: { kind: 'never' }, segmentBytes: more.segmentBytes, events });
}

async function settle(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 50));
}

/** Every line a catch-up from the log's oldest token reads. */
async function lines(log: StreamLog): Promise<string[]> {
  const cursor = await log.cursorAfter(log.oldest);
  assert.ok(cursor !== null);
  const out: string[] = [];
  for (;;) {
    const read = await log.read(cursor, 1 << 20);
    if (read === null || read.chunks.length === 0) return out;
    out.push(...Buffer.concat(read.chunks).toString().split('\n').slice(0, -1));
  }
}

function send(follower: SynapseFollower, ...payloads: string[]): void {
  for (const p of payloads) follower.line(Buffer.from(`${p}\n`));
}

describe('the Synapse history', () => {
  test('a reset starts the next generation of the pair: a new log, the old history not mixed in', async () => {
    const history = new SynapseHistory(memoryPairLogs({ retentionRows: 1000, retentionBytes: 1 << 20 }), quiet);
    const logs: StreamLog[] = [];
    history.onPairLog((_pair, log) => logs.push(log));
    const follower = new SynapseFollower(history);
    send(follower, 'POSITION typing tw1 0 0', 'RDATA typing tw1 5 ["!a:hs",["@a:hs"]]', 'RDATA typing tw1 6 ["!a:hs",[]]');
    send(follower, 'POSITION typing tw1 0 0', 'RDATA typing tw1 1 ["!b:hs",["@b:hs"]]');
    const pair = history.pair('typing', 'tw1')!;
    assert.equal(pair.generation, 2);
    assert.equal(logs.length, 2, 'the serving side is told of the new log');
    assert.equal(pair.log, logs[1]);
    assert.deepEqual(await lines(logs[1]!), ['RDATA typing tw1 1 ["!b:hs",["@b:hs"]]']);
    assert.deepEqual(await lines(logs[0]!), ['RDATA typing tw1 5 ["!a:hs",["@a:hs"]]', 'RDATA typing tw1 6 ["!a:hs",[]]']);
  });

  test('on the file log, a restart reopens the newest generation of each pair, and a recorded gap stays one', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rg-synapse-history-'));
    dirs.push(dir);
    const first = new SynapseHistory(fileSource(dir), quiet);
    const follower = new SynapseFollower(first);
    send(follower, 'POSITION typing tw1 0 0', 'RDATA typing tw1 6 ["!a:hs",[]]', 'POSITION typing tw1 0 0', 'RDATA typing tw1 1 ["!b:hs",[]]');
    send(follower, 'POSITION to_device tdw 418 418', 'RDATA to_device tdw 419 ["@a:hs"]', 'POSITION to_device tdw 423 423');
    await settle();
    await first.close();
    assert.deepEqual(readdirSync(path.join(dir, 'synapse', 'typing', 'tw1')).sort(), ['1', '2']);

    const second = new SynapseHistory(fileSource(dir), quiet);
    const loaded = await second.load();
    const byKey = new Map(loaded.map((p) => [`${p.stream}/${p.instance}`, p]));
    assert.equal(byKey.get('typing/tw1')!.generation, 2);
    assert.equal(byKey.get('typing/tw1')!.log!.head, 1);
    assert.deepEqual(await lines(byKey.get('typing/tw1')!.log!), ['RDATA typing tw1 1 ["!b:hs",[]]']);
    const toDevice = byKey.get('to_device/tdw')!.log!;
    assert.equal(toDevice.head, 423);
    assert.equal(toDevice.cursorAfter(419), null, 'catch-up across the gap is still refused after the restart');
    await second.close();
  });

  // Backfill publishes a batch descending (02: 7, then 6, then POSITION ... 6 7).
  const DESCENDING = [
    'POSITION backfill ep2 4 4',
    'RDATA backfill ep2 7 ["$e7"]',
    'RDATA backfill ep2 batch ["$e6a"]',
    'RDATA backfill ep2 6 ["$e6b"]',
    'RDATA backfill ep2 5 ["$e5"]',
    'POSITION backfill ep2 6 7',
  ];
  const DESCENDING_LINES = ['RDATA backfill ep2 7 ["$e7"]', 'RDATA backfill ep2 batch ["$e6a"]', 'RDATA backfill ep2 6 ["$e6b"]', 'RDATA backfill ep2 5 ["$e5"]'];

  test('descending rows are stored after the row they follow, in arrival order: a catch-up from before it gets them all, one from its token none', async () => {
    const history = new SynapseHistory(memoryPairLogs({ retentionRows: 1000, retentionBytes: 1 << 20 }), quiet);
    const follower = new SynapseFollower(history);
    send(follower, ...DESCENDING, 'RDATA backfill ep2 8 ["$e8"]');
    const log = history.pair('backfill', 'ep2')!.log!;
    assert.deepEqual(await lines(log), [...DESCENDING_LINES, 'RDATA backfill ep2 8 ["$e8"]']);
    assert.equal(log.head, 8);
    // A subscriber at 7 was sent 7 and what descended from it (the log has no later token for them).
    const read = await log.read((await log.cursorAfter(7))!, 1 << 20);
    assert.deepEqual(Buffer.concat(read!.chunks).toString(), 'RDATA backfill ep2 8 ["$e8"]\n');
    assert.deepEqual({ rows: history.stats().rows, descending: history.stats().descendingRows, late: history.stats().lateRows }, { rows: 5, descending: 3, late: 0 });
  });

  test('on the file log, descending rows are read back on a restart, and the log goes on after them in a new segment', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rg-synapse-descending-'));
    dirs.push(dir);
    const corrupt: string[] = [];
    // Segments of a few bytes: each write would begin a new one.
    const first = new SynapseHistory(fileSource(dir, { segmentBytes: 16, corrupt }), quiet);
    const follower = new SynapseFollower(first);
    for (const p of DESCENDING) {
      send(follower, p);
      await settle();
    }
    await first.close();
    // Every rising write begins a segment; a descending row stays in the segment of the row it follows.
    assert.deepEqual(readdirSync(path.join(dir, 'synapse', 'backfill', 'ep2', '1')).sort(), ['00000000000000000004.seg']);

    const second = new SynapseHistory(fileSource(dir, { segmentBytes: 16, corrupt }), quiet);
    const [pair] = await second.load();
    assert.deepEqual(corrupt, [], 'descending rows are not corrupt data in a pair log');
    assert.equal(pair!.log!.head, 7);
    assert.deepEqual(await lines(pair!.log!), DESCENDING_LINES);
    const again = new SynapseFollower(second);
    again.known('backfill', 'ep2', pair!.log!.head);
    send(again, 'POSITION backfill ep2 7 7', 'RDATA backfill ep2 9 ["$e9"]', 'RDATA backfill ep2 8 ["$e8"]');
    await settle();
    await second.close();
    assert.deepEqual(readdirSync(path.join(dir, 'synapse', 'backfill', 'ep2', '1')).sort(), ['00000000000000000004.seg', '00000000000000000007.seg']);

    const third = new SynapseHistory(fileSource(dir, { corrupt }), quiet);
    const [reopened] = await third.load();
    assert.deepEqual(corrupt, []);
    assert.equal(reopened!.log!.head, 9);
    assert.deepEqual(await lines(reopened!.log!), [...DESCENDING_LINES, 'RDATA backfill ep2 9 ["$e9"]', 'RDATA backfill ep2 8 ["$e8"]']);
    // A catch-up from 6 starts after the 7 group: 7 and its descending rows were all sent to a subscriber at 7.
    const cursor = await reopened!.log!.cursorAfter(7);
    const read = await reopened!.log!.read(cursor!, 1 << 20);
    assert.deepEqual(Buffer.concat(read!.chunks).toString().split('\n').slice(0, -1), ['RDATA backfill ep2 9 ["$e9"]', 'RDATA backfill ep2 8 ["$e8"]']);
    await third.close();
  });

  test('a row that would descend from a group the log did not take (a fill had stored past it) is not stored: it would be a second copy', () => {
    const history = new SynapseHistory(memoryPairLogs({ retentionRows: 1000, retentionBytes: 1 << 20 }), quiet);
    history.started('backfill', 'ep2', 4);
    history.advanced('backfill', 'ep2', 7);
    history.group('backfill', 'ep2', 7, Buffer.from('RDATA backfill ep2 7 ["$e7"]\n'), 1);
    history.descending('backfill', 'ep2', 6, Buffer.from('RDATA backfill ep2 6 ["$e6"]\n'), 1);
    const log = history.pair('backfill', 'ep2')!.log!;
    assert.equal(log.retainedRows, 0);
    assert.equal(history.stats().lateRows, 1);
    assert.equal(history.stats().descendingRows, 0);
  });
});
