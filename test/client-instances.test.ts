// ReplicationClient following streams per writer instance (today's Synapse
// dialect) over loopback TCP, against the scripted gateway of
// test/support/today-peer.ts, cut anywhere by test/support/cuttable-proxy.ts.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { ReplicationClient, type RowBatch } from '../src/index.js';
import { startCuttableProxy } from './support/cuttable-proxy.js';
import { TodayPeer } from './support/today-peer.js';

const FAST = {
  pingIntervalMs: 100,
  pingTimeoutMs: 2000,
  backoff: { initialMs: 5, maxMs: 20, healthyAfterMs: 0, refusedMs: 2000 },
};

interface Delivery {
  stream: string;
  instance: string | null;
  token: number;
  rows: unknown[];
  lines: string[];
}

function collect(client: ReplicationClient): { deliveries: Delivery[]; positions: [string, string | null, number][] } {
  const deliveries: Delivery[] = [];
  const positions: [string, string | null, number][] = [];
  client.on('rows', (_s, _t, _r, batch: RowBatch) =>
    deliveries.push({
      stream: batch.stream,
      instance: batch.instance,
      token: batch.token,
      rows: batch.values(),
      lines: batch.rows.map((_, i) => batch.line(i).toString()),
    }),
  );
  client.on('position', (stream, token, instance) => positions.push([stream, instance, token]));
  return { deliveries, positions };
}

async function peer(t: TestContext, options: { lineByLine?: boolean } = {}): Promise<TodayPeer> {
  const p = await TodayPeer.start(options);
  t.after(() => p.close());
  return p;
}

