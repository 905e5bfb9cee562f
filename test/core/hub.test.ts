import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplicationHub } from '../../src/core/hub.js';
import { MemoryStreamLog } from '../../src/core/stream-log.js';
import type { PresenceChange } from '../../src/core/hub-types.js';
import { fakeHub, rows, send } from './support/fake-hub.js';

const CLIENT_LINES = [
  'USER_SYNC @a:hs start 1490197670513',
  'FEDERATION_ACK 42',
  'REMOVE_PUSHER m.http pushkey+/= @a:hs',
  'INVALIDATE_CACHE get_user_by_id ["@a:hs", {"x": [1, 2]}]',
  'USER_IP @a:hs ["tok","10.0.0.1","Mozilla\\/5.0 (X11)","DEV",1490197670513]',
];

test('refuses stream names that could not travel on the wire, and ALL', () => {
  const base = fakeHub().hub.options;
  for (const name of ['ALL', 'two words', '', 'a\nb']) {
    assert.throws(() => new ReplicationHub({ ...base, streams: [name] }), /invalid stream name/);
  }
});

test("subscribers' client commands reach every writer verbatim, and are reported as typed events", () => {
  const h = fakeHub();
  const w1 = h.connect();
  const w2 = h.connect();
  send(h, w1.conn, 'AUTH w-secret\n');
  send(h, w2.conn, 'AUTH w-caches\n');
  w1.t.take();
  w2.t.take();
  const sub = h.connect();
  send(h, sub.conn, CLIENT_LINES.join('\n') + '\n');
  assert.deepEqual(w1.t.take(), CLIENT_LINES);
  assert.deepEqual(w2.t.take(), CLIENT_LINES);
  const cmds = h.events.filter((e) => e[0] === 'clientCommand').map((e) => e[2] as { name: string });
  assert.deepEqual(
    cmds.map((c) => c.name),
    ['USER_SYNC', 'FEDERATION_ACK', 'REMOVE_PUSHER', 'INVALIDATE_CACHE', 'USER_IP'],
  );
  assert.deepEqual(cmds[0], { name: 'USER_SYNC', userId: '@a:hs', state: 'start', lastSyncMs: 1490197670513 });
  assert.ok(sub.conn.open);
  // A writer's own client commands are not echoed back to it.
  send(h, w1.conn, 'FEDERATION_ACK 43\n');
  assert.deepEqual(w1.t.take(), []);
  assert.deepEqual(w2.t.take(), ['FEDERATION_ACK 43']);
});

test('a writer that connects later first hears USER_SYNC start for every user syncing now', () => {
  const h = fakeHub();
  const a = h.connect();
  const b = h.connect();
  send(h, a.conn, 'USER_SYNC @a:hs start 1\nUSER_SYNC @b:hs start 2\n');
  send(h, b.conn, 'USER_SYNC @b:hs start 3\nUSER_SYNC @c:hs start 4\nUSER_SYNC @c:hs end 5\n');
  const w = h.connect();
  w.t.take();
  send(h, w.conn, 'AUTH w-secret\n');
  assert.deepEqual(w.t.take(), [`USER_SYNC @a:hs start ${h.clock.now}`, `USER_SYNC @b:hs start ${h.clock.now}`]);
  assert.deepEqual(h.hub.syncingUsers(), ['@a:hs', '@b:hs']);
});

test('writers hear presence folded over connections: the first start of a user, the end of its last connection', () => {
  const h = fakeHub();
  const w = h.connect();
  send(h, w.conn, 'AUTH w-secret\n');
  w.t.take();
  const a = h.connect();
  const b = h.connect();
  send(h, a.conn, 'USER_SYNC @u:hs start 1\nUSER_SYNC @u:hs start 2\n');
  send(h, b.conn, 'USER_SYNC @u:hs start 3\nUSER_SYNC @v:hs end 4\n');
  assert.deepEqual(w.t.take(), ['USER_SYNC @u:hs start 1'], 'one start, however many connections sync the user');
  send(h, a.conn, 'USER_SYNC @u:hs end 5\n');
  assert.deepEqual(w.t.take(), [], 'still syncing on b');
  send(h, b.conn, 'USER_SYNC @u:hs end 6\n');
  assert.deepEqual(w.t.take(), ['USER_SYNC @u:hs end 6']);
  const cmds = h.events.filter((e) => e[0] === 'clientCommand').length;
  assert.equal(cmds, 6, "every USER_SYNC is still reported as a 'command'");
});

test("a subscriber's close ends its users for writers, once no other connection has them syncing", () => {
  const h = fakeHub();
  const w = h.connect();
  send(h, w.conn, 'AUTH w-secret\n');
  const a = h.connect();
  const b = h.connect();
  send(h, a.conn, 'USER_SYNC @a:hs start 1\nUSER_SYNC @both:hs start 1\n');
  send(h, b.conn, 'USER_SYNC @both:hs start 2\n');
  w.t.take();
  h.clock.now += 1000;
  a.conn.transportClosed();
  h.settle();
  assert.deepEqual(w.t.take(), [`USER_SYNC @a:hs end ${h.clock.now}`]);
  const presence = h.events.filter((e) => e[0] === 'presence').map((e) => e[1] as PresenceChange);
  assert.deepEqual(
    presence.map((p) => [p.userId, p.syncing, p.connection.id]),
    [
      ['@a:hs', true, a.conn.id],
      ['@both:hs', true, a.conn.id],
      ['@both:hs', true, b.conn.id],
      ['@a:hs', false, a.conn.id],
      ['@both:hs', false, a.conn.id],
    ],
  );
  b.conn.close('protocol_error', 'bye');
  h.settle();
  assert.deepEqual(w.t.take(), [`USER_SYNC @both:hs end ${h.clock.now}`]);
  assert.deepEqual(h.hub.syncingUsers(), []);
});

