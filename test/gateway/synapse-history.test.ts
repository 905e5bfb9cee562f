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

function fileSource(dir: string): PairLogSource {
  return filePairLogs(dir, { retentionRows: 10_000, retentionBytes: 1 << 24, retentionAgeMs: null, fsync: { kind: 'never' } });
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
});
