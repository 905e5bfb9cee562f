// Property tests (fast-check) of the server connection through its host, the
// hub (test/core/support/fake-hub.ts): random runs of valid client commands,
// at most one invalid one, then anything, cut into random chunks, beside a
// writer writing rows and a subscriber reading them. Nothing throws out of
// receive(); an invalid command ends in one ERROR line and the close; a
// valid run keeps the connection open without ERROR; the subscriber beside
// it gets every row; queues stay within their limits. Failing runs that were
// found are kept as fixed examples.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { fakeHub, send, type FakeHub } from './support/fake-hub.js';
import { chunksOf } from './support/random-chunks.js';

/** fake-hub's limits. */
const MAX_LINE_BYTES = 4096;
const MAX_QUEUE_BYTES = 64 * 1024;

const word = fc.stringMatching(/^[a-z0-9._-]{1,16}$/);
const user = word.map((w) => `@${w}:hs`);
const stream = fc.constantFrom('events', 'caches', 'typing');
const token = fc.oneof(fc.constant('NOW'), fc.constant('now'), fc.nat(40).map(String));

/** Lines a subscriber may send; none closes the connection or draws an ERROR. */
const validLine: fc.Arbitrary<string> = fc.oneof(
  fc.nat().map((n) => `PING ${n}`),
  fc.constantFrom('PING', 'GENERATION', '', '   ', 'ERROR the client says something went wrong', 'REPLICATE ALL NOW'),
  word.map((w) => `NAME ${w}`),
  fc.tuple(stream, token).map(([s, t]) => `REPLICATE ${s} ${t}`),
  fc.tuple(user, fc.constantFrom('start', 'end'), fc.nat()).map(([u, s, ms]) => `USER_SYNC ${u} ${s} ${ms}`),
  fc.nat().map((n) => `FEDERATION_ACK ${n}`),
  fc.tuple(word, word, user).map(([a, k, u]) => `REMOVE_PUSHER ${a} ${k} ${u}`),
  fc.tuple(word, fc.array(word, { maxLength: 3 })).map(([f, keys]) => `INVALIDATE_CACHE ${f} ${JSON.stringify(keys)}`),
  fc.tuple(user, word).map(([u, tok]) => `USER_IP ${u} ${JSON.stringify([tok, '127.0.0.1', 'agent', null, 1])}`),
);

/** Commands a subscriber may not send, each refused with ERROR and a close (JSON rows and control characters are other tests' business). */
const invalidLine: fc.Arbitrary<string | Buffer> = fc.oneof(
  fc.stringMatching(/^[A-Z_]{1,12}$/).filter((n) => !KNOWN.has(n)).map((n) => `${n} x`),
  fc.constantFrom(
    'ping 1', 'replicate events NOW', 'name worker', 'Auth x',
    'RDATA events 1 [1]', 'RDATA events batch [1]', 'POSITION events 3', 'SERVER gw.test', 'SYNC 1',
    'REPLICATE nosuch NOW', 'REPLICATE events -1', 'REPLICATE events abc', 'REPLICATE events 99999999999999999999', 'REPLICATE events 1.5',
    'REPLICATE ALL 5', 'REPLICATE', 'REPLICATE events', 'NAME', 'FEDERATION_ACK xyz', 'FEDERATION_ACK',
    'AUTH not-a-token', 'USER_SYNC @u:hs stop 1', 'USER_SYNC @u:hs start', 'INVALIDATE_CACHE f [', 'USER_IP @u:hs {',
    'GET / HTTP/1.1', 'POST /replication HTTP/1.1',
  ),
  fc.integer({ min: MAX_LINE_BYTES + 1, max: 3 * MAX_LINE_BYTES }).map((n) => `PING ${'1'.repeat(n)}`),
  fc.constantFrom(Buffer.from([0x50, 0x49, 0x4e, 0x47, 0x20, 0xc3, 0x28]), Buffer.from([0x4e, 0x41, 0x4d, 0x45, 0x20, 0xff, 0xfe])),
);
const KNOWN = new Set(['SERVER', 'RDATA', 'POSITION', 'ERROR', 'PING', 'SYNC', 'NAME', 'REPLICATE', 'USER_SYNC', 'FEDERATION_ACK', 'REMOVE_PUSHER', 'INVALIDATE_CACHE', 'USER_IP', 'AUTH', 'GENERATION']);

const lineEnd = fc.constantFrom('\n', '\r\n');

interface Run {
  before: [string, string][];
  invalid: [string | Buffer, string] | null;
  after: [string, string][];
  /** Cut points, as fractions of the input's length. */
  cuts: number[];
  /** The writer writes a row after every this many chunks. */
  rowEvery: number;
}

