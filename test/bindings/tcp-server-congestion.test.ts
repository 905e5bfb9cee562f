import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { DisconnectReason, SlowConsumerDetails } from '../../src/core/hub-types.js';
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

test('a subscriber that stops reading is cut at the queue limit while two others get every row, and the heap stays bounded', { timeout: 40_000 }, async (t) => {
  const f = await startServer({ maxQueueCommands: 2_000, maxQueueBytes: 8 * MiB, retentionRows: 10_000, pingIntervalMs: 60_000 });
  const [a, b] = await readers(f, 2);
  t.after(async () => {
    a!.socket.destroy();
    b!.socket.destroy();
    await f.close();
  });
  const cuts: SlowConsumerDetails[] = [];
  f.server.on('slowConsumer', (_c, d) => cuts.push(d));
  const slow = await greeted(f);
  slow.send('REPLICATE events NOW');
  await slow.line('POSITION events 0');
  slow.socket.pause();

  const before = memory();
  const rows = 200_000;
  let token = 0;
  while (token < rows) {
    for (let i = 0; i < 500; i++) token = await f.server.publish('events', [[token + 1, PAD]]);
    // Pace the writer by the readers that read, never by the one that stopped.
    while (Math.min(a!.last, b!.last) < token - 1_500) {
      assert.ok(!a!.closed && !b!.closed, `a reader was closed: ${a!.other} ${b!.other}`);
      await tick();
    }
  }
  await a!.until(() => a!.last === rows, 'every row', 20_000);
  await b!.until(() => b!.last === rows, 'every row', 20_000);
  const after = memory();
  const published = rows * (PAD.length + 30);
  t.diagnostic(`heap+arrayBuffers grew ${((after - before) / MiB).toFixed(1)} MiB; ${(published / MiB).toFixed(0)} MiB published; cut at ${JSON.stringify(cuts[0])}`);
  assert.ok(after - before < 32 * MiB, `heap grew by ${((after - before) / MiB).toFixed(1)} MiB while ${(published / MiB).toFixed(0)} MiB were published`);

  for (const r of [a!, b!]) {
    assert.deepEqual(r.problems, []);
    assert.equal(r.rows, rows);
    assert.deepEqual(r.other, []);
  }
  assert.equal(cuts.length, 1);
  assert.equal(cuts[0]!.limit, 'commands');
  assert.ok(cuts[0]!.queuedCommands <= 2_000);

  // Once it reads again: the rows the sockets held, in order, then the ERROR, then EOF.
  slow.socket.resume();
  await slow.closed(10_000);
  const lines = slow.content();
  assert.equal(lines.at(-1), 'ERROR Failed to keep up');
  assert.equal(slow.closedBy, 'eof');
  const got = lines.slice(1, -1).map((l) => Number(l.split(' ')[2]));
  assert.ok(got.length > 0 && got.length < rows);
  assert.deepEqual(got, Array.from({ length: got.length }, (_, i) => i + 1));
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
