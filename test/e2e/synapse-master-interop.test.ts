// Our ReplicationClient and `tail` follow Synapse's own 2017 master
// (../shared/synapse-peer/master.py) over a real socket. Fails (never skips)
// when the peer cannot run here: CI installs python3-twisted.

import { before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ReplicationClient, type RowBatch } from '../../src/client.js';
import {
  checkPythonPeer,
  JsonLineLog,
  masterEvent,
  projectRoot,
  PYTHON_PEER_INSTALL,
  pythonPeerAvailable,
  startSynapseMaster,
  type MasterOptions,
  type SynapseMaster,
} from '../support/synapse-peer.js';

before(() => {
  assert.ok(pythonPeerAvailable(), `${checkPythonPeer().reason} (CI installs: ${PYTHON_PEER_INSTALL})`);
});

// Synapse's client times out after 25 s of silence; the master PINGs every 5 s, so keep its default timeout.
const TIMING = { backoff: { initialMs: 20, maxMs: 100, healthyAfterMs: 0, wrongRemoteMs: 3000 } };

async function master(t: TestContext, opts: MasterOptions): Promise<SynapseMaster> {
  const m = await startSynapseMaster({ maxSeconds: 60, ...opts });
  t.after(() => m.stop());
  return m;
}

function client(t: TestContext, options: ConstructorParameters<typeof ReplicationClient>[0]): ReplicationClient {
  const c = new ReplicationClient({ ...TIMING, ...options });
  t.after(() => c.close());
  return c;
}

interface Delivery {
  stream: string;
  token: number;
  rows: unknown[][];
}

function collect(c: ReplicationClient): { deliveries: Delivery[]; positions: [string, number][] } {
  const deliveries: Delivery[] = [];
  const positions: [string, number][] = [];
  c.on('rows', (_s: string, _t: number, _r: unknown, b: RowBatch) =>
    deliveries.push({ stream: b.stream, token: b.token, rows: b.values() as unknown[][] }),
  );
  c.on('position', (s: string, tok: number) => positions.push([s, tok]));
  return { deliveries, positions };
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The token in a generated row: events `["$12:example.com", ...]`, caches `["get_user_by_id", ["@user12_0:example.com"], ts]`. */
function rowId(stream: string, row: unknown[]): string {
  if (stream === 'events') return String(row[0]);
  return String((row[1] as string[])[0]);
}

test("catches up from a token (Synapse's un-batched form), then live rows and live batches", { timeout: 20_000 }, async (t) => {
  const m = await master(t, {
    streams: ['events', 'caches'],
    prefill: { events: 20, caches: 4 },
    batch: { caches: 3 },
    rows: 10,
    rate: 50,
    waitSubscribers: 1,
  });
  const c = client(t, { port: m.port, name: 'gw.client', serverName: 'master.test', streams: { events: 10, caches: 2 } });
  const { deliveries, positions } = collect(c);
  c.start();
  await until(() => positions.length === 2 && c.positions()['events'] === 30 && c.positions()['caches'] === 14, 10_000, 'every token');

  const events = deliveries.filter((d) => d.stream === 'events');
  assert.deepEqual(
    events.map((d) => [d.token, d.rows.map((r) => rowId('events', r))]),
    Array.from({ length: 20 }, (_, i) => [11 + i, [`$${11 + i}:example.com`]]),
  );
  const caches = deliveries.filter((d) => d.stream === 'caches');
  // Catch-up of tokens 3 and 4: one numbered line per row, delivered one by one.
  assert.deepEqual(
    caches.slice(0, 6).map((d) => [d.token, d.rows.length]),
    [3, 3, 3, 4, 4, 4].map((tok) => [tok, 1]),
  );
  // Live tokens 5..14: `batch` lines, each token one delivery of 3 rows.
  assert.deepEqual(
    caches.slice(6).map((d) => [d.token, d.rows.map((r) => rowId('caches', r))]),
    Array.from({ length: 10 }, (_, i) => [5 + i, [0, 1, 2].map((k) => `@user${5 + i}_${k}:example.com`)]),
  );
  assert.deepEqual(positions.sort(), [
    ['caches', 4],
    ['events', 20],
  ]);
  const recv = m.events.all().filter(masterEvent('recv')).map((e) => e.line);
  assert.deepEqual(recv.slice(0, 4), ['NAME gw.client', recv[1], 'REPLICATE events 10', 'REPLICATE caches 2']);
  assert.match(String(recv[1]), /^PING \d+$/);
});

test('from NOW: the POSITION, then live rows only', { timeout: 20_000 }, async (t) => {
  const m = await master(t, { streams: ['events'], prefill: 20, rows: 5, rate: 50, waitSubscribers: 1 });
  const c = client(t, { port: m.port, streams: ['events'] });
  const { deliveries, positions } = collect(c);
  c.start();
  await until(() => c.positions()['events'] === 25, 10_000, 'token 25');
  assert.deepEqual(positions, [['events', 20]]);
  assert.deepEqual(
    deliveries.map((d) => d.token),
    [21, 22, 23, 24, 25],
  );
});

test('every client command arrives at the master', { timeout: 20_000 }, async (t) => {
  const m = await master(t, { streams: ['events'], prefill: 1, rows: 0 });
  const c = client(t, { port: m.port, name: 'cmd.client', streams: ['events'], syncingUsers: ['@s:example.com'] });
  c.federationAck(3); // queued while disconnected
  c.start();
  await new Promise((resolve) => c.once('connected', resolve));
  c.userSync('@u:example.com', true);
  c.removePusher('app', 'key', '@u:example.com');
  c.invalidateCache('get_user_by_id', ['@u:example.com']);
  c.userIp('@u:example.com', 'tok', '10.0.0.1', 'Mozilla/5.0 (X11)', 'DEV', 1490197670513);
  c.userSync('@u:example.com', false);
  await m.events.waitFor((e) => e.event === 'recv' && e['cmd'] === 'USER_SYNC' && String(e['line']).includes(' end '), 10_000, 'the last USER_SYNC');
  const lines = m.events
    .all()
    .filter(masterEvent('recv'))
    .map((e) => String(e.line).replace(/ \d{13}$/, ' <ms>'));
  assert.deepEqual(lines, [
    'NAME cmd.client',
    'PING <ms>',
    'REPLICATE events NOW',
    'USER_SYNC @s:example.com start <ms>',
    'FEDERATION_ACK 3',
    'USER_SYNC @u:example.com start <ms>',
    'REMOVE_PUSHER app key @u:example.com',
    'INVALIDATE_CACHE get_user_by_id ["@u:example.com"]',
    'USER_IP @u:example.com ["tok","10.0.0.1","Mozilla/5.0 (X11)","DEV",1490197670513]',
    'USER_SYNC @u:example.com end <ms>',
  ]);
  const effects = m.events.all().map((e) => e.event);
  for (const effect of ['federation_sender.federation_ack', 'store.delete_pusher', 'store.invalidate_cache', 'store.insert_client_ip']) {
    assert.ok(effects.includes(effect), `${effect} happened`);
  }
});

test('answers a master with the wrong name with ERROR Wrong remote, and does not loop', { timeout: 20_000 }, async (t) => {
  const m = await master(t, { streams: ['events'], rows: 0 });
  const c = client(t, { port: m.port, serverName: 'other.test', streams: ['events'] });
  const errors: string[] = [];
  c.on('error', (e: { code: string }) => errors.push(e.code));
  c.start();
  await m.events.waitFor((e) => e.event === 'recv' && e['cmd'] === 'ERROR', 10_000, 'the ERROR');
  await m.events.waitFor(masterEvent('connection_lost'), 10_000, 'the close');
  await new Promise((r) => setTimeout(r, 500));
  const recvErrors = m.events.all().filter((e) => e.event === 'recv' && e['cmd'] === 'ERROR');
  assert.deepEqual(
    recvErrors.map((e) => e['line']),
    ['ERROR Wrong remote'],
  );
  assert.deepEqual(errors, ['WRONG_REMOTE']);
  assert.equal(m.events.all().filter(masterEvent('connection_made')).length, 1);
});

test('resumes after the master aborts its connections, with nothing lost or repeated', { timeout: 30_000 }, async (t) => {
  const m = await master(t, {
    streams: ['events', 'caches'],
    prefill: { events: 50, caches: 10 },
    batch: { caches: 3 },
    rows: 300,
    rate: 300,
    kickAfter: 40,
    waitSubscribers: 1,
  });
  const c = client(t, { port: m.port, streams: { events: 0, caches: 0 } });
  const { deliveries } = collect(c);
  let drops = 0;
  c.on('disconnected', () => drops++);
  c.start();
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setTimeout(r, 150));
    m.signal('SIGUSR2');
  }
  await until(() => c.positions()['events'] === 350 && c.positions()['caches'] === 310, 20_000, 'the last tokens');
  assert.ok(drops >= 3, `only ${drops} drops`);
  for (const [stream, last, perToken] of [
    ['events', 350, 1],
    ['caches', 310, 3],
  ] as const) {
    const ids = deliveries.filter((d) => d.stream === stream).flatMap((d) => d.rows.map((r) => rowId(stream, r)));
    const expected: string[] = [];
    for (let tok = 1; tok <= last; tok++) {
      for (let k = 0; k < perToken; k++) expected.push(stream === 'events' ? `$${tok}:example.com` : `@user${tok}_${k}:example.com`);
    }
    assert.deepEqual(ids, expected, `${stream}: every row once, in order`);
  }
});

