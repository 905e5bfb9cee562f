// A live subscriber that falls behind reads on from the log through the
// contract's cursors, whichever log holds the stream: memory, the file log
// (its disk segments once past its memory window) and Redis Streams (reads
// that answer later). Over real sockets: the paused reader gets every row
// once, in order, with no ERROR, then the live head.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FileStreamLog } from '../../src/bindings/file-log.js';
import { RedisLogStore } from '../../src/bindings/redis-store.js';
import type { SlowConsumerDetails } from '../../src/core/hub-types.js';
import { MemoryStreamLog, type StreamLog } from '../../src/core/stream-log.js';
import { redisSkip, startRedis, type RedisServer } from '../support/redis-server.js';
import { startServer } from './support/raw-peer.js';
import { TokenCounter } from './support/token-counter.js';

const PAD = 'x'.repeat(220);
const ROWS = 30_000;
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface LogUnderTest {
  name: string;
  skip: string | false;
  open(): Promise<StreamLog>;
}

let redis: RedisServer | null = null;
const logs: LogUnderTest[] = [
  { name: 'memory', skip: false, open: async () => new MemoryStreamLog() },
  {
    name: 'file',
    skip: false,
    async open() {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'rg-fall-behind-'));
      // A small memory window: the reader that fell behind reads the segment files.
      const log = await FileStreamLog.open('events', dir, { retentionRows: 1_000_000, retentionBytes: 1 << 30, retentionAgeMs: null, fsync: { kind: 'never' }, memoryBytes: 256 * 1024 });
      cleanups.push(async () => {
        await log.close();
        await rm(dir, { recursive: true, force: true });
      });
      return log;
    },
  },
  {
    name: 'redis',
    skip: redisSkip(),
    async open() {
      redis ??= await startRedis();
      const server = redis;
      const store = await RedisLogStore.open(
        { kind: 'redis', address: { host: '127.0.0.1', port: server.port }, tls: false, username: null, password: null, prefix: 'fall-behind' },
        { blockMs: 500 },
      );
      cleanups.push(async () => {
        await store.close();
        await server.close();
      });
      return store.openLog('events', { startToken: 0 });
    },
  },
];

for (const l of logs) {
  test(`on the ${l.name} log, a subscriber paused past the queue limit reads on from the log: every row once, in order, no ERROR, then live`, { skip: l.skip, timeout: 60_000 }, async (t) => {
    const log = await l.open();
    const f = await startServer({ streams: ['events'], maxQueueCommands: 1_000, pingIntervalMs: 60_000, createLog: () => log });
    const readers: TokenCounter[] = [];
    t.after(async () => {
      for (const r of readers) r.socket.destroy();
      await f.close();
    });
    const cuts: SlowConsumerDetails[] = [];
    f.server.on('slowConsumer', (_c, d) => cuts.push(d));
    for (let i = 0; i < 2; i++) {
      const r = await TokenCounter.connect(f.port, 'events', 0);
      r.send('REPLICATE events NOW');
      await r.until(() => r.positions.length === 1, 'POSITION', 5_000);
      readers.push(r);
    }
    const [fast, slow] = readers as [TokenCounter, TokenCounter];
    slow.socket.pause();
    let token = 0;
    while (token < ROWS) {
      const batch: Promise<number>[] = [];
      for (let i = 0; i < 250; i++) batch.push(Promise.resolve(f.server.publish('events', [[++token, PAD]])));
      await Promise.all(batch);
      while (fast.last < token - 1_000) {
        assert.ok(!fast.closed, `the fast reader was closed: ${fast.other.join(' ')}`);
        await tick();
      }
    }
    await fast.until(() => fast.last === ROWS, 'every row', 20_000);
    assert.ok(f.server.connections().some((c) => c.subscriptions()[0]?.catchingUp), 'the paused reader fell behind to the log');
    slow.socket.resume();
    await slow.until(() => slow.last === ROWS && slow.positions.length === 2, 'every row, then POSITION at the head', 30_000);
    await f.server.publish('events', [[ROWS + 1, PAD]]);
    await slow.until(() => slow.last === ROWS + 1, 'a live row', 5_000);
    assert.deepEqual(slow.problems, []);
    assert.deepEqual(slow.other, []);
    assert.equal(slow.rows, ROWS + 1);
    assert.deepEqual(cuts, []);
  });
}
