import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { DisconnectReason, SlowConsumerDetails } from '../../src/core/hub-types.js';
import { hubOf } from '../../src/server.js';
import { eventually, greeted, startServer, type Fixture } from './support/raw-peer.js';
import { TokenCounter } from './support/token-counter.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Heap and Buffer memory of this process (server and test peers), after a full collection. */
function memory(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const MiB = 1024 * 1024;
const PAD = 'x'.repeat(220);
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

async function readers(f: Fixture, n: number): Promise<TokenCounter[]> {
  const out: TokenCounter[] = [];
  for (let i = 0; i < n; i++) {
    const r = await TokenCounter.connect(f.port, 'events', 0);
    r.send('REPLICATE events NOW');
    await r.until(() => r.positions.length === 1, 'POSITION', 5_000);
    out.push(r);
  }
  return out;
}

/** Publishes `rows` rows paced by `readers` (never by a paused one), sampling `conn`'s queue each tick; returns the largest it saw. */
async function publishPaced(f: Fixture, rows: number, readers: TokenCounter[], conn: { queuedCommands: number; queuedBytes: number }) {
  let token = 0;
  let queuedCommands = 0;
  let queuedBytes = 0;
  while (token < rows) {
    for (let i = 0; i < 500; i++) token = await f.server.publish('events', [[token + 1, PAD]]);
    queuedCommands = Math.max(queuedCommands, conn.queuedCommands);
    queuedBytes = Math.max(queuedBytes, conn.queuedBytes);
    while (Math.min(...readers.map((r) => r.last)) < token - 1_500) {
      assert.ok(readers.every((r) => !r.closed), `a reader was closed: ${readers.map((r) => r.other).join(' ')}`);
      await tick();
    }
  }
  return { queuedCommands, queuedBytes };
}

test('a subscriber that pauses its socket past the queue limit is not cut: it reads the rest from the log, every row once and in order, with no ERROR, and memory stays bounded', { timeout: 60_000 }, async (t) => {
  const rows = 100_000;
  // No stall cut while paused: the pause lasts as long as the publishing, which a loaded machine can stretch past the default 10 s.
  const f = await startServer({ maxQueueCommands: 2_000, maxQueueBytes: 8 * MiB, retentionRows: rows, pingIntervalMs: 60_000, maxStallMs: 120_000 });
  const [a, b, slow] = await readers(f, 3);
  t.after(async () => {
    for (const r of [a!, b!, slow!]) r.socket.destroy();
    await f.close();
  });
  const cuts: SlowConsumerDetails[] = [];
  f.server.on('slowConsumer', (_c, d) => cuts.push(d));
  const conn = f.server.connections()[2]!;
  slow!.socket.pause();

  const before = memory();
  const queued = await publishPaced(f, rows, [a!, b!], conn);
  await a!.until(() => a!.last === rows, 'every row', 20_000);
  await b!.until(() => b!.last === rows, 'every row', 20_000);
  const after = memory();
  const logBytes = hubOf(f.server).stream('events')!.log.retainedBytes;
  t.diagnostic(`largest queue ${JSON.stringify(queued)}; heap+arrayBuffers grew ${((after - before) / MiB).toFixed(1)} MiB, the log holds ${(logBytes / MiB).toFixed(1)} MiB; slow reader at ${slow!.last}`);
  assert.ok(queued.queuedCommands <= 2_000 && queued.queuedBytes <= 8 * MiB, 'its queue stayed within the limits');
  assert.ok(slow!.last < rows / 2, `the paused reader was behind (at ${slow!.last})`);
  assert.ok(after - before < logBytes + 24 * MiB, `heap grew by ${((after - before) / MiB).toFixed(1)} MiB beyond the log's ${(logBytes / MiB).toFixed(1)} MiB`);

  slow!.socket.resume();
  await slow!.until(() => slow!.last === rows && slow!.positions.length === 2, 'every row, then POSITION at the head', 20_000);
  await f.server.publish('events', [[rows + 1, PAD]]);
  await slow!.until(() => slow!.last === rows + 1, 'a live row after it caught up', 5_000);
  for (const r of [a!, b!, slow!]) {
    assert.deepEqual(r.problems, []);
    assert.deepEqual(r.other, []);
    assert.ok(!r.closed);
  }
  assert.equal(slow!.rows, rows + 1);
  assert.deepEqual(slow!.positions.at(-1), [rows, rows]);
  assert.equal(conn.subscriptions()[0]!.catchingUp, false, 'live again');
  assert.deepEqual(cuts, []);
});

test('a paused subscriber whose rows leave retention while it is behind gets the too-old ERROR once it reads, after the rows it was sent', { timeout: 40_000 }, async (t) => {
  const f = await startServer({ maxQueueCommands: 1_000, retentionRows: 5_000, pingIntervalMs: 60_000 });
  const [a, slow] = await readers(f, 2);
  t.after(async () => {
    for (const r of [a!, slow!]) r.socket.destroy();
    await f.close();
  });
  slow!.socket.pause();
  await publishPaced(f, 50_000, [a!], f.server.connections()[1]!);
  assert.ok(!slow!.closed);
  slow!.socket.resume();
  await slow!.until(() => slow!.closed, 'the close', 20_000);
  assert.deepEqual(slow!.problems, [], 'no gap before the ERROR');
  assert.ok(slow!.last > 0 && slow!.last < 45_000, `got ${slow!.last}`);
  assert.deepEqual(slow!.other, [`ERROR token ${slow!.last} is older than the oldest retained token ${hubOf(f.server).stream('events')!.log.oldest} (stream=events oldest=${hubOf(f.server).stream('events')!.log.oldest} head=50000)`]);
});

test('a stopped reader that fell behind to the log is cut after maxStallMs, its queue within the limit, while the other keeps reading', { timeout: 30_000 }, async (t) => {
  const f = await startServer({ maxQueueCommands: 1_000, maxStallMs: 600, pingIntervalMs: 60_000 });
  const [a, stopped] = await readers(f, 2);
  t.after(async () => {
    for (const r of [a!, stopped!]) r.socket.destroy();
    await f.close();
  });
  const cuts: SlowConsumerDetails[] = [];
  f.server.on('slowConsumer', (_c, d) => cuts.push(d));
  stopped!.socket.pause();
  const pausedAt = Date.now();
  await publishPaced(f, 20_000, [a!], f.server.connections()[1]!);
  await eventually(() => cuts.length === 1, 'the stall cut', 10_000);
  assert.ok(Date.now() - pausedAt >= 600);
  assert.deepEqual(cuts[0], { queuedCommands: cuts[0]!.queuedCommands, queuedBytes: cuts[0]!.queuedBytes, limit: 'stall', stream: 'events' });
  assert.ok(cuts[0]!.queuedCommands <= 1_000);
  await a!.until(() => a!.last === 20_000, 'every row', 10_000);
  assert.deepEqual(a!.problems, []);
  stopped!.socket.resume();
  await stopped!.until(() => stopped!.closed, 'the close', 10_000);
  assert.deepEqual(stopped!.problems, []);
  assert.deepEqual(stopped!.other, ['ERROR Failed to keep up']);
});

test('a subscriber whose socket makes no progress for maxStallMs is cut', { timeout: 20_000 }, async (t) => {
  const f = await startServer({ maxStallMs: 300, pingIntervalMs: 60_000 });
  t.after(() => f.close());
  const cuts: SlowConsumerDetails[] = [];
  f.server.on('slowConsumer', (_c, d) => cuts.push(d));
  const slow = await greeted(f);
  slow.send('REPLICATE events NOW');
  await slow.line('POSITION events 0');
  slow.socket.pause();
  const conn = f.server.connections()[0]!;
  let token = 0;
  // Fill the kernel buffers until rows wait in the server's queue, far below its limits.
  while (conn.queuedCommands === 0 && token < 400_000) {
    for (let i = 0; i < 1_000; i++) token = await f.server.publish('events', [[token + 1, PAD]]);
    await tick();
  }
  assert.ok(conn.queuedCommands > 0 && conn.queuedCommands < 10_000, `queued ${conn.queuedCommands}`);
  await eventually(() => cuts.length === 1, 'the stall cut', 5_000);
  assert.equal(cuts[0]!.limit, 'stall');
  slow.socket.resume();
  await slow.closed(10_000);
  assert.equal(slow.lines.at(-1), 'ERROR Failed to keep up');
});

test('a peer that PINGed once and went silent gets ERROR ping timeout and the close', { timeout: 10_000 }, async (t) => {
  const f = await startServer({ pingIntervalMs: 50, pingTimeoutMs: 250 });
  t.after(() => f.close());
  const reasons: DisconnectReason[] = [];
  f.server.on('disconnect', (_c, reason) => reasons.push(reason));
  const p = await greeted(f);
  p.send('PING 1', 'REPLICATE events NOW');
  const sentAt = Date.now();
  await p.closed();
  assert.ok(Date.now() - sentAt >= 250, 'not before the timeout');
  assert.equal(p.lines.at(-1), 'ERROR ping timeout');
  assert.ok(p.lines.filter((l) => l.startsWith('PING ')).length >= 2, 'PINGed while waiting');
  assert.deepEqual(reasons, ['ping_timeout']);
  await eventually(() => f.server.connections().length === 0, 'the connection to be forgotten');
});

test('a close that cannot complete, to a peer that never reads, is aborted after another timeout', { timeout: 10_000 }, async (t) => {
  const f = await startServer({ pingIntervalMs: 50, pingTimeoutMs: 300 });
  t.after(() => f.close());
  let closedAt = 0;
  f.server.on('disconnect', () => (closedAt = Date.now()));
  const p = await f.peer({ paused: true });
  p.send('PING 1');
  await eventually(() => closedAt > 0, 'the ping timeout');
  // Our FIN is sent, but the peer reads nothing, so it never answers with its own: the socket stays.
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(f.server.connections().length, 1);
  await eventually(() => f.server.connections().length === 0, 'the abort');
  assert.ok(Date.now() - closedAt >= 300, 'aborted only after another timeout period');
  p.socket.resume();
  await p.closed();
  assert.equal(p.lines.at(-1), 'ERROR ping timeout');
});
