// ClientConnection's streams followed per writer instance (src/core/instance-follows.ts),
// fed bytes directly: what it sends, what it delivers, and bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientConnection, type ClientConnectionOptions } from '../../src/core/client-connection.js';

type Seen = ['rows', string, string | null, number, unknown[]] | ['position', string, string | undefined, number] | ['close', string, string];

function harness(options: ClientConnectionOptions = {}): { conn: ClientConnection; sent: string[]; seen: Seen[]; feed(text: string): void } {
  const sent: string[] = [];
  const seen: Seen[] = [];
  const conn = new ClientConnection(
    {
      write(chunks) {
        for (const c of chunks) sent.push(...c.toString('utf8').split('\n').filter((l) => l !== ''));
        return true;
      },
      close: (reason) => void seen.push(['close', reason.code, reason.message]),
      server() {},
      rows: (batch) => void seen.push(['rows', batch.stream, batch.instance, batch.token, batch.values()]),
      position: (stream, token, _before, instance) => void seen.push(['position', stream, instance, token]),
      remoteError() {},
      sync() {},
      forwarded() {},
      generationChanged() {},
    },
    options,
  );
  return { conn, sent, seen, feed: (text) => conn.data(Buffer.from(text), 0) };
}

test('v1 and per-instance streams share a connection: each line goes to its own kind, byte by byte or whole', () => {
  const h = harness();
  h.conn.follow('caches', 5, 0);
  h.conn.followInstance('events', 'event_persister2', 1030, 0);
  h.conn.followInstance('events', 'event_persister1', 'NOW', 0);
  h.conn.connected(0);
  assert.deepEqual(h.sent.filter((l) => l.startsWith('REPLICATE')), [
    'REPLICATE caches 5',
    'REPLICATE events event_persister2 1030',
    'REPLICATE events event_persister1 NOW',
  ]);
  const wire = [
    'SERVER gw',
    'RDATA caches 6 ["c"]',
    'RDATA events event_persister2 batch ["x"]',
    'RDATA events event_persister1 1033 ["y"]',
    'RDATA events event_persister2 1032 ["z"]',
    'RDATA events event_persister3 1034 ["not asked for"]',
    'POSITION events event_persister1 1033 1035',
    'POSITION caches 7',
    '',
  ].join('\n');
  for (const ch of Buffer.from(wire)) h.conn.data(Buffer.from([ch]), 0);
  assert.deepEqual(h.seen, [
    ['rows', 'caches', null, 6, [['c']]],
    ['rows', 'events', 'event_persister1', 1033, [['y']]],
    ['rows', 'events', 'event_persister2', 1032, [['x'], ['z']]],
    ['position', 'events', 'event_persister1', 1035],
    ['position', 'caches', undefined, 7],
  ]);
  assert.deepEqual(h.conn.instancePositions(), { events: { event_persister2: 1032, event_persister1: 1035 } });
});

test('a batch of one pair is not mixed with another pair\'s rows, and a cut drops the unfinished one', () => {
  const h = harness();
  h.conn.followInstance('events', '*', 0, 0);
  h.conn.connected(0);
  h.feed('RDATA events a batch ["a1"]\nRDATA events b 2 ["b"]\n');
  h.conn.disconnected();
  h.conn.connected(0);
  h.feed('RDATA events a batch ["a1"]\nRDATA events a 3 ["a2"]\n');
  assert.deepEqual(h.seen, [
    ['rows', 'events', 'b', 2, [['b']]],
    ['rows', 'events', 'a', 3, [['a1'], ['a2']]],
  ]);
  assert.deepEqual(h.sent.filter((l) => l.startsWith('REPLICATE')).slice(-2), ['REPLICATE events * 0', 'REPLICATE events b 2']);
});

for (const [line, code, message] of [
  ['RDATA events event_persister1 ["no token"]', 'BAD_TOKEN', /bad token '\["no' in RDATA/],
  ['RDATA events 1040 ["a v1 row where an instance belongs"]', 'BAD_TOKEN', /in RDATA: expected an integer/],
  ['POSITION events event_persister1 1040', 'MISSING_ARGUMENTS', /expected POSITION <stream> <instance> <prev_token> <new_token>/],
  ['POSITION events event_persister1 x 1040', 'BAD_TOKEN', /bad token 'x' in POSITION/],
] as const) {
  test(`a bad line of a per-instance stream is answered by ERROR and a close: ${line}`, () => {
    const h = harness();
    h.conn.followInstance('events', '*', 0, 0);
    h.conn.connected(0);
    h.feed(`${line}\n`);
    const closed = h.seen.find((s) => s[0] === 'close');
    assert.ok(closed !== undefined, 'closed');
    assert.equal(closed[1], code);
    assert.match(closed[2], message);
    assert.match(h.sent.at(-1)!, /^ERROR /);
  });
}

test('a batch past maxBatchBytes without its numbered row is ERROR and a close', () => {
  const h = harness({ maxBatchBytes: 100 });
  h.conn.followInstance('events', 'p1', 0, 0);
  h.conn.connected(0);
  for (let i = 0; i < 5; i++) h.feed(`RDATA events p1 batch ["${'x'.repeat(20)}"]\n`);
  assert.deepEqual(h.seen.map((s) => s.slice(0, 2)), [['close', 'BATCH_TOO_LARGE']]);
  assert.match(h.sent.at(-1)!, /^ERROR batch of events p1 over 100 bytes/);
});