test('`tail` follows the master: catch-up and live rows as JSON lines', { timeout: 20_000 }, async (t) => {
  const m = await master(t, { streams: ['events', 'caches'], prefill: { events: 5, caches: 2 }, batch: { caches: 2 }, rows: 3, rate: 30, waitSubscribers: 1 });
  const bin = path.join(projectRoot(), 'bin', 'replication-gateway.js');
  const child = spawn(
    process.execPath,
    [bin, 'tail', '--connect', `127.0.0.1:${m.port}`, '--stream', 'events:2', '--stream', 'caches:0', '--server-name', 'master.test'],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  t.after(() => void child.kill('SIGKILL'));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const out = new JsonLineLog<{ stream: string; token: number; row: unknown[] }>('tail stdout');
  out.attach(child.stdout);
  await out.waitFor((l) => l.stream === 'events' && l.token === 8, 10_000, 'events 8');
  await out.waitFor((l) => l.stream === 'caches' && l.token === 5 && rowId('caches', l.row).endsWith('_1:example.com'), 10_000, 'caches 5');
  child.kill('SIGINT');
  assert.equal(await exited, 0);
  const lines = out.all();
  assert.deepEqual(
    lines.filter((l) => l.stream === 'events').map((l) => [l.token, l.row[0]]),
    [3, 4, 5, 6, 7, 8].map((tok) => [tok, `$${tok}:example.com`]),
  );
  assert.deepEqual(
    lines.filter((l) => l.stream === 'caches').map((l) => [l.token, rowId('caches', l.row)]),
    [1, 2, 3, 4, 5].flatMap((tok) => [0, 1].map((k) => [tok, `@user${tok}_${k}:example.com`])),
  );
});