function client(t: TestContext, options: ConstructorParameters<typeof ReplicationClient>[0]): ReplicationClient {
  const c = new ReplicationClient({ serverName: 'gw.test', ...FAST, ...options });
  t.after(() => c.close());
  return c;
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const replicates = (p: TodayPeer): string[][] => p.received.map((lines) => lines.filter((l) => l.startsWith('REPLICATE')));

test('one writer instance: catch-up after the token, batches as one delivery, live rows, positions per pair', { timeout: 10_000 }, async (t) => {
  const p = await peer(t);
  p.append('events', 'event_persister1', 1031, ['["$a"]']);
  p.append('events', 'event_persister2', 1032, ['["$other"]']);
  p.append('events', 'event_persister1', 1033, ['["$b"]']);
  p.append('events', 'event_persister1', 1036, ['["$c1"]', '["$c2"]', '["$c3"]']);
  const c = client(t, { port: p.port, instances: [{ stream: 'events', instance: 'event_persister1', from: 1031 }] });
  const { deliveries, positions } = collect(c);
  c.start();
  await until(() => positions.length === 1, 5000, 'the end of the catch-up');
  p.append('events', 'event_persister1', 1040, ['["$live"]']);
  p.advance('events', 'event_persister1', 1043);
  await until(() => positions.length === 2, 5000, 'the advance');

  assert.deepEqual(replicates(p), [['REPLICATE events event_persister1 1031']]);
  assert.deepEqual(
    deliveries.map((d) => [d.instance, d.token, d.rows]),
    [
      ['event_persister1', 1033, [['$b']]],
      ['event_persister1', 1036, [['$c1'], ['$c2'], ['$c3']]],
      ['event_persister1', 1040, [['$live']]],
    ],
  );
  // The received lines are the gateway's bytes, instance word included.
  assert.deepEqual(deliveries[1]!.lines, [
    'RDATA events event_persister1 batch ["$c1"]',
    'RDATA events event_persister1 batch ["$c2"]',
    'RDATA events event_persister1 1036 ["$c3"]',
  ]);
  assert.deepEqual(positions, [
    ['events', 'event_persister1', 1036],
    ['events', 'event_persister1', 1043],
  ]);
  assert.deepEqual(c.instancePositions(), { events: { event_persister1: 1043 } });
  assert.deepEqual(c.positions(), {}, 'no v1 stream is followed');
});

test('a named pair re-asks from its own position on reconnect: nothing lost or doubled', { timeout: 10_000 }, async (t) => {
  const p = await peer(t);
  p.append('events', 'event_persister1', 1, ['["r1"]']);
  p.append('events', 'event_persister2', 2, ['["s2"]']);
  const c = client(t, {
    port: p.port,
    instances: [
      { stream: 'events', instance: 'event_persister1', from: 0 },
      { stream: 'events', instance: 'event_persister2', from: 0 },
    ],
  });
  const { deliveries, positions } = collect(c);
  c.start();
  await until(() => positions.length === 2, 5000, 'both catch-ups');
  p.cut();
  p.append('events', 'event_persister1', 3, ['["r3"]']);
  p.append('events', 'event_persister2', 4, ['["s4"]', '["s4b"]']);
  await until(() => deliveries.length === 4, 5000, 'the rows written during the cut');

  assert.deepEqual(replicates(p), [
    ['REPLICATE events event_persister1 0', 'REPLICATE events event_persister2 0'],
    ['REPLICATE events event_persister1 1', 'REPLICATE events event_persister2 2'],
  ]);
  assert.deepEqual(
    deliveries.map((d) => [d.instance, d.token, d.rows.length]),
    [
      ['event_persister1', 1, 1],
      ['event_persister2', 2, 1],
      ['event_persister1', 3, 1],
      ['event_persister2', 4, 2],
    ],
  );
});

test("descending rows (backfill's batch 7, then 6) are delivered after the row they follow, in catch-up and live, once across a cut; the position stays at the highest", { timeout: 20_000 }, async (t) => {
  const p = await peer(t, { lineByLine: true });
  p.append('backfill', 'ep2', 1, ['["r1"]']);
  p.append('backfill', 'ep2', 7, ['["r7"]']);
  p.descend('backfill', 'ep2', 6, ['["r6a"]', '["r6b"]']);
  p.descend('backfill', 'ep2', 5, ['["r5"]']);
  const named = client(t, { port: p.port, instances: [{ stream: 'backfill', instance: 'ep2', from: 0 }] });
  const every = client(t, { port: p.port, instances: [{ stream: 'backfill', instance: '*', from: 0 }] });
  const got = [collect(named), collect(every)];
  named.start();
  every.start();
  await until(() => got.every((g) => g.positions.length === 1), 5000, 'both catch-ups');
  p.append('backfill', 'ep2', 9, ['["r9"]']);
  p.descend('backfill', 'ep2', 8, ['["r8"]']);
  await until(() => got.every((g) => g.deliveries.length === 6), 5000, 'the live rows');
  // Both re-ask: the '*' client as `* 0` and the pair from 9, whose replaced catch-up resends 1 to 8 first.
  p.cut();
  await until(() => p.connections === 4, 5000, 'the reconnects');
  p.append('backfill', 'ep2', 10, ['["r10"]']);
  await until(() => got.every((g) => g.deliveries.length === 7), 5000, 'the row after the cut');
  await new Promise((resolve) => setTimeout(resolve, 100)); // anything doubled would come now
  for (const [i, g] of got.entries()) {
    assert.deepEqual(
      g.deliveries.map((d) => [d.token, d.rows]),
      [[1, [['r1']]], [7, [['r7']]], [6, [['r6a'], ['r6b']]], [5, [['r5']]], [9, [['r9']]], [8, [['r8']]], [10, [['r10']]]],
      i === 0 ? 'named pair' : "'*'",
    );
  }
  const byLength = (asked: string[][]): string[][] => asked.sort((a, b) => a.length - b.length);
  assert.deepEqual(byLength(replicates(p).slice(2)), [['REPLICATE backfill ep2 9'], ['REPLICATE backfill * 0', 'REPLICATE backfill ep2 9']]);
  for (const c of [named, every]) assert.deepEqual(c.instancePositions(), { backfill: { ep2: 10 } });
});

for (const lineByLine of [false, true]) {
  test(`'*': every writer, one that appears later from its start, and each pair exactly once in order across cuts anywhere${lineByLine ? ' (the gateway reads the re-asks one by one)' : ''}`, { timeout: 60_000 }, async (t) => {
    const p = await peer(t, { lineByLine });
    const proxy = await startCuttableProxy(p.port);
    t.after(() => proxy.close());
    const c = client(t, { port: proxy.port, instances: [{ stream: 'events', instance: '*', from: 0 }] });
    const { deliveries } = collect(c);
    let connects = 0;
    c.on('connected', () => void connects++);
    c.start();
    await until(() => p.connections === 1 && replicates(p)[0]!.length === 1, 5000, 'the REPLICATE');

    // Two writers sharing one sequence, batches among them; a third writer appears half way.
    const expected = new Map<string, [number, string[]][]>();
    let token = 0;
    const write = (instance: string, rows: string[]): void => {
      token++;
      p.append('events', instance, token, rows);
      const list = expected.get(instance) ?? [];
      list.push([token, rows]);
      expected.set(instance, list);
    };
    for (let round = 0, armed = -1; round < 40; round++) {
      if (armed === -1) {
        // Connected again: the next cut lands after a varying number of bytes (between lines, inside one, inside a batch).
        const cuts = proxy.cuts;
        await until(() => connects === cuts + 1 && (replicates(p)[cuts]?.length ?? 0) >= 1, 5000, 'the reconnect');
        proxy.cutAfter(17 + ((round * 53) % 190));
        armed = cuts;
      }
      write('event_persister1', [`["a${round}"]`]);
      write('event_persister2', round % 4 === 0 ? [`["b${round}x"]`, `["b${round}y"]`] : [`["b${round}"]`]);
      if (round >= 20) write('event_persister3', [`["c${round}"]`]);
      await new Promise((r) => setTimeout(r, 2));
      if (proxy.cuts > armed) armed = -1;
    }
    const total = [...expected.values()].reduce((n, list) => n + list.length, 0);
    await until(() => deliveries.length >= total, 20_000, `all ${total} groups`);
    await new Promise((r) => setTimeout(r, 50)); // anything doubled would come now

    assert.ok(proxy.cuts >= 8, `cut ${proxy.cuts} times`);
    for (const [instance, list] of expected) {
      const got = deliveries.filter((d) => d.instance === instance).map((d) => [d.token, d.lines.map((l) => l.slice(l.lastIndexOf(' ') + 1))]);
      assert.deepEqual(got, list, `${instance}: every group once, in order, whole`);
    }
    assert.equal(deliveries.length, total);
    // Every reconnect asked `*` from the start (for writers it does not know), then each pair it knew from its position.
    const asked = replicates(p);
    assert.deepEqual(asked[0], ['REPLICATE events * 0']);
    for (const lines of asked.slice(1)) {
      assert.equal(lines[0], 'REPLICATE events * 0');
      for (const l of lines.slice(1)) assert.match(l, /^REPLICATE events event_persister[123] [1-9]\d*$/);
    }
    assert.ok(asked.slice(1).some((lines) => lines.length === 4), 'a reconnect that knew all three writers re-asked each');
  });
}

test('a POSITION below the pair\'s position is its writer\'s reset: rewound, then the new generation', { timeout: 10_000 }, async (t) => {
  const p = await peer(t);
  p.append('typing', 'typing_writer1', 40, ['["!r:hs",["@a:hs"]]']);
  const c = client(t, { port: p.port, instances: [{ stream: 'typing', instance: '*', from: 0 }] });
  const { deliveries, positions } = collect(c);
  const rewound: [string, number, number, string | null][] = [];
  c.on('rewound', (stream, before, token, instance) => rewound.push([stream, before, token, instance]));
  c.start();
  await until(() => positions.length === 1, 5000, 'the catch-up');
  p.reset('typing', 'typing_writer1', 1);
  p.append('typing', 'typing_writer1', 2, ['["!r:hs",[]]']);
  await until(() => deliveries.length === 2, 5000, 'the new generation');
  assert.deepEqual(rewound, [['typing', 40, 1, 'typing_writer1']]);
  assert.deepEqual(deliveries.map((d) => [d.token, d.rows]), [
    [40, [['!r:hs', ['@a:hs']]]],
    [2, [['!r:hs', []]]],
  ]);
  // A reconnect asks from the new generation's position.
  p.cut();
  await until(() => p.connections === 2 && replicates(p)[1]!.length === 2, 5000, 'the reconnect');
  assert.deepEqual(replicates(p)[1], ['REPLICATE typing * 0', 'REPLICATE typing typing_writer1 2']);
});

test("'*' from NOW joins every pair at its head and keeps each pair's position", { timeout: 10_000 }, async (t) => {
  const p = await peer(t);
  p.append('caches', 'master', 7, ['["old"]']);
  p.append('caches', 'synchrotron1', 9, ['["old2"]']);
  const c = client(t, { port: p.port });
  c.followInstance('caches', '*');
  const { deliveries, positions } = collect(c);
  c.start();
  await until(() => positions.length === 2, 5000, 'both heads');
  p.append('caches', 'synchrotron1', 11, ['["new"]']);
  await until(() => deliveries.length === 1, 5000, 'the live row');
  assert.deepEqual(replicates(p), [['REPLICATE caches * NOW']]);
  assert.deepEqual(deliveries.map((d) => [d.instance, d.token]), [['synchrotron1', 11]]);
  assert.deepEqual(c.instancePositions(), { caches: { master: 7, synchrotron1: 11 } });
});

test('following one stream both ways, or a name with a space, is a TypeError that says what to do', () => {
  const c = new ReplicationClient({ port: 9, streams: ['events'] });
  assert.throws(() => c.followInstance('events', 'event_persister1'), /followed both as a v1 stream and per writer instance/);
  c.followInstance('caches', '*');
  assert.throws(() => c.followInstance('caches', 'master'), /either as '\*' \(every writer\) or by instance names/);
  assert.throws(() => c.follow('caches'), /choose one \(follow or followInstance\)/);
  assert.throws(() => c.followInstance('events stream', 'a'), /bad stream name "events stream"/);
  assert.throws(() => c.stream('caches', 3), /give its token to followInstance/);
  void c.close();
});
