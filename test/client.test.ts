// ReplicationClient against the real ReplicationServer over loopback (and a
// raw socket server for the silent-server case). Every test stops what it starts.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { pino } from 'pino';
import { ReplicationServer, hubOf } from '../src/server.js';
import { tcpClientTransport } from '../src/bindings/tcp-client-transport.js';
import { ReplicationClient, ReplicationWriter, type ReplicationClientEvents, type RowBatch } from '../src/index.js';
import type { ClientActionCommand } from '../src/core/commands.js';
import { startCuttableProxy } from './support/cuttable-proxy.js';

const FAST = {
  pingIntervalMs: 100,
  pingTimeoutMs: 500,
  backoff: { initialMs: 10, maxMs: 50, healthyAfterMs: 0, refusedMs: 2000 },
};

async function startServer(
  t: TestContext,
  options: ConstructorParameters<typeof ReplicationServer>[0] = {},
): Promise<{ server: ReplicationServer; port: number }> {
  const server = new ReplicationServer({
    serverName: 'gw.test',
    streams: ['events', 'caches'],
    writerToken: 'w',
    pingIntervalMs: FAST.pingIntervalMs,
    pingTimeoutMs: FAST.pingTimeoutMs,
    sweepIntervalMs: 20,
    ...options,
  });
  stopLater(t, server);
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return { server, port };
}

interface Delivery {
  stream: string;
  token: number;
  rows: unknown[];
}

function collect(client: ReplicationClient): { deliveries: Delivery[]; positions: [string, number][] } {
  const deliveries: Delivery[] = [];
  const positions: [string, number][] = [];
  client.on('rows', (_s: string, _t: number, _r: unknown, batch: RowBatch) =>
    deliveries.push({ stream: batch.stream, token: batch.token, rows: batch.values() }),
  );
  client.on('position', (stream: string, token: number) => positions.push([stream, token]));
  return { deliveries, positions };
}

/** The arguments of the next `event` (events.once would reject on the 'error' events these tests expect). */
function next<K extends keyof ReplicationClientEvents>(emitter: ReplicationClient, event: K): Promise<ReplicationClientEvents[K]> {
  return new Promise((resolve) => emitter.once(event, ((...args: ReplicationClientEvents[K]) => resolve(args)) as never));
}

