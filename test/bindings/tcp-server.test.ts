import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SYNAPSE_STREAMS } from '../../src/core/hub-types.js';
import type { DisconnectReason } from '../../src/core/hub-types.js';
import { eventually, greeted, range, startServer } from './support/raw-peer.js';
import { hubOf } from '../../src/server.js';

test('a person typing on netcat is greeted, answered, and never timed out before it PINGs', { timeout: 10_000 }, async (t) => {
  const f = await startServer({ pingIntervalMs: 40, pingTimeoutMs: 100 });
  t.after(() => f.close());
  const p = await f.peer();
  await p.line(/^PING \d+$/);
  assert.equal(p.lines[0], 'SERVER gw.test');
  const pingMs = Number(p.lines[1]!.slice(5));
  assert.ok(Math.abs(pingMs - Date.now()) < 60_000, 'PING carries the server clock in ms');
  // Typed a key at a time, CRLF line ends, blank lines, a line split over writes.
  for (const ch of 'NAME my terminal\r\n') {
    p.write(ch);
    await new Promise((r) => setTimeout(r, 2));
  }
  p.write('\r\n   \n');
  p.write('REPLICATE AL');
  await new Promise((r) => setTimeout(r, 30));
  p.write('L NOW\r\n');
  await p.until(() => p.content().length === SYNAPSE_STREAMS.length, 'a POSITION per stream');
  assert.deepEqual([...p.content()].sort(), SYNAPSE_STREAMS.map((s) => `POSITION ${s} 0`).sort());
  // Six ping timeouts of silence from the person: still open, and PINGed.
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(p.closedBy, null);
  assert.ok(p.lines.filter((l) => l.startsWith('PING ')).length >= 5, 'the server PINGs after each interval of silence');
  assert.equal(f.server.connections()[0]?.name, 'my terminal');
  const token = await f.server.publish('events', [['$1:hs', '!r:hs', 'm.room.message', '', null]]);
  await p.line(`RDATA events ${token} ["$1:hs","!r:hs","m.room.message","",null]`);
  assert.equal(p.content().length, SYNAPSE_STREAMS.length + 1);
});

test('half a line held for the line timeout is cut, however slowly it trickles in; a busy writer whose chunks end mid-line is not', { timeout: 10_000 }, async (t) => {
  const f = await startServer({ writerToken: 'w', pingIntervalMs: 1_000, lineTimeoutMs: 300 });
  t.after(() => f.close());
  const stalled = await f.peer();
  stalled.write('NAME never-ends');
  const trickle = await f.peer();
  const started = Date.now();
  const drip = setInterval(() => trickle.write('x'), 50);
  t.after(() => clearInterval(drip));
  // The trickle has pinged (its keep-alive timeout is armed) and the stalled peer has not: one rule for both.
  trickle.write('PING 1\nNAME slow');
  const writer = await f.peer();
  writer.send('AUTH w', 'REPLICATE events NOW');
  await writer.line('POSITION events 0');
  let token = 0;
  const busy = setInterval(() => {
    // Every chunk ends inside a line: the line in progress is always new.
    token++;
    writer.write(`RDATA events ${token} ["a"]\nRDATA events ${token + 1} `);
    token++;
    writer.write(`["b"]\n`.slice(0, 3));
    writer.write(`["b"]\n`.slice(3));
  }, 20);
  t.after(() => clearInterval(busy));
  await stalled.until(() => stalled.closedBy !== null, 'the stalled line cut', 5_000);
  assert.match(stalled.lines.at(-1)!, /^ERROR timed out in the middle of a line \(15 bytes, no end of line for 300 ms\)$/);
  await trickle.until(() => trickle.closedBy !== null, 'the trickling line cut', 5_000);
  assert.ok(Date.now() - started < 3_000, 'a trickle does not keep half a line alive');
  assert.match(trickle.lines.at(-1)!, /^ERROR timed out in the middle of a line/);
  await new Promise((r) => setTimeout(r, 800));
  clearInterval(busy);
  assert.equal(writer.closedBy, null, 'the busy writer stays');
  assert.ok(f.server.head('events') > 20, `the writer's rows were stored (head ${f.server.head('events')})`);
});

