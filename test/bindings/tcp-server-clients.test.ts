import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClientActionCommand } from '../../src/core/commands.js';
import type { PresenceChange } from '../../src/core/hub-types.js';
import { eventually, greeted, startServer } from './support/raw-peer.js';
import { hubOf } from '../../src/server.js';

const CLIENT_LINES = [
  'USER_SYNC @a:hs start 1490197670513',
  'FEDERATION_ACK 42',
  'REMOVE_PUSHER m.http key/+= @a:hs',
  'INVALIDATE_CACHE get_user_by_id ["@a:hs", {"k": [1, 2]}]',
  'USER_IP @a:hs ["tok","10.0.0.1","Mozilla\\/5.0 (X11)","DEV",1490197670513]',
];

test("client commands reach writer connections verbatim and are emitted as 'command' events", { timeout: 5_000 }, async (t) => {
  const f = await startServer({ writerToken: 'w' });
  t.after(() => f.close());
  const commands: ClientActionCommand[] = [];
  f.server.on('command', (cmd) => commands.push(cmd));
  const w1 = await greeted(f, 'w');
  const w2 = await greeted(f, 'w');
  await eventually(() => f.server.connections().filter((c) => c.role === 'writer').length === 2, 'two writers');
  const sub = await greeted(f);
  sub.send('NAME synapse.app.synchrotron', ...CLIENT_LINES);
  for (const w of [w1, w2]) {
    await w.line(CLIENT_LINES.at(-1)!);
    assert.deepEqual(w.content(), CLIENT_LINES);
  }
  assert.deepEqual(
    commands.map((c) => c.name),
    ['USER_SYNC', 'FEDERATION_ACK', 'REMOVE_PUSHER', 'INVALIDATE_CACHE', 'USER_IP'],
  );
  assert.deepEqual(commands[1], { name: 'FEDERATION_ACK', token: 42 });
  assert.deepEqual(commands[3], { name: 'INVALIDATE_CACHE', cacheFunc: 'get_user_by_id', keysJson: '["@a:hs", {"k": [1, 2]}]' });
  assert.equal(sub.closedBy, null);
});

test('a writer connecting later hears USER_SYNC start for users already syncing, and end when their connection closes', { timeout: 5_000 }, async (t) => {
  const f = await startServer({ writerToken: 'w' });
  t.after(() => f.close());
  const presence: [string, boolean, string | undefined][] = [];
  f.server.on('presence', (p: PresenceChange) => presence.push([p.userId, p.syncing, p.connection.name]));
  const a = await greeted(f);
  const b = await greeted(f);
  a.send('NAME a', 'USER_SYNC @a:hs start 1', 'USER_SYNC @shared:hs start 1');
  b.send('NAME b', 'USER_SYNC @shared:hs start 2', 'USER_SYNC @b:hs start 2', 'USER_SYNC @b:hs end 3');
  await eventually(() => presence.length === 5, 'five presence changes');
  const w = await greeted(f, 'w');
  await w.until(() => w.content().length === 2, 'USER_SYNC for the two... users syncing');
  assert.deepEqual(
    w.content().map((l) => l.replace(/ \d+$/, '')).sort(),
    ['USER_SYNC @a:hs start', 'USER_SYNC @shared:hs start'],
  );
  a.destroy();
  await w.line(/^USER_SYNC @a:hs end \d+$/);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(w.content().length, 3, '@shared:hs still syncing on b');
  b.send('REPLICATE nosuch NOW'); // the server closes b
  await w.line(/^USER_SYNC @shared:hs end \d+$/);
  assert.deepEqual(presence.slice(5), [
    ['@a:hs', false, 'a'],
    ['@shared:hs', false, 'a'],
    ['@shared:hs', false, 'b'],
  ]);
  assert.equal(w.closedBy, null);
});

test('with requireAuth every command but PING before AUTH gets ERROR and a close', { timeout: 5_000 }, async (t) => {
  const f = await startServer({ subscriberToken: 'sub', writerToken: 'w' });
  t.after(() => f.close());
  for (const line of ['NAME x', 'REPLICATE events NOW', 'REPLICATE ALL NOW', 'USER_SYNC @a:hs start 1', 'FEDERATION_ACK 1', 'ERROR hi']) {
    const p = await greeted(f);
    p.send('PING 1', line);
    await p.closed();
    const name = line.split(' ')[0];
    assert.deepEqual(p.content(), [`ERROR authentication required: send AUTH <token> before ${name}`], line);
  }
  const ok = await greeted(f, 'sub');
  ok.send('PING 1', 'NAME worker', 'REPLICATE events NOW');
  await ok.line('POSITION events 0');
  const w = await greeted(f, 'w');
  w.send('RDATA events 1 ["x"]');
  await ok.line('RDATA events 1 ["x"]');
  const bad = await greeted(f, 'nope');
  await bad.closed();
  assert.deepEqual(bad.content(), ['ERROR AUTH failed: the token matches no configured credential']);
});

test('a subscriber credential limits the streams it may read', { timeout: 5_000 }, async (t) => {
  const f = await startServer({
    credentials: [
      { secret: 'events-only', role: 'subscriber', streams: ['events', 'typing'] },
      { secret: 'everything', role: 'subscriber' },
    ],
  });
  t.after(() => f.close());
  assert.equal(hubOf(f.server).options.requireAuth, true);
  const limited = await greeted(f, 'events-only');
  limited.send('REPLICATE ALL NOW');
  await limited.until(() => limited.content().length === 2, 'two POSITIONs');
  assert.deepEqual(limited.content().sort(), ['POSITION events 0', 'POSITION typing 0']);
  await f.server.publish('caches', [['f', [], 1]]);
  await f.server.publish('events', ['e']);
  await limited.line('RDATA events 1 "e"');
  limited.send('REPLICATE caches 0');
  await limited.closed();
  assert.equal(limited.content().at(-1), 'ERROR not permitted to read stream caches');
  assert.ok(!limited.content().some((l) => l.includes('caches 1')));
  const all = await greeted(f, 'everything');
  all.send('REPLICATE caches 0');
  await all.line('POSITION caches 1');
});