/** Stops `thing` when the test ends, passed or failed. */
function stopLater<T extends { close(): Promise<void> }>(t: TestContext, thing: T): T {
  t.after(() => thing.close());
  return thing;
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('catches up from a token, then follows live rows, in token order', { timeout: 10_000 }, async (t) => {
  const { server, port } = await startServer(t);
  for (let i = 1; i <= 5; i++) await server.publish('events', [[`$${i}`]]);
  const client = stopLater(t, new ReplicationClient({ port, serverName: 'gw.test', streams: { events: 2 }, ...FAST }));
  const { deliveries, positions } = collect(client);
  client.start();
  await until(() => positions.length === 1, 5000, 'POSITION');
  for (let i = 6; i <= 8; i++) await server.publish('events', [[`$${i}`]]);
  await until(() => deliveries.length === 6, 5000, 'live rows');
  assert.deepEqual(
    deliveries.map((d) => [d.token, d.rows]),
    [3, 4, 5, 6, 7, 8].map((t) => [t, [[`$${t}`]]]),
  );
  assert.deepEqual(positions, [['events', 5]]);
  assert.deepEqual(client.positions(), { events: 8 });
  await client.close();
  await server.close();
});

test('from NOW: only the POSITION, then live rows', { timeout: 10_000 }, async (t) => {
  const { server, port } = await startServer(t);
  await server.publish('events', [['old']]);
  const client = stopLater(t, new ReplicationClient({ port, streams: ['events'], ...FAST }));
  const { deliveries, positions } = collect(client);
  client.start();
  await until(() => positions.length === 1, 5000, 'POSITION');
  await server.publish('events', [['new']]);
  await until(() => deliveries.length === 1, 5000, 'the live row');
  assert.deepEqual(positions, [['events', 1]]);
  assert.deepEqual(deliveries, [{ stream: 'events', token: 2, rows: [['new']] }]);
  await client.close();
  await server.close();
});

test('delivers the rows of one token as one batch, in catch-up and live', { timeout: 10_000 }, async (t) => {
  const { server, port } = await startServer(t);
  await server.publish('caches', [['a'], ['b'], ['c']]);
  const client = stopLater(t, new ReplicationClient({ port, streams: { caches: 0 }, ...FAST }));
  const { deliveries, positions } = collect(client);
  client.start();
  await until(() => positions.length === 1, 5000, 'POSITION');
  await server.publish('caches', [['d'], ['e']]);
  await until(() => deliveries.length === 2, 5000, 'the live batch');
  assert.deepEqual(deliveries, [
    { stream: 'caches', token: 1, rows: [['a'], ['b'], ['c']] },
    { stream: 'caches', token: 2, rows: [['d'], ['e']] },
  ]);
  await client.close();
  await server.close();
});

for (const [what, options, clientOptions, code] of [
  ['a bad credential', { subscriberToken: 'right' }, { auth: 'wrong' }, 'AUTH_FAILED'],
  ['an unknown stream', {}, { streams: ['evnets'] }, 'UNKNOWN_STREAM'],
  ['a forbidden stream', { credentials: [{ secret: 'r', role: 'subscriber' as const, streams: ['caches'] }] }, { auth: 'r' }, 'NOT_PERMITTED'],
  ['a wrong server name', {}, { serverName: 'other.test' }, 'WRONG_REMOTE'],
] as const) {
  test(`stops on ${what} (${code}) instead of reconnecting to the same answer`, { timeout: 10_000 }, async (t) => {
    const { server, port } = await startServer(t, options);
    let connections = 0;
    server.on('connection', () => connections++);
    const client = stopLater(t, new ReplicationClient({ port, streams: ['events'], ...FAST, ...clientOptions }));
    const errors: string[] = [];
    client.on('error', (err) => errors.push(err.code));
    client.start();
    const [err] = await next(client, 'stopped');
    assert.equal(err.code, code);
    assert.ok(errors.includes(code), `the error event came first with ${code}: ${errors.join(',')}`);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(connections, 1, 'no second connection');
    await client.close();
    await server.close();
  });
}

test('told to keep trying (onRefused retry), waits the long refusal delay after a wrong server name', { timeout: 10_000 }, async (t) => {
  const { server, port } = await startServer(t);
  let connections = 0;
  server.on('connection', () => connections++);
  const client = stopLater(t, new ReplicationClient({ port, serverName: 'other.test', streams: ['events'], onRefused: 'retry', ...FAST }));
  const errors: string[] = [];
  client.on('error', (err: { code: string }) => errors.push(err.code));
  client.start();
  const [reason, retryInMs] = (await next(client, 'disconnected')) as [string, number];
  assert.deepEqual(errors, ['WRONG_REMOTE']);
  assert.equal(typeof reason, 'string');
  assert.ok(retryInMs >= 1000, `retry in ${retryInMs} ms`);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(connections, 1, 'no tight reconnect loop');
  await client.close();
  await server.close();
});

test('times out a server that goes silent after its first PING', { timeout: 10_000 }, async (t) => {
  const received: string[] = [];
  const raw = net.createServer((socket) => {
    socket.write('SERVER silent.test\nPING 1\n');
    socket.on('data', (chunk) => received.push(...chunk.toString().split('\n').filter(Boolean)));
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => raw.close(() => r())));
  const port = (raw.address() as net.AddressInfo).port;
  const client = stopLater(t, new ReplicationClient({ port, streams: ['events'], ...FAST, backoff: { initialMs: 5000 } }));
  const errors: string[] = [];
  client.on('error', (err: { code: string }) => errors.push(err.code));
  const started = Date.now();
  client.start();
  await next(client, 'disconnected');
  const elapsed = Date.now() - started;
  assert.deepEqual(errors, ['PING_TIMEOUT']);
  assert.ok(elapsed >= 500 && elapsed < 2000, `timed out after ${elapsed} ms`);
  assert.equal(received.at(-1), 'ERROR ping timeout');
  assert.ok(received.filter((l) => l.startsWith('PING ')).length >= 3, 'the client PINGs while the server is silent');
  await client.close();
});

test('sends every client command, and keeps only the newest of those made while disconnected', { timeout: 10_000 }, async (t) => {
  const { server, port } = await startServer(t);
  const commands: ClientActionCommand[] = [];
  server.on('command', (cmd) => commands.push(cmd));
  const client = stopLater(t, new ReplicationClient({ port, streams: ['events'], syncingUsers: ['@s:hs'], maxQueuedCommands: 3, ...FAST }));
  for (let t = 1; t <= 5; t++) client.federationAck(t);
  assert.equal(client.droppedCommands, 2);
  client.start();
  await next(client, 'connected');
  client.userSync('@u:hs', true);
  client.removePusher('app', 'key', '@u:hs');
  client.invalidateCache('get_user_by_id', ['@u:hs']);
  client.userIp('@u:hs', 'tok', '10.0.0.1', 'Mozilla/5.0', 'DEV', 1490197670513);
  client.userSync('@u:hs', false);
  await until(() => commands.length === 9, 5000, 'nine commands');
  const text = commands.map((c) => {
    switch (c.name) {
      case 'USER_SYNC':
        return `USER_SYNC ${c.userId} ${c.state}`;
      case 'FEDERATION_ACK':
        return `FEDERATION_ACK ${c.token}`;
      case 'REMOVE_PUSHER':
        return `REMOVE_PUSHER ${c.appId} ${c.pushKey} ${c.userId}`;
      case 'INVALIDATE_CACHE':
        return `INVALIDATE_CACHE ${c.cacheFunc} ${c.keysJson}`;
      case 'USER_IP':
        return `USER_IP ${c.userId} ${c.infoJson}`;
    }
  });
  assert.deepEqual(text, [
    'USER_SYNC @s:hs start',
    'FEDERATION_ACK 3',
    'FEDERATION_ACK 4',
    'FEDERATION_ACK 5',
    'USER_SYNC @u:hs start',
    'REMOVE_PUSHER app key @u:hs',
    'INVALIDATE_CACHE get_user_by_id ["@u:hs"]',
    'USER_IP @u:hs ["tok","10.0.0.1","Mozilla/5.0","DEV",1490197670513]',
    'USER_SYNC @u:hs end',
  ]);
  await client.close();
  await server.close();
});

test('stream() yields batches to a slow for-await consumer, pausing the socket, and ends on break', { timeout: 15_000 }, async (t) => {
  const { server, port } = await startServer(t);
  const client = stopLater(t, new ReplicationClient({ port, maxBufferedBatches: 8, ...FAST }));
  let pauses = 0;
  const pause = client.pause.bind(client);
  client.pause = () => {
    pauses++;
    pause();
  };
  client.start();
  const got: number[] = [];
  const iterator = client.stream('events', 0);
  for (let i = 1; i <= 200; i++) await server.publish('events', [[i]]);
  for await (const batch of iterator) {
    got.push((batch.values()[0] as number[])[0]!);
    if (got.length % 20 === 0) await new Promise((r) => setTimeout(r, 10));
    if (got.length === 200) break;
  }
  assert.deepEqual(
    got,
    Array.from({ length: 200 }, (_, i) => i + 1),
  );
  assert.ok(pauses > 0, 'the client paused reading while the consumer lagged');
  await client.close();
  await server.close();
});

test(
  'delivers every row exactly once and in order across 50 cuts while a writer writes 100,000 rows',
  { timeout: 40_000 },
  async (t) => {
    const { server, port } = await startServer(t, { retentionRows: 300_000, streams: ['events'] });
    const readerProxy = stopLater(t, await startCuttableProxy(port));
    const writerProxy = stopLater(t, await startCuttableProxy(port));
    // A deterministic random source, so a failure can be replayed.
    let seed = 12345;
    const random = (): number => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const TOTAL = 100_000;
    const CUTS = 50;
    readerProxy.onConnection = () => {
      if (readerProxy.cuts < CUTS) readerProxy.cutAfter(1 + Math.floor(random() * 120_000));
    };
    writerProxy.onConnection = () => {
      if (writerProxy.cuts < 8) writerProxy.cutAfter(1 + Math.floor(random() * 400));
    };

    const writer = stopLater(t, new ReplicationWriter({ port: writerProxy.port, auth: 'w', streams: ['events'], ...FAST, maxUnstoredRows: 5000 }));
    const reader = stopLater(t, new ReplicationClient({ port: readerProxy.port, streams: { events: 0 }, ...FAST }));
    const batchSizes = new Map<number, number>();
    let seen = 0;
    let failure: string | null = null;
    reader.on('rows', (_s: string, token: number, rows: readonly { row(): unknown }[]) => {
      if (failure !== null) return;
      if (batchSizes.has(token) && batchSizes.get(token) !== rows.length) {
        failure = `token ${token}: ${rows.length} rows, published ${batchSizes.get(token)}`;
      }
      for (const r of rows) {
        const value = (r.row() as number[])[0];
        if (value !== seen) failure ??= `expected row ${seen}, got ${value} (token ${token})`;
        seen++;
      }
    });
    writer.start();
    reader.start();

    let written = 0;
    while (written < TOTAL) {
      const n = Math.min(TOTAL - written, 1 + Math.floor(random() * 4));
      const rows = Array.from({ length: n }, (_, i) => [written + i, 'x'.repeat(20)]);
      const token = await writer.publish('events', rows);
      batchSizes.set(token, n);
      written += n;
    }
    await writer.flush();
    await until(() => seen >= TOTAL || failure !== null, 30_000, `all ${TOTAL} rows (seen ${seen})`);
    // Rows past the end would be duplicates: give them a moment to show up.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(failure, null);
    assert.equal(seen, TOTAL);
    assert.ok(readerProxy.cuts >= CUTS, `only ${readerProxy.cuts} reader cuts`);
    assert.ok(writerProxy.cuts >= 1, 'the writer was cut too');
    assert.equal(server.head('events'), batchSizes.size);
    await reader.close();
    await writer.close();
    await readerProxy.close();
    await writerProxy.close();
    await server.close();
  },
);

test("says so when the server goes back on a stream (a wiped log, a new generation): 'rewound' and a warning, then rows from the head", { timeout: 10_000 }, async (t) => {
  const { server, port } = await startServer(t);
  const warnings: Record<string, unknown>[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line) as Record<string, unknown>) });
  const client = stopLater(t, new ReplicationClient({ port, streams: { events: 40, caches: 0 }, logger, ...FAST }));
  const rewound: [string, number, number][] = [];
  client.on('rewound', (stream: string, before: number, token: number) => rewound.push([stream, before, token]));
  const got: number[] = [];
  client.on('rows', (_s: string, token: number) => got.push(token));
  client.start();
  await until(() => rewound.length === 1, 5_000, 'rewound');
  assert.deepEqual(rewound, [['events', 40, 0]], 'only the stream that went back');
  assert.equal(warnings.filter((w) => w['stream'] === 'events' && w['before'] === 40 && w['token'] === 0).length, 1);
  await server.publish('events', [['again']]);
  await until(() => got.length === 1, 5_000, 'the row after the head');
  assert.deepEqual(got, [1]);
  assert.equal(client.positions()['events'], 1);
});