test('REPLICATE ALL NOW answers one POSITION per stream, then live rows of every stream', { timeout: 5_000 }, async (t) => {
  const f = await startServer();
  t.after(() => f.close());
  await f.server.publish('caches', [['f', ['@a:hs'], 1]]);
  f.server.advance('receipts', 7);
  const p = await greeted(f);
  p.send('REPLICATE ALL NOW');
  await p.until(() => p.content().length === SYNAPSE_STREAMS.length, 'a POSITION per stream');
  const heads: Record<string, number> = { caches: 1, receipts: 7 };
  assert.deepEqual(
    [...p.content()].sort(),
    SYNAPSE_STREAMS.map((s) => `POSITION ${s} ${heads[s] ?? 0}`).sort(),
  );
  await f.server.publish('typing', [['!r:hs', ['@a:hs']]]);
  await f.server.publish('events', [['$e:hs', '!r:hs', 'm.room.message', '', null]]);
  await p.line('RDATA events 1 ["$e:hs","!r:hs","m.room.message","",null]');
  assert.ok(p.lines.includes('RDATA typing 1 ["!r:hs",["@a:hs"]]'));
});

test('re-REPLICATE replaces the subscription: each later row arrives once', { timeout: 5_000 }, async (t) => {
  const f = await startServer();
  t.after(() => f.close());
  for (let i = 1; i <= 5; i++) await f.server.publish('events', [i]);
  const p = await greeted(f);
  p.send('REPLICATE events NOW', 'REPLICATE events NOW');
  await p.until(() => p.content().length === 2, 'two POSITIONs');
  await f.server.publish('events', [6]);
  p.send('REPLICATE events 3');
  await p.line('POSITION events 6', 3);
  await f.server.publish('events', [7]);
  p.send('REPLICATE events NOW');
  await p.line('POSITION events 7', 6);
  await f.server.publish('events', [8]);
  await p.line('RDATA events 8 8');
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(p.content(), [
    'POSITION events 5',
    'POSITION events 5',
    'RDATA events 6 6',
    'RDATA events 4 4',
    'RDATA events 5 5',
    'RDATA events 6 6',
    'POSITION events 6',
    'RDATA events 7 7',
    'POSITION events 7',
    'RDATA events 8 8',
  ]);
});

test('a token older than retention gets ERROR naming the stream, oldest= and head=, then the close', { timeout: 5_000 }, async (t) => {
  const f = await startServer({ retentionRows: 10 });
  t.after(() => f.close());
  for (let i = 1; i <= 30; i++) await f.server.publish('events', [i]);
  const reasons: DisconnectReason[] = [];
  f.server.on('disconnect', (_c, reason) => reasons.push(reason));
  const p = await greeted(f);
  p.send('REPLICATE events 5');
  await p.closed();
  assert.deepEqual(p.content(), ['ERROR token 5 is older than the oldest retained token 20 (stream=events oldest=20 head=30)']);
  assert.deepEqual(reasons, ['too_old']);
  // The oldest token itself is a complete catch-up.
  const q = await greeted(f);
  q.send('REPLICATE events 20');
  await q.line('POSITION events 30');
  assert.deepEqual(q.content(), [...range(21, 30).map((i) => `RDATA events ${i} ${i}`), 'POSITION events 30']);
});

test('a stream with the jump policy answers a too-old token with POSITION at the head', { timeout: 5_000 }, async (t) => {
  const f = await startServer({ retentionRows: 3 });
  t.after(() => f.close());
  for (let i = 1; i <= 10; i++) await f.server.publish('typing', [['!r:hs', [`@${i}:hs`]]]);
  const p = await greeted(f);
  p.send('REPLICATE typing 2');
  await p.line('POSITION typing 10');
  await f.server.publish('typing', [['!r:hs', []]]);
  await p.line('RDATA typing 11 ["!r:hs",[]]');
  assert.equal(p.closedBy, null);
});

test("a token ahead of the head gets POSITION at the head and a 'tokenAhead' event", { timeout: 5_000 }, async (t) => {
  const f = await startServer();
  t.after(() => f.close());
  await f.server.publish('events', ['a']);
  const ahead: [string, number, number][] = [];
  f.server.on('tokenAhead', (_c, stream, token, head) => ahead.push([stream, token, head]));
  const p = await greeted(f);
  p.send('REPLICATE events 500');
  await p.line('POSITION events 1');
  assert.deepEqual(ahead, [['events', 500, 1]]);
  assert.equal(hubOf(f.server).tokensAhead, 1);
  await f.server.publish('events', ['b']);
  await p.line('RDATA events 2 "b"');
});

test('an unknown stream gets ERROR and the close', { timeout: 5_000 }, async (t) => {
  const f = await startServer();
  t.after(() => f.close());
  const p = await greeted(f);
  p.send('REPLICATE nosuch 1');
  await p.closed();
  assert.deepEqual(p.content(), ['ERROR unknown stream: nosuch']);
});