test('an ERROR from a client is reported and the connection stays open', () => {
  const h = fakeHub();
  const c = h.connect();
  send(h, c.conn, 'ERROR something odd\n');
  assert.ok(c.conn.open);
  assert.deepEqual(h.events.filter((e) => e[0] === 'remoteError').map((e) => e[2]), ['something odd']);
});

test('publishing in-process stores rows under a token above the head, and advance() stores a POSITION', () => {
  const h = fakeHub();
  const s = h.connect();
  send(h, s.conn, 'REPLICATE caches NOW\n');
  s.t.take();
  h.hub.appendEncoded('caches', 3, Buffer.from('RDATA caches batch [1]\nRDATA caches 3 [2]\n'), 2);
  assert.throws(() => h.hub.appendEncoded('caches', 3, Buffer.from('RDATA caches 3 [3]\n'), 1), { code: 'TOKEN_NOT_RISING' });
  h.hub.advance(h.hub.requireStream('caches'), 9);
  h.settle();
  assert.deepEqual(s.t.take(), ['RDATA caches batch [1]', 'RDATA caches 3 [2]', 'POSITION caches 9']);
  assert.equal(h.hub.stream('caches')!.log.head, 9);
  assert.equal(h.hub.stream('caches')!.rowsWritten, 2);
});

test('restart() drops the history: live subscribers get POSITION, catching-up ones and older tokens the too-old ERROR', () => {
  const h = fakeHub();
  const w = h.connect();
  send(h, w.conn, 'AUTH w-secret\n');
  // One chunk per row: one log entry each, so a catch-up reads them over several writes.
  for (let t = 1; t <= 100; t++) send(h, w.conn, rows('events', [t]));
  const live = h.connect();
  send(h, live.conn, 'REPLICATE events NOW\n');
  assert.deepEqual(live.t.take().slice(-1), ['POSITION events 100']);
  // A subscriber in the middle of its catch-up, its socket full.
  const behind = h.connect();
  behind.t.take();
  behind.t.accepting = false;
  send(h, behind.conn, 'REPLICATE events 0\n');
  const sent = behind.t.take();
  assert.ok(sent.length > 0 && sent.length < 100, 'part of the catch-up went out');
  const lastSent = Number(sent.at(-1)!.split(' ')[2]);

  h.hub.restart(h.hub.requireStream('events'), 500);
  h.settle();
  assert.deepEqual(live.t.take(), ['POSITION events 500']);
  const log = h.hub.requireStream('events').log;
  assert.deepEqual([log.head, log.oldest, log.retainedRows], [500, 500, 0]);
  behind.t.accepting = true;
  behind.conn.drained();
  h.settle();
  assert.deepEqual(behind.t.take(), [
    `ERROR token ${lastSent} is older than the oldest retained token 500 (stream=events oldest=500 head=500)`,
  ]);
  assert.equal(behind.conn.open, false);

  // Rows after the restart go live and to catch-ups from the restart token; older tokens are refused.
  send(h, w.conn, rows('events', [501]));
  assert.deepEqual(live.t.take(), [rows('events', [501]).trimEnd()]);
  const fromStart = h.connect();
  fromStart.t.take();
  send(h, fromStart.conn, 'REPLICATE events 500\n');
  assert.deepEqual(fromStart.t.take(), [rows('events', [501]).trimEnd(), 'POSITION events 501']);
  const fromOld = h.connect();
  fromOld.t.take();
  send(h, fromOld.conn, 'REPLICATE events 100\n');
  assert.deepEqual(fromOld.t.take(), ['ERROR token 100 is older than the oldest retained token 500 (stream=events oldest=500 head=501)']);
  assert.throws(() => h.hub.restart(h.hub.requireStream('events'), 400), RangeError, 'a restart never moves the head back');
});

test('streams advance with nobody subscribed, and a later catch-up sees everything retained', () => {
  const h = fakeHub();
  const w = h.connect();
  send(h, w.conn, 'AUTH w-secret\n' + rows('events', [1, 2, 3]) + 'POSITION events 10\n');
  assert.equal(h.hub.stream('events')!.log.head, 10);
  const s = h.connect();
  s.t.take();
  send(h, s.conn, 'REPLICATE events 2\n');
  const lines = s.t.take();
  assert.equal(lines[0], rows('events', [3]).trimEnd());
  assert.equal(lines.at(-1), 'POSITION events 10');
});

test("a catch-up over a writer's POSITIONs sends its rows, then one POSITION at the head", () => {
  const h = fakeHub();
  const w = h.connect();
  send(h, w.conn, 'AUTH w-secret\n' + rows('events', [1]) + 'POSITION events 3\n' + rows('events', [4]) + 'POSITION events 6\n');
  const s = h.connect();
  s.t.take();
  send(h, s.conn, 'REPLICATE events 0\n');
  assert.deepEqual(s.t.take(), [...rows('events', [1, 4]).trimEnd().split('\n'), 'POSITION events 6']);
});

test('many subscribers catching up over the same range read the same log Buffers', () => {
  const h = fakeHub({ createLog: () => new MemoryStreamLog() });
  const w = h.connect();
  send(h, w.conn, 'AUTH w-secret\n' + rows('events', [1, 2, 3, 4, 5]));
  const subs = Array.from({ length: 5 }, () => h.connect());
  for (const s of subs) send(h, s.conn, 'REPLICATE events 0\n');
  const first = subs[0]!.t.written[2]!;
  assert.equal(first.toString(), rows('events', [1, 2, 3, 4, 5]));
  for (const s of subs) assert.equal(s.t.written[2], first, 'the same Buffer, not a copy');
});