test("with followGeneration: a reconnect to a log of another generation emits 'generation' (previous, current) and a warning, before 'rewound'", { timeout: 10_000 }, async (t) => {
  const first = await startServer(t, { generation: 'aaa' });
  for (let i = 1; i <= 3; i++) await first.server.publish('events', [[`$${i}`]]);
  const second = await startServer(t, { generation: 'bbb' });
  // The client's transport goes wherever `port` points: the gateway "restarted" on another port.
  let port = first.port;
  const warnings: Record<string, unknown>[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line) as Record<string, unknown>) });
  const client = stopLater(
    t,
    new ReplicationClient({ transport: () => tcpClientTransport({ host: '127.0.0.1', port })(), streams: { events: 0 }, followGeneration: true, logger, ...FAST }),
  );
  const order: string[] = [];
  const generations: [string | null, string | null][] = [];
  client.on('generation', (previous: string | null, current: string | null) => {
    generations.push([previous, current]);
    order.push('generation');
  });
  client.on('rewound', (stream: string) => order.push(`rewound ${stream}`));
  const { deliveries } = collect(client);
  client.start();
  await until(() => deliveries.length === 3, 5_000, 'the first log rows');
  assert.equal(client.generation, 'aaa');
  assert.deepEqual(generations, [], 'the first answer is no change');
  port = second.port;
  await first.server.close();
  await until(() => generations.length === 1 && order.length === 2, 5_000, "'generation' and 'rewound'");
  assert.deepEqual(generations, [['aaa', 'bbb']]);
  assert.deepEqual(order, ['generation', 'rewound events']);
  assert.equal(client.generation, 'bbb');
  assert.equal(warnings.filter((w) => w['previous'] === 'aaa' && w['current'] === 'bbb').length, 1);
  // Positions are kept (the 'rewound' behaviour): the new log's rows after its head come through.
  await second.server.publish('events', [['new']]);
  await until(() => deliveries.length === 4, 5_000, 'the new log row');
  assert.deepEqual(deliveries.at(-1), { stream: 'events', token: 1, rows: [['new']] });
});

test('without followGeneration the client never sends GENERATION', { timeout: 10_000 }, async (t) => {
  const { server, port } = await startServer(t, { generation: 'aaa' });
  const client = stopLater(t, new ReplicationClient({ port, streams: ['events'], ...FAST }));
  const { positions } = collect(client);
  client.start();
  await until(() => positions.length === 1, 5_000, 'POSITION');
  assert.equal(hubOf(server).commandsIn.GENERATION, 0);
  assert.equal(client.generation, undefined);
});