test('batches keep their framing on the wire live and in catch-up, split across writer chunks or in CRLF', { timeout: 5_000 }, async (t) => {
  const f = await startServer({ writerToken: 'w' });
  t.after(() => f.close());
  const live = await greeted(f);
  live.send('REPLICATE caches NOW');
  await live.line('POSITION caches 0');
  const w = await greeted(f, 'w');
  await f.server.publish('caches', [['f', ['@a:hs'], 1], ['f', ['@b:hs'], 1], ['f', ['@c:hs'], 1]]);
  w.write('RDATA caches batch ["w1"]\nRDATA caches ba');
  await eventually(() => f.server.connections().some((c) => c.role === 'writer'), 'the AUTH');
  await new Promise((r) => setTimeout(r, 30));
  w.write('tch ["w2"]\n');
  await new Promise((r) => setTimeout(r, 30));
  w.write('RDATA caches 2 ["w3"]\nRDATA caches batch ["c1"]\r\nRDATA caches 3 ["c2"]\r\n');
  const expected = [
    'RDATA caches batch ["f",["@a:hs"],1]',
    'RDATA caches batch ["f",["@b:hs"],1]',
    'RDATA caches 1 ["f",["@c:hs"],1]',
    'RDATA caches batch ["w1"]',
    'RDATA caches batch ["w2"]',
    'RDATA caches 2 ["w3"]',
    'RDATA caches batch ["c1"]',
    'RDATA caches 3 ["c2"]',
  ];
  await live.line('RDATA caches 3 ["c2"]');
  assert.deepEqual(live.content().slice(1), expected);
  for (const [from, skip] of [[0, 0], [1, 3], [2, 6]] as const) {
    const p = await greeted(f);
    p.send(`REPLICATE caches ${from}`);
    await p.line('POSITION caches 3');
    assert.deepEqual(p.content(), [...expected.slice(skip), 'POSITION caches 3'], `catch-up from ${from}`);
  }
  assert.equal(f.server.head('caches'), 3);
});

test('close() sends ERROR server shutting down to every connection and resolves once the sockets are closed', { timeout: 10_000 }, async (t) => {
  const f = await startServer({ writerToken: 'w' });
  t.after(() => f.close());
  for (let i = 1; i <= 2000; i++) await f.server.publish('events', [`${i}`.padStart(200, '.')]);
  const subscriber = await greeted(f);
  subscriber.send('REPLICATE events NOW');
  await subscriber.line('POSITION events 2000');
  const writer = await greeted(f, 'w');
  const idle = await f.peer();
  // One stops reading mid-catch-up: its socket cannot close until it reads again.
  const paused = await f.peer();
  paused.send('REPLICATE events 0');
  await paused.line(/^RDATA events 1 /);
  paused.socket.pause();
  await eventually(() => f.server.connections().some((c) => c.role === 'writer'), 'the writer AUTH');
  assert.equal(f.server.connections().length, 4);
  let resolved = false;
  const closing = f.server.close().then(() => (resolved = true));
  for (const p of [subscriber, writer, idle]) {
    await p.closed();
    assert.equal(p.lines.at(-1), 'ERROR server shutting down');
  }
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(resolved, false, 'one socket is still open');
  paused.socket.resume();
  await paused.line('ERROR server shutting down');
  await paused.closed();
  await closing;
  assert.equal(f.server.connections().length, 0);
  await assert.rejects(greeted(f), 'no longer listening');
});

test('failed AUTHs are rate-limited per host: past ten in a minute every AUTH is refused until the minute is over', { timeout: 15_000 }, async (t) => {
  let now = 1_000_000;
  const f = await startServer({ subscriberToken: 's', clock: () => now });
  t.after(() => f.close());
  const tryAuth = async (secret: string): Promise<string> => {
    const p = await f.peer();
    p.send(`AUTH ${secret}`, 'REPLICATE events NOW');
    await p.until(() => p.lines.some((l) => l.startsWith('ERROR') || l.startsWith('POSITION')), 'an answer to AUTH');
    const answer = p.lines.find((l) => l.startsWith('ERROR') || l.startsWith('POSITION'))!;
    p.destroy();
    return answer;
  };
  for (let i = 0; i < 10; i++) assert.equal(await tryAuth(`guess-${i}`), 'ERROR AUTH failed: the token matches no configured credential');
  now += 1_000;
  assert.equal(await tryAuth('guess-10'), 'ERROR too many failed AUTH attempts from 127.0.0.1: try again in 59 s');
  assert.equal(await tryAuth('s'), 'ERROR too many failed AUTH attempts from 127.0.0.1: try again in 59 s', 'even the right token waits');
  now += 59_000;
  assert.equal(await tryAuth('s'), 'POSITION events 0', 'the right token works once the minute is over');
});
