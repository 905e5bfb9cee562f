// Several credentials of each kind over real TCP sockets: each subscriber
// token reads its own streams (REPLICATE ALL gets those only, a forbidden
// stream gets ERROR naming it), each writer token writes its own streams
// (outside them: ERROR, close, nothing of that stream stored), and every
// failed AUTH is reported with the peer's host.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AuthFailure } from '../../src/core/hub-types.js';
import { hubOf } from '../../src/server.js';
import { greeted, startServer } from './support/raw-peer.js';

const STREAMS = ['events', 'typing', 'caches', 'presence'];

const credentials = [
  { secret: 'sub-all', role: 'subscriber' as const },
  { secret: 'sub-typing', role: 'subscriber' as const, streams: ['typing', 'presence'] },
  { secret: 'sub-caches', role: 'subscriber' as const, streams: ['caches'] },
  { secret: 'master', role: 'writer' as const },
  { secret: 'w-events', role: 'writer' as const, streams: ['events'] },
  { secret: 'w-caches', role: 'writer' as const, streams: ['caches', 'typing'] },
];

test('each of several subscriber tokens reads only its streams: REPLICATE ALL expands to them, another stream is refused by name', { timeout: 10_000 }, async (t) => {
  const f = await startServer({ streams: STREAMS, credentials });
  t.after(() => f.close());
  const expected: [string, string[]][] = [
    ['sub-all', STREAMS],
    ['sub-typing', ['typing', 'presence']],
    ['sub-caches', ['caches']],
  ];
  for (const [secret, streams] of expected) {
    const p = await greeted(f, secret);
    p.send('REPLICATE ALL NOW');
    await p.until(() => p.content().length === streams.length, `${streams.length} POSITIONs for ${secret}`);
    assert.deepEqual(p.content().sort(), streams.map((s) => `POSITION ${s} 0`).sort(), secret);
  }
  const writer = await greeted(f, 'master');
  writer.send('RDATA events 1 ["e"]', 'RDATA typing 1 ["t"]', 'RDATA caches 1 ["c"]');
  const limited = await greeted(f, 'sub-typing');
  limited.send('REPLICATE typing 0', 'REPLICATE presence 0');
  await limited.line('RDATA typing 1 ["t"]');
  await limited.line('POSITION presence 0');
  limited.send('REPLICATE events 0');
  await limited.closed();
  assert.equal(limited.content().at(-1), 'ERROR not permitted to read stream events');
  assert.ok(!limited.content().some((l) => l.startsWith('RDATA events')), limited.content().join('|'));
  const other = await greeted(f, 'sub-caches');
  other.send('REPLICATE caches 0');
  await other.line('RDATA caches 1 ["c"]');
  other.send('REPLICATE typing NOW');
  await other.closed();
  assert.equal(other.content().at(-1), 'ERROR not permitted to read stream typing');
});

test('each of several writer tokens writes only its streams; outside them: ERROR, a close, and nothing of that stream stored', { timeout: 10_000 }, async (t) => {
  const f = await startServer({ streams: STREAMS, credentials });
  t.after(() => f.close());
  const watcher = await greeted(f, 'sub-all');
  watcher.send('REPLICATE ALL NOW');
  await watcher.until(() => watcher.content().length === STREAMS.length, 'the POSITIONs');

  const events = await greeted(f, 'w-events');
  events.send('RDATA events 1 ["e1"]');
  await watcher.line('RDATA events 1 ["e1"]');
  const caches = await greeted(f, 'w-caches');
  caches.send('RDATA caches 1 ["c1"]', 'RDATA typing 1 ["t1"]');
  await watcher.line('RDATA typing 1 ["t1"]');

  // A batch on a stream outside the list, then rows of its own stream, in one chunk.
  events.send('RDATA caches batch ["x"]', 'RDATA caches 2 ["y"]', 'RDATA events 2 ["after"]');
  await events.closed();
  assert.deepEqual(events.content(), ['ERROR not permitted to write stream caches']);
  caches.send('POSITION events 9');
  await caches.closed();
  assert.deepEqual(caches.content(), ['ERROR not permitted to write stream events']);

  const master = await greeted(f, 'master');
  master.send('RDATA presence 1 ["p1"]');
  await watcher.line('RDATA presence 1 ["p1"]');
  const hub = hubOf(f.server);
  assert.deepEqual(
    STREAMS.map((s) => [s, f.server.head(s), hub.stream(s)!.log.retainedRows]),
    [['events', 1, 1], ['typing', 1, 1], ['caches', 1, 1], ['presence', 1, 1]],
    'nothing of a refused write was stored',
  );
  assert.ok(!watcher.content().some((l) => /\["(x|y|after)"\]|POSITION events 9/.test(l)), watcher.content().join('|'));

  // A writer reads the streams it writes, and only those.
  const reader = await greeted(f, 'w-caches');
  reader.send('REPLICATE ALL NOW');
  await reader.until(() => reader.content().length === 2, 'two POSITIONs');
  assert.deepEqual(reader.content().sort(), ['POSITION caches 1', 'POSITION typing 1']);
  reader.send('REPLICATE events 0');
  await reader.closed();
  assert.equal(reader.content().at(-1), 'ERROR not permitted to read stream events');
});

test('a failed AUTH is reported with the host and its count in the window; a right one is not', { timeout: 10_000 }, async (t) => {
  const f = await startServer({ streams: STREAMS, credentials });
  t.after(() => f.close());
  const failures: AuthFailure[] = [];
  f.server.on('authFailed', (_conn, failure) => failures.push(failure));
  for (const secret of ['nope', 'sub-al', 'master']) {
    const p = await greeted(f, secret);
    p.send('REPLICATE events NOW');
    await p.until(() => p.content().length > 0, 'an answer');
  }
  assert.deepEqual(
    failures.map((x) => [x.host, x.failures, x.limit, x.windowMs, x.refusedForMs]),
    [
      ['127.0.0.1', 1, 10, 60_000, 0],
      ['127.0.0.1', 2, 10, 60_000, 0],
    ],
  );
});