const run: fc.Arbitrary<Run> = fc.record({
  before: fc.array(fc.tuple(validLine, lineEnd), { maxLength: 25 }),
  invalid: fc.option(fc.tuple(invalidLine, lineEnd), { nil: null }),
  after: fc.array(fc.tuple(validLine, lineEnd), { maxLength: 5 }),
  cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 30 }),
  rowEvery: fc.integer({ min: 1, max: 4 }),
});

function bytesOf(r: Run): Buffer {
  const parts: Buffer[] = r.before.map(([l, end]) => Buffer.from(l + end));
  if (r.invalid !== null) parts.push(Buffer.concat([Buffer.from(r.invalid[0]), Buffer.from(r.invalid[1])]));
  for (const [l, end] of r.after) parts.push(Buffer.from(l + end));
  return Buffer.concat(parts);
}

/** The fuzzed peer, with a subscriber reading events beside it and a writer writing them. */
function threeConnections(): { h: FakeHub; watcher: ReturnType<FakeHub['connect']>; writer: ReturnType<FakeHub['connect']>; peer: ReturnType<FakeHub['connect']> } {
  const h = fakeHub();
  const watcher = h.connect();
  send(h, watcher.conn, 'REPLICATE events NOW\n');
  const writer = h.connect();
  send(h, writer.conn, 'AUTH w-secret\n');
  return { h, watcher, writer, peer: h.connect() };
}

/** Plays a run; returns what the fuzzed peer was sent and what the subscriber beside it got. */
function play(r: Run): { h: FakeHub; peerLines: string[]; peerClosed: boolean; watched: number[]; written: number } {
  const { h, watcher, writer, peer } = threeConnections();
  let written = 0;
  for (const [i, chunk] of chunksOf(bytesOf(r), r.cuts).entries()) {
    peer.conn.receive(chunk);
    h.settle();
    assert.ok(peer.conn.queuedBytes <= MAX_QUEUE_BYTES, `${peer.conn.queuedBytes} bytes queued`);
    if (i % r.rowEvery === 0) send(h, writer.conn, `RDATA events ${++written} ["row",${written}]\n`);
  }
  send(h, writer.conn, `RDATA events ${++written} ["row",${written}]\n`);
  const watched = watcher.t
    .take()
    .filter((l) => l.startsWith('RDATA '))
    .map((l) => Number(l.split(' ')[2]));
  return { h, peerLines: peer.t.take(), peerClosed: !peer.conn.open && (peer.t.ended || peer.t.destroyed), watched, written };
}

function assertNeighbourGotEveryRow(p: { watched: number[]; written: number }): void {
  assert.deepEqual(p.watched, Array.from({ length: p.written }, (_, i) => i + 1));
}

test('random runs of valid commands in random chunks: the connection stays open, says no ERROR, and its neighbour gets every row', () => {
  fc.assert(
    fc.property(run.map((r) => ({ ...r, invalid: null })), (r) => {
      const p = play(r);
      assert.ok(!p.peerClosed, `closed; it was sent ${JSON.stringify(p.peerLines.slice(-3))}`);
      assert.deepEqual(p.peerLines.filter((l) => l.startsWith('ERROR')), []);
      assertNeighbourGotEveryRow(p);
    }),
    { numRuns: 300 },
  );
});

test('one invalid command anywhere in a valid run, in random chunks: one ERROR as the last line sent, the close, nothing after it acted on', () => {
  fc.assert(
    fc.property(
      run.filter((r) => r.invalid !== null),
      (r) => {
        const p = play(r);
        assert.ok(p.peerClosed, `still open after ${JSON.stringify(r.invalid)}`);
        const errors = p.peerLines.filter((l) => l.startsWith('ERROR'));
        assert.equal(errors.length, 1, JSON.stringify(p.peerLines.slice(-3)));
        assert.equal(p.peerLines.at(-1), errors[0]);
        assertNeighbourGotEveryRow(p);
      },
    ),
    { numRuns: 400 },
  );
});

test('arbitrary bytes in random chunks: nothing throws, a close always comes with an ERROR, and the neighbour gets every row', () => {
  const bytes = fc.uint8Array({ maxLength: 6000 }).map((a) => Buffer.from(a));
  fc.assert(
    fc.property(bytes, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 20 }), fc.integer({ min: 1, max: 4 }), (input, cuts, rowEvery) => {
      const { h, watcher, writer, peer } = threeConnections();
      peer.t.take();
      let written = 0;
      for (const [i, chunk] of chunksOf(input, cuts).entries()) {
        peer.conn.receive(chunk);
        h.settle();
        if (i % rowEvery === 0) send(h, writer.conn, `RDATA events ${++written} ["row",${written}]\n`);
      }
      const lines = peer.t.take();
      if (!peer.conn.open) assert.match(lines.at(-1) ?? '', /^ERROR /);
      const watched = watcher.t.take().filter((l) => l.startsWith('RDATA ')).map((l) => Number(l.split(' ')[2]));
      assertNeighbourGotEveryRow({ watched, written });
    }),
    { numRuns: 400 },
  );
});
