// ReplicationRelay used as a library, over loopback: a ReplicationServer as
// the upstream master, a relay feeding a second ReplicationServer, and
// ReplicationClients reading from the relay. Every test stops what it starts.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import {
  MemoryStreamLog,
  ReplicationClient,
  ReplicationRelay,
  ReplicationServer,
  type ClientActionCommand,
  type ClientTransport,
  type ReplicationRelayOptions,
  type RowBatch,
  type UpstreamState,
} from '../src/index.js';
import { tcpClientTransport } from '../src/bindings/tcp-client-transport.js';
import { AsyncLog } from './core/support/async-log.js';

const FAST = {
  pingIntervalMs: 100,
  pingTimeoutMs: 500,
  backoff: { initialMs: 10, maxMs: 50, healthyAfterMs: 0, wrongRemoteMs: 2000 },
};

/** Closes what a test started, in the reverse order of start, when it ends. */
function closer(t: TestContext): <T extends { close(): Promise<void> }>(thing: T) => T {
  const things: { close(): Promise<void> }[] = [];
  t.after(async () => {
    for (const thing of things.reverse()) await thing.close();
  });
  return (thing) => {
    things.push(thing);
    return thing;
  };
}

/** Polls `check` every 10 ms for up to `ms`. */
async function until(check: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The upstream master: a server on 127.0.0.1:0 that reports the client commands it gets. */
async function startUpstream(
  close: ReturnType<typeof closer>,
  options: ConstructorParameters<typeof ReplicationServer>[0] = {},
): Promise<{ upstream: ReplicationServer; port: number; commands: string[] }> {
  const upstream = close(new ReplicationServer({ serverName: 'master.test', streams: ['events', 'caches'], sweepIntervalMs: 20, ...options }));
  const commands: string[] = [];
  upstream.on('command', (cmd: ClientActionCommand) => commands.push(describe(cmd)));
  const { port } = await upstream.listen({ host: '127.0.0.1', port: 0 });
  return { upstream, port, commands };
}

function describe(cmd: ClientActionCommand): string {
  switch (cmd.name) {
    case 'USER_SYNC':
      return `USER_SYNC ${cmd.userId} ${cmd.state}`;
    case 'FEDERATION_ACK':
      return `FEDERATION_ACK ${cmd.token}`;
    default:
      return cmd.name;
  }
}

/** A relay of every stream of a fresh server, that server listening once the relay has caught up. */
async function startRelay(
  close: ReturnType<typeof closer>,
  upstreamPort: number,
  options: Partial<ReplicationRelayOptions> = {},
): Promise<{ server: ReplicationServer; relay: ReplicationRelay; port: number; ready: string | null }> {
  const server = close(new ReplicationServer({ serverName: 'relay.test', streams: ['events', 'caches'], sweepIntervalMs: 20 }));
  const relay = close(new ReplicationRelay(server, { host: '127.0.0.1', port: upstreamPort, ...FAST, ...options }));
  relay.start();
  const ready = await relay.ready;
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return { server, relay, port, ready };
}

/** Every batch a client is handed, as `stream token [rows]`, and every POSITION. */
function follow(client: ReplicationClient): { got: string[]; names: string[] } {
  const got: string[] = [];
  const names: string[] = [];
  client.on('rows', (_s: string, _t: number, _r: unknown, batch: RowBatch) => got.push(`${batch.stream} ${batch.token} ${JSON.stringify(batch.values())}`));
  client.on('position', (stream: string, token: number) => got.push(`POSITION ${stream} ${token}`));
  client.on('connected', (name: string) => names.push(name));
  return { got, names };
}

test("serves the upstream's history and live rows with its tokens and batches, complete from 0, under the upstream's name", async (t) => {
  const close = closer(t);
  // A master whose history is complete from 0 and whose first row is token 101 (tokens are shared ids in Synapse).
  const { upstream, port } = await startUpstream(close, { createLog: () => new MemoryStreamLog({ startToken: 0 }) });
  upstream.advance('events', 100);
  await upstream.publish('events', [['$101']]);
  await upstream.publish('caches', [['f', ['a']], ['f', ['b']]]);
  const { server, relay, port: relayPort, ready } = await startRelay(close, port, { adoptServerName: true });
  assert.equal(ready, 'master.test', 'ready resolves with the upstream\'s SERVER name');
  assert.equal(relay.state, 'connected');
  assert.deepEqual([server.head('events'), server.head('caches')], [101, 1]);

  const client = close(new ReplicationClient({ port: relayPort, streams: { events: 0, caches: 0 }, ...FAST }));
  const seen = follow(client);
  client.start();
  await until(() => seen.got.length === 4, 'the catch-up from the relay');
  assert.deepEqual(seen.names, ['master.test'], 'the relay announces its upstream\'s name');
  assert.deepEqual(seen.got.filter((l) => l.startsWith('events')), ['events 101 [["$101"]]']);
  assert.deepEqual(seen.got.filter((l) => l.startsWith('caches')), ['caches 1 [["f",["a"]],["f",["b"]]]']);

  await upstream.publish('events', [['$102a'], ['$102b']]);
  await until(() => seen.got.length === 5, 'the live batch');
  assert.equal(seen.got[4], 'events 102 [["$102a"],["$102b"]]');
  assert.equal(relay.counters.rowsStored, 5);
  assert.deepEqual(relay.lag().map((l) => [l.stream, l.tokens, l.heldRows]), [['events', 0, 0], ['caches', 0, 0]]);
});

test("sends subscribers' commands upstream, with presence folded over every connection", async (t) => {
  const close = closer(t);
  const { port, commands } = await startUpstream(close);
  const { port: relayPort } = await startRelay(close, port);
  const c1 = close(new ReplicationClient({ port: relayPort, name: 'one', syncingUsers: ['@shared:hs', '@one:hs'], ...FAST }));
  const names = follow(c1).names;
  c1.start();
  await until(() => commands.length === 2, 'the first worker\'s users upstream');
  assert.deepEqual(names, ['relay.test'], 'without adoptServerName the server keeps its own name');
  const c2 = close(new ReplicationClient({ port: relayPort, name: 'two', syncingUsers: ['@shared:hs'], ...FAST }));
  c2.start();
  await new Promise((resolve) => c2.once('connected', resolve));
  c1.federationAck(7);
  await until(() => commands.length === 3, 'FEDERATION_ACK 7 upstream');
  await c1.close();
  await until(() => commands.length === 4, 'the end of the user only the closed worker had');
  c2.federationAck(8);
  await until(() => commands.length === 5, 'FEDERATION_ACK 8 upstream');
  await c2.close();
  await until(() => commands.length === 6, 'the end of the shared user');
  assert.deepEqual(commands, [
    'USER_SYNC @shared:hs start',
    'USER_SYNC @one:hs start',
    'FEDERATION_ACK 7',
    'USER_SYNC @one:hs end',
    'FEDERATION_ACK 8',
    'USER_SYNC @shared:hs end',
  ]);
});

test('connects through the transport factory it is given, keeps time by its clock, and resumes after a drop without a gap or a repeat', async (t) => {
  const close = closer(t);
  const { upstream, port } = await startUpstream(close);
  await upstream.publish('events', [['$1']]);
  const transports: ClientTransport[] = [];
  const tcp = tcpClientTransport({ host: '127.0.0.1', port });
  let now = 1_000;
  const states: UpstreamState[] = [];
  const { server, relay, port: relayPort } = await startRelay(close, port, {
    host: undefined,
    port: undefined,
    transport: () => {
      const transport = tcp();
      transports.push(transport);
      return transport;
    },
    clock: () => now,
  });
  relay.on('state', (s) => states.push(s));
  assert.equal(relay.address, 'custom transport');
  assert.equal(transports.length, 1);
  assert.equal(relay.stateSince, 1_000);
  assert.equal(relay.lastReceivedAt, 1_000);

  const client = close(new ReplicationClient({ port: relayPort, streams: { events: 0 }, ...FAST }));
  const seen = follow(client);
  client.start();
  await until(() => seen.got.length === 2, 'the catch-up from the relay');

  now = 5_000;
  transports[0]!.close();
  await until(() => relay.counters.disconnects === 1, 'the relay to notice the drop');
  await upstream.publish('events', [['$2']]);
  await until(() => relay.connected && server.head('events') === 2, 'the relay back on a new transport, caught up');
  assert.equal(transports.length, 2);
  assert.equal(relay.stateSince, 5_000);
  assert.equal(relay.lastReceivedAt, 5_000);
  assert.deepEqual(states, ['waiting', 'connecting', 'connected']);
  assert.notEqual(relay.lastDisconnectReason, null);

  await until(() => seen.got.length === 3, 'the row written while the relay was away');
  assert.deepEqual(seen.got, ['events 1 [["$1"]]', 'POSITION events 1', 'events 2 [["$2"]]']);
  assert.deepEqual(seen.names, ['relay.test'], 'the subscriber never saw the upstream drop');
});

test('when its log fails an entry, drops the upstream and follows again from the stored heads: no row lost, none repeated', async (t) => {
  const close = closer(t);
  const { upstream, port } = await startUpstream(close);
  for (let i = 1; i <= 3; i++) await upstream.publish('events', [[`$${i}`]]);
  const logs = new Map<string, AsyncLog>();
  const server = close(
    new ReplicationServer({
      serverName: 'relay.test',
      streams: ['events', 'caches'],
      createLog: (stream) => {
        const log = new AsyncLog();
        logs.set(stream, log);
        return log;
      },
    }),
  );
  logs.get('events')!.failAppends = true;
  const relay = close(new ReplicationRelay(server, { port, ...FAST }));
  relay.start();
  await until(() => relay.counters.storeFailures > 0, 'the failed appends');
  assert.equal(server.head('events'), 0, 'nothing of the failed entries is stored');
  logs.get('events')!.failAppends = false;
  await until(() => server.head('events') === 3, 'the rows stored after the reconnect');
  assert.ok(relay.counters.connects >= 2, 'the relay took a fresh upstream connection');
  await upstream.publish('events', [['$4']]);
  const { port: relayPort } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = close(new ReplicationClient({ port: relayPort, streams: { events: 0 }, ...FAST }));
  const seen = follow(client);
  client.start();
  await until(() => seen.got.includes('events 4 [["$4"]]'), 'the live row after the catch-up');
  assert.deepEqual(seen.got.filter((l) => l.startsWith('events')), ['events 1 [["$1"]]', 'events 2 [["$2"]]', 'events 3 [["$3"]]', 'events 4 [["$4"]]']);
});

test('follows a stream from NOW when the upstream no longer has its beginning, and says so', async (t) => {
  const close = closer(t);
  const { upstream, port } = await startUpstream(close, { retentionRows: 2 });
  for (let i = 1; i <= 5; i++) await upstream.publish('events', [[`$${i}`]]);
  const server = close(new ReplicationServer({ streams: ['events', 'caches'] }));
  const relay = close(new ReplicationRelay(server, { port, ...FAST }));
  const restarted = new Promise((resolve) => relay.once('restarted', (...args) => resolve(args)));
  relay.start();
  assert.equal(await relay.ready, 'master.test');
  assert.deepEqual(await restarted, ['events', 5]);
  assert.equal(server.head('events'), 5);
  assert.equal(relay.counters.nowStarts, 1);
});

test('ready resolves with null when the relay is closed before it caught up, and a relay without an upstream is refused', async (t) => {
  const close = closer(t);
  const gone = new ReplicationServer({ streams: ['events'] });
  const { port } = await gone.listen({ host: '127.0.0.1', port: 0 });
  await gone.close();
  const server = close(new ReplicationServer({ streams: ['events'] }));
  const relay = new ReplicationRelay(server, { port, ...FAST });
  relay.start();
  await until(() => relay.state === 'waiting', 'the failed connect');
  await relay.close();
  assert.equal(await relay.ready, null);
  assert.equal(relay.state, 'closed');
  assert.throws(() => new ReplicationRelay(server, {}), { name: 'TypeError', message: /needs the upstream's `port`.*or a `transport`/ });
});
