// ReplicationWriter against the real ReplicationServer over loopback.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { ReplicationServer } from '../src/server.js';
import { ReplicationClient, ReplicationWriter, type ClientTransport, type TransportEvents } from '../src/index.js';
import type { ClientActionCommand } from '../src/core/commands.js';

const FAST = { pingIntervalMs: 100, pingTimeoutMs: 500, backoff: { initialMs: 10, maxMs: 50, healthyAfterMs: 0 } };

function stopLater<T extends { close(): Promise<void> }>(t: TestContext, thing: T): T {
  t.after(() => thing.close());
  return thing;
}

async function startServer(t: TestContext): Promise<{ server: ReplicationServer; port: number }> {
  const server = stopLater(
    t,
    new ReplicationServer({ serverName: 'gw.test', streams: ['events', 'caches'], writerToken: 'w', pingIntervalMs: 100, pingTimeoutMs: 500 }),
  );
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return { server, port };
}

test('publishes after the head with rising tokens, batches sharing one, and flush waits until stored', { timeout: 10_000 }, async (t) => {
  const { server, port } = await startServer(t);
  await server.publish('events', [['old']]);
  const writer = stopLater(t, new ReplicationWriter({ port, auth: 'w', streams: ['events', 'caches'], ...FAST }).start());
  assert.equal(await writer.publish('events', [['a']]), 2);
  assert.equal(await writer.publish('caches', [['x'], ['y']]), 1);
  assert.equal(await writer.publish('events', [['b']]), 3);
  await writer.flush();
  assert.equal(writer.unstoredRows, 0);
  assert.equal(server.head('events'), 3);
  assert.equal(server.head('caches'), 1);
  assert.equal(writer.head('events'), 3);

  const reader = stopLater(t, new ReplicationClient({ port, streams: { events: 0, caches: 0 }, ...FAST }));
  const got: [string, number, unknown[]][] = [];
  reader.on('rows', (s: string, tok: number, rows: readonly { row(): unknown }[]) => got.push([s, tok, rows.map((r) => r.row())]));
  reader.start();
  const deadline = Date.now() + 5000;
  while (got.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(
    got.sort((a, b) => a[0].localeCompare(b[0]) || a[1] - b[1]),
    [
      ['caches', 1, [['x'], ['y']]],
      ['events', 1, [['old']]],
      ['events', 2, [['a']]],
      ['events', 3, [['b']]],
    ],
  );
});

test('with a start token the gateway already holds, re-publishing sends only what is missing', { timeout: 10_000 }, async (t) => {
  const { server, port } = await startServer(t);
  const first = stopLater(t, new ReplicationWriter({ port, auth: 'w', streams: ['events'], startToken: 10, ...FAST }).start());
  for (let i = 0; i < 3; i++) await first.publish('events', [[i]]);
  await first.flush();
  await first.close();
  assert.equal(server.head('events'), 12);

  const again = stopLater(t, new ReplicationWriter({ port, auth: 'w', streams: ['events'], startToken: 10, ...FAST }).start());
  const tokens: number[] = [];
  for (let i = 0; i < 5; i++) tokens.push(await again.publish('events', [[i]]));
  await again.flush();
  assert.deepEqual(tokens, [10, 11, 12, 13, 14]);
  assert.equal(again.alreadyStored, 3);
  assert.equal(server.head('events'), 14);
});

/** Every row the gateway holds on `stream`, as [token, row], read back by a subscriber from 0. */
async function storedRows(t: TestContext, port: number, stream: string, head: number): Promise<[number, unknown][]> {
  const reader = stopLater(t, new ReplicationClient({ port, streams: { [stream]: 0 }, ...FAST }));
  const got: [number, unknown][] = [];
  reader.on('rows', (_s: string, tok: number, rows: readonly { row(): unknown }[]) => got.push(...rows.map((r) => [tok, r.row()] as [number, unknown])));
  reader.start();
  const deadline = Date.now() + 5000;
  while (reader.positions()[stream] !== head && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  await reader.close();
  return got;
}

type Timing = 'before' | 'during' | 'after';

/**
 * Publishes input rows 0..count-1 (row i is [i]) from `startToken`, the input
 * arriving before the first POSITION, half before and half after it, or after it.
 */
async function publishRun(t: TestContext, port: number, count: number, startToken: number, timing: Timing): Promise<ReplicationWriter> {
  const writer = stopLater(t, new ReplicationWriter({ port, auth: 'w', streams: ['events'], startToken, ...FAST }));
  const head = new Promise((resolve) => writer.once('head', resolve));
  const publishFrom = async (from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i++) assert.equal(await writer.publish('events', [[i]]), startToken + i);
  };
  const split = timing === 'before' ? count : timing === 'during' ? count >> 1 : 0;
  const early = publishFrom(0, split); // into the buffer: no POSITION has come yet
  writer.start();
  await early;
  await head;
  await publishFrom(split, count);
  await writer.flush();
  await writer.close();
  return writer;
}

for (const rerun of ['before', 'during', 'after'] as const) {
  test(`a re-run with the same start token stores only what is missing (its input ${rerun} the first POSITION)`, { timeout: 20_000 }, async (t) => {
    const { server, port } = await startServer(t);
    await publishRun(t, port, 500, 1, 'during');
    assert.equal(server.head('events'), 500);
    const again = await publishRun(t, port, 1000, 1, rerun);
    assert.equal(again.alreadyStored, 500);
    assert.equal(server.head('events'), 1000);
    const whole = await publishRun(t, port, 1000, 1, rerun);
    assert.equal(whole.alreadyStored, 1000, 'with everything stored, nothing is written again');
    assert.equal(server.head('events'), 1000);
    assert.deepEqual(await storedRows(t, port, 'events', 1000), Array.from({ length: 1000 }, (_, i) => [1 + i, [i]]), 'each row once, under its token');
  });
}

test('a re-run against a restarted (empty) in-memory gateway stores every row once', { timeout: 20_000 }, async (t) => {
  const before = await startServer(t);
  await publishRun(t, before.port, 300, 1, 'before');
  await before.server.close();
  const { server, port } = await startServer(t);
  const again = await publishRun(t, port, 300, 1, 'during');
  assert.equal(again.alreadyStored, 0);
  assert.equal(server.head('events'), 300);
  assert.deepEqual(await storedRows(t, port, 'events', 300), Array.from({ length: 300 }, (_, i) => [1 + i, [i]]));
});

test('rejects a row that is not JSON without using up a token', { timeout: 10_000 }, async (t) => {
  const { port } = await startServer(t);
  const writer = stopLater(t, new ReplicationWriter({ port, auth: 'w', streams: ['events'], ...FAST }).start());
  await assert.rejects(writer.publish('events', [1n]), { code: 'BAD_ROW' });
  assert.equal(await writer.publish('events', [1]), 1);
  await assert.rejects(writer.publish('nosuch', [1]), TypeError);
});

test('hears the client commands subscribers send, forwarded by the gateway', { timeout: 10_000 }, async (t) => {
  const { port } = await startServer(t);
  const writer = stopLater(t, new ReplicationWriter({ port, auth: 'w', streams: ['events'], ...FAST }).start());
  const heard: string[] = [];
  writer.on('command', (cmd: ClientActionCommand) => heard.push(cmd.name));
  await writer.publish('events', [1]);
  await writer.flush();
  const reader = stopLater(t, new ReplicationClient({ port, streams: ['events'], ...FAST }).start());
  reader.federationAck(7);
  reader.invalidateCache('f', ['k']);
  const deadline = Date.now() + 5000;
  while (heard.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(heard, ['FEDERATION_ACK', 'INVALIDATE_CACHE']);
});

test('waits for room once its buffer of unstored rows is full', { timeout: 10_000 }, async (t) => {
  // A transport that never connects: nothing is ever known stored.
  let events: TransportEvents | null = null;
  const never: ClientTransport = {
    connect: (e) => void (events = e),
    write: () => false,
    close: () => events?.close('closed'),
  };
  const writer = stopLater(
    t,
    new ReplicationWriter({ transport: () => never, auth: 'w', streams: ['events'], startToken: 1, maxUnstoredRows: 3 }).start(),
  );
  const settled: number[] = [];
  for (let i = 0; i < 5; i++) void writer.publish('events', [i]).then((tok) => settled.push(tok), () => {});
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(settled, [1, 2, 3]);
  assert.equal(writer.unstoredRows, 3);
});
