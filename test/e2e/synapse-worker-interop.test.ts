// Synapse's own 2017 worker (../shared/synapse-peer/worker.py) follows our
// ReplicationServer over a real socket. Fails (never skips) when the peer
// cannot run here: CI installs python3-twisted.

import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClientActionCommand } from '../../src/core/commands.js';
import type { PresenceChange } from '../../src/core/hub-types.js';
import type { ServerConnection } from '../../src/core/server-connection.js';
import { checkPythonPeer, PYTHON_PEER_INSTALL, pythonPeerAvailable, startSynapseWorker, workerEvent, type SynapseWorker, type WorkerEvent } from '../support/synapse-peer.js';
import { eventually, greeted, startServer } from '../bindings/support/raw-peer.js';

before(() => {
  assert.ok(pythonPeerAvailable(), `${checkPythonPeer().reason} (CI installs: ${PYTHON_PEER_INSTALL})`);
});

type RowEvent = Extract<WorkerEvent, { type: 'rdata' | 'position' }>;
const rowEvent =
  (stream: string) =>
  (e: WorkerEvent): e is RowEvent =>
    (e.type === 'rdata' || e.type === 'position') && e.stream === stream;

/** An events row as Synapse's EventStreamRow takes it: event_id, room_id, type, state_key, redacts. */
const event = (n: number): unknown[] => [`$${n}:hs`, '!room:hs', 'm.room.message', null, null];
/** A caches row: cache_func, keys, invalidation_ts. */
const cache = (user: string): unknown[] => ['get_user_by_id', [user], 1490197670513];

async function publishEvents(server: { publish(s: string, rows: unknown[]): Promise<number> }, from: number, to: number): Promise<void> {
  for (let n = from; n <= to; n++) assert.equal(await server.publish('events', [event(n)]), n);
}

test("Synapse's worker catches up from a token, follows live rows and batches, and its USER_SYNC reaches writers and events", { timeout: 30_000 }, async (t) => {
  const f = await startServer({ writerToken: 'w' });
  let worker: SynapseWorker | undefined;
  t.after(async () => {
    await worker?.stop();
    await f.close();
  });
  const commands: ClientActionCommand[] = [];
  const presence: [string, boolean, string | undefined][] = [];
  f.server.on('command', (cmd) => commands.push(cmd));
  f.server.on('presence', (p: PresenceChange) => presence.push([p.userId, p.syncing, p.connection.name]));
  await publishEvents(f.server, 1, 20);
  await f.server.publish('caches', [cache('@a:hs'), cache('@b:hs'), cache('@c:hs')]);
  const writer = await greeted(f, 'w');

  worker = await startSynapseWorker({
    port: f.port,
    name: 'synapse.app.interop',
    streams: { events: 10, caches: 0 },
    expectServer: 'gw.test',
    userSync: ['@alice:hs'],
    federationAck: [7],
    until: { events: 40, caches: 3 },
    maxConnections: 1,
    maxSeconds: 20,
  });
  const w = worker;
  await w.events.waitFor((e) => e.type === 'position' && e.stream === 'events', 10_000, 'POSITION events');
  await w.events.waitFor((e) => e.type === 'position' && e.stream === 'caches', 5_000, 'POSITION caches');

  await publishEvents(f.server, 21, 30);
  await f.server.publish('caches', [cache('@d:hs'), cache('@e:hs'), cache('@f:hs')]);
  // A writer's batch, split over two writes.
  writer.write('RDATA caches batch ["get_user_by_id",["@g:hs"],1490197670513]\nRDATA caches ');
  await new Promise((r) => setTimeout(r, 30));
  writer.write('3 ["get_user_by_id",["@h:hs"],1490197670513]\n');
  await eventually(() => f.server.head('caches') === 3, 'the writer batch');
  await publishEvents(f.server, 31, 40);
  assert.equal(await w.exited, 0, `worker.py exited non-zero; stderr: ${await w.readStderr()}`);

  const got = w.events.all();
  assert.deepEqual(got.filter(workerEvent('server')).map((e) => e.name), ['gw.test']);
  assert.deepEqual(got.find(workerEvent('connected'))?.replicate, { events: 10, caches: 0 });
  const events = got.filter(rowEvent('events'));
  assert.deepEqual(
    events.map((e) => `${e.type} ${e.token}`),
    [...Array.from({ length: 10 }, (_, i) => `rdata ${11 + i}`), 'position 20', ...Array.from({ length: 20 }, (_, i) => `rdata ${21 + i}`)],
  );
  for (const e of events.filter(workerEvent('rdata'))) assert.deepEqual(e.rows, [event(e.token)]);
  const caches = got.filter(rowEvent('caches'));
  assert.deepEqual(
    caches.map((e) => [e.type, e.token, e.rows.map((r) => (r[1] as string[])[0])]),
    [
      ['rdata', 1, ['@a:hs', '@b:hs', '@c:hs']],
      ['position', 1, []],
      ['rdata', 2, ['@d:hs', '@e:hs', '@f:hs']],
      ['rdata', 3, ['@g:hs', '@h:hs']],
    ],
    'each batch is handed over as one group, in catch-up and live',
  );

  // Its client commands reached the writer connection and the in-process API.
  await writer.line(/^USER_SYNC @alice:hs end \d+$/);
  const toWriter = writer.content();
  assert.match(toWriter[0]!, /^USER_SYNC @alice:hs start \d+$/);
  assert.equal(toWriter[1], 'FEDERATION_ACK 7');
  assert.deepEqual(commands.map((c) => c.name), ['USER_SYNC', 'FEDERATION_ACK']);
  assert.deepEqual(presence, [
    ['@alice:hs', true, 'synapse.app.interop'],
    ['@alice:hs', false, 'synapse.app.interop'],
  ]);
});

