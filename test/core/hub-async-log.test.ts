// The hub over a log that answers later and fails on demand
// (support/async-log.ts): fan-out follows the log's confirmation, catch-up
// waits for its answers, and a writer whose rows were not stored is cut
// with nothing of them shown to anyone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OrderedPublisher } from '../../src/core/ordered-commit.js';
import { inlineRowEncoder } from '../../src/core/row-encoding.js';
import { AsyncLog, turn } from './support/async-log.js';
import { fakeHub, rows, send, type FakeHub } from './support/fake-hub.js';

function asyncHub(): { h: FakeHub; logs: Map<string, AsyncLog> } {
  const logs = new Map<string, AsyncLog>();
  const h = fakeHub({
    createLog: (stream) => {
      const log = new AsyncLog({ startToken: 0 }, false);
      logs.set(stream, log);
      return log;
    },
  });
  return { h, logs };
}

/** Answers every log's questions, lets the answers' callbacks run, then flushes. */
async function answer(h: FakeHub, logs: Map<string, AsyncLog>): Promise<void> {
  for (let i = 0; i < 10; i++) {
    for (const log of logs.values()) log.answer();
    await turn();
    h.settle();
    if ([...logs.values()].every((l) => l.pending === 0)) return;
  }
}

function connect(h: FakeHub, first: string) {
  const c = h.connect();
  send(h, c.conn, first);
  c.t.take();
  return c;
}

test('rows reach live subscribers when the log confirms them, and pending tokens count against a writer', async () => {
  const { h, logs } = asyncHub();
  const sub = connect(h, 'REPLICATE events NOW\n');
  const w = connect(h, 'AUTH w-secret\n');
  send(h, w.conn, rows('events', [1, 2, 3]));
  assert.deepEqual(sub.t.take(), [], 'nothing before the log says it is stored');
  assert.equal(logs.get('events')!.lastAppended, 3);
  send(h, w.conn, rows('events', [3]));
  assert.ok(!w.conn.open, 'a token already handed to the log is not rising');
  await answer(h, logs);
  assert.deepEqual(sub.t.take().map((l) => l.split(' ')[2]), ['1', '2', '3']);
  assert.equal(h.hub.stream('events')!.log.head, 3);
});

test('a writer whose rows could not be stored gets ERROR and a close; subscribers see nothing of them; the hub goes on', async () => {
  const { h, logs } = asyncHub();
  const log = logs.get('events')!;
  const sub = connect(h, 'REPLICATE events NOW\n');
  const w = connect(h, 'AUTH w-secret\n');
  send(h, w.conn, rows('events', [1]));
  await answer(h, logs);
  assert.deepEqual(sub.t.take().map((l) => l.split(' ')[2]), ['1']);

  log.failAppends = true;
  send(h, w.conn, rows('events', [2, 3]));
  send(h, w.conn, 'RDATA events batch ["a"]\nRDATA events 4 ["b"]\nPOSITION events 9\n');
  await answer(h, logs);
  assert.ok(!w.conn.open);
  assert.deepEqual(w.t.take(), ['ERROR rows could not be stored: disk full']);
  const closed = h.events.find((e) => e[0] === 'closed' && e[1] === w.conn);
  assert.equal(closed?.[2], 'store_failed');
  assert.deepEqual(sub.t.take(), [], 'nothing of the failed run, nor of what followed it');
  assert.ok(sub.conn.open);
  assert.equal(log.head, 1);
  assert.equal(log.lastAppended, 1, 'the stream is back at what was stored');

  // The log recovers: a writer resends from the stored head and subscribers get it.
  log.failAppends = false;
  const again = connect(h, 'AUTH w-secret\n');
  send(h, again.conn, rows('events', [2, 3]));
  await answer(h, logs);
  assert.ok(again.conn.open);
  assert.deepEqual(sub.t.take().map((l) => l.split(' ')[2]), ['2', '3']);
});