test("Synapse's worker resumes after the server drops its connection, with nothing lost or duplicated", { timeout: 30_000 }, async (t) => {
  const f = await startServer();
  let worker: SynapseWorker | undefined;
  t.after(async () => {
    await worker?.stop();
    await f.close();
  });
  await publishEvents(f.server, 1, 10);
  worker = await startSynapseWorker({
    port: f.port,
    name: 'synapse.app.resume',
    streams: { events: 0, caches: 'NOW' },
    until: { events: 120 },
    maxSeconds: 25,
  });
  const w = worker;
  let n = 10;
  /** Publishes up to `to`, every `gapMs`; every tenth token also gets a caches batch. */
  const publishUpTo = async (to: number, gapMs: number): Promise<void> => {
    while (n < to) {
      await publishEvents(f.server, n + 1, n + 1);
      n++;
      if (n % 10 === 0) await f.server.publish('caches', [cache(`@${n}a:hs`), cache(`@${n}b:hs`)]);
      if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
    }
  };
  /** Drops the worker's connection server-side once it has been handed `token`, while rows keep coming. */
  const dropWhenAt = async (token: number): Promise<void> => {
    await w.events.waitFor((e) => e.type === 'rdata' && e.stream === 'events' && e.token >= token, 10_000, `events ${token}`);
    const conns = f.server.connections() as ServerConnection[];
    assert.equal(conns.length, 1);
    conns[0]!.close('shutdown', 'dropped by the test');
  };
  /** Waits for the worker's `connection`th connection to have caught up (its POSITION events). */
  const live = async (connection: number): Promise<void> => {
    const c = await w.events.waitFor((e) => e.type === 'connected' && e.connection === connection, 10_000, `connection ${connection}`);
    const all = w.events.all();
    await w.events.waitFor(
      (e) => e.type === 'position' && e.stream === 'events' && all.indexOf(e) > all.indexOf(c),
      10_000,
      `connection ${connection} to be live`,
    );
  };
  await live(1);
  await Promise.all([publishUpTo(40, 15), dropWhenAt(30)]);
  await publishUpTo(60, 0); // while it is away
  await live(2);
  await Promise.all([publishUpTo(90, 15), dropWhenAt(75)]);
  await publishUpTo(120, 0);
  assert.equal(await w.exited, 0, `worker.py exited non-zero; stderr: ${await w.readStderr()}`);

  const got = w.events.all();
  const connected = got.filter(workerEvent('connected'));
  assert.equal(connected.length, 3);
  assert.equal(got.filter(workerEvent('error')).length, 2);
  assert.equal(got.filter(workerEvent('error'))[0]!.data, 'dropped by the test');
  // Each reconnection asked for the last token it had been handed.
  for (const c of connected.slice(1)) {
    const before = got.slice(0, got.indexOf(c));
    for (const stream of ['events', 'caches']) {
      const seen = before.filter(rowEvent(stream)).at(-1);
      assert.equal(c.replicate[stream], seen?.token, `${stream} at reconnection ${c.connection}`);
    }
  }
  const rdata = got.filter(workerEvent('rdata')).filter((e) => e.stream === 'events');
  assert.deepEqual(rdata.map((e) => e.token), Array.from({ length: 120 }, (_, i) => i + 1), 'every row once, in order');
  const caches = got.filter(workerEvent('rdata')).filter((e) => e.stream === 'caches');
  assert.deepEqual(caches.map((e) => e.token), Array.from({ length: caches.length }, (_, i) => i + 1));
  for (const e of caches) assert.equal(e.rows.length, 2, 'a caches batch is never split');
});