test('catch-up waits for the log: cursor and reads answered later, rows stored meanwhile not missed, then live', async () => {
  const { h, logs } = asyncHub();
  const w = connect(h, 'AUTH w-secret\n');
  for (let t = 1; t <= 40; t += 4) send(h, w.conn, rows('events', [t, t + 1, t + 2, t + 3]));
  await answer(h, logs);
  const sub = connect(h, 'PING 1\n');
  send(h, sub.conn, 'REPLICATE events 10\n');
  assert.deepEqual(sub.t.take(), []);
  assert.deepEqual(sub.conn.subscriptions(), [{ stream: 'events', instance: null, catchingUp: true, lastToken: 10 }]);
  for (let i = 0; i < 4; i++) {
    logs.get('events')!.answer();
    await turn();
    h.settle();
    // Rows stored while the catch-up is reading.
    send(h, w.conn, rows('events', [41 + i]));
    logs.get('events')!.answer();
    await turn();
    h.settle();
  }
  await answer(h, logs);
  send(h, w.conn, rows('events', [50]));
  await answer(h, logs);
  const got = sub.t.take().map((l) => `${l.split(' ')[0]} ${l.split(' ')[2]}`);
  const expected = [];
  for (let t = 11; t <= 44; t++) expected.push(`RDATA ${t}`);
  expected.push('POSITION 44', 'RDATA 50');
  assert.deepEqual(got, expected);
  assert.deepEqual(sub.conn.subscriptions(), [{ stream: 'events', instance: null, catchingUp: false, lastToken: 50 }]);
});

test('entries the log stores from elsewhere (another gateway on a shared log) feed the same fan-out', async () => {
  const { h, logs } = asyncHub();
  const sub = connect(h, 'REPLICATE caches NOW\n');
  const bytes = Buffer.from('RDATA caches 7 ["x"]\n');
  void logs.get('caches')!.append({ firstToken: 7, lastToken: 7, bytes, lines: 1, rows: 1 });
  await answer(h, logs);
  assert.deepEqual(sub.t.take(), ['RDATA caches 7 ["x"]']);
  assert.equal(h.hub.stream('caches')!.rowsWritten, 1);
});

test('in-process publishes reserve tokens through the log, resolve once stored and reject when not', async () => {
  const { h, logs } = asyncHub();
  const sub = connect(h, 'REPLICATE caches NOW\n');
  const publisher = new OrderedPublisher({
    encoder: inlineRowEncoder,
    tokens: (stream) => h.hub.requireStream(stream).log,
    commit: (stream, token, bytes, rowCount) => h.hub.appendEncoded(stream, token, bytes, rowCount),
  });
  const first = publisher.publish('caches', [['a'], ['b']]);
  await answer(h, logs);
  assert.equal(await first, 1);
  assert.deepEqual(sub.t.take(), ['RDATA caches batch ["a"]', 'RDATA caches 1 ["b"]']);
  logs.get('caches')!.failAppends = true;
  const lost = assert.rejects(publisher.publish('caches', [['c']]), /disk full/);
  await answer(h, logs);
  await lost;
  assert.deepEqual(sub.t.take(), []);
  logs.get('caches')!.failAppends = false;
  const next = publisher.publish('caches', [['d']]);
  await answer(h, logs);
  assert.equal(await next, 2, 'the lost token is taken again');
  assert.deepEqual(sub.t.take(), ['RDATA caches 2 ["d"]']);
});

test('a live subscriber that falls behind on a log that answers later reads on from its last queued row, rows stored meanwhile not missed, then live', async () => {
  const { h, logs } = asyncHub();
  const sub = connect(h, 'REPLICATE events NOW\n');
  const w = connect(h, 'AUTH w-secret\n');
  sub.t.accepting = false;
  // The fake hub queues 100 commands: row 1 goes to the socket, 2..101 are queued, 102 falls behind.
  for (let t = 1; t <= 120; t++) {
    send(h, w.conn, rows('events', [t]));
    await answer(h, logs);
  }
  assert.equal(sub.conn.queuedCommands, 100);
  assert.deepEqual(sub.conn.subscriptions(), [{ stream: 'events', instance: null, catchingUp: true, lastToken: 101 }]);
  sub.t.accepting = true;
  sub.conn.drained();
  for (let i = 0; i < 4; i++) {
    logs.get('events')!.answer();
    await turn();
    h.settle();
    send(h, w.conn, rows('events', [121 + i]));
    logs.get('events')!.answer();
    await turn();
    h.settle();
  }
  await answer(h, logs);
  send(h, w.conn, rows('events', [130]));
  await answer(h, logs);
  const got = sub.t.take().map((l) => `${l.split(' ')[0]} ${l.split(' ')[2]}`);
  const expected = [];
  for (let t = 1; t <= 124; t++) expected.push(`RDATA ${t}`);
  expected.push('POSITION 124', 'RDATA 130');
  assert.deepEqual(got, expected);
  assert.ok(sub.conn.open);
});
