// Hostile or broken peers at scale, over real sockets on 127.0.0.1: a writer
// that leaves a batch open, and a storm of connections opened and dropped
// beside a subscriber that must keep every row (docs/security.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { eventually, greeted, range, rdata, startServer, type RawPeer } from './support/raw-peer.js';

/** The tokens of the RDATA lines of `stream` a peer has read. */
function tokensOf(peer: RawPeer, stream: string): string[] {
  return peer.lines.filter((l) => l.startsWith(`RDATA ${stream} `)).map((l) => l.split(' ')[2]!);
}

test('a writer that leaves a batch open and goes away stores none of it; the next writer goes on from the head', { timeout: 10_000 }, async (t) => {
  const f = await startServer({ writerToken: 'w', streams: ['events'] });
  t.after(() => f.close());
  const watcher = await greeted(f);
  watcher.send('REPLICATE events NOW');
  await watcher.line('POSITION events 0');
  const first = await greeted(f, 'w');
  first.send(...rdata('events', [1]), 'RDATA events batch ["open-1"]', 'RDATA events batch ["open-2"]');
  await watcher.line(/^RDATA events 1 /);
  first.destroy();
  await eventually(() => f.server.connections().length === 1, 'the writer to be gone');

  const second = await greeted(f, 'w');
  second.send(...rdata('events', [2]));
  await watcher.line(/^RDATA events 2 /);
  assert.deepEqual(tokensOf(watcher, 'events'), ['1', '2'], 'the open batch reached no one');
  const late = await greeted(f);
  late.send('REPLICATE events 0');
  await late.line('POSITION events 2');
  assert.deepEqual(tokensOf(late, 'events'), ['1', '2'], 'and is not in the log');
});

test('10,000 connections opened and dropped in waves leave a subscriber beside them with every row, and nothing behind', { timeout: 60_000 }, async (t) => {
  const f = await startServer({ writerToken: 'w', streams: ['events'] });
  t.after(() => f.close());
  const reader = await greeted(f);
  reader.send('REPLICATE events NOW');
  await reader.line('POSITION events 0');
  const writer = await greeted(f, 'w');
  const storm = { opened: 0, failed: 0 };
  const WAVE = 500;
  const TOTAL = 10_000;
  let token = 0;
  for (let wave = 0; wave < TOTAL / WAVE; wave++) {
    // Each wave: half send a line and close, half are reset at once, while a row is written.
    await Promise.all(
      range(1, WAVE).map(
        (i) =>
          new Promise<void>((resolve) => {
            const s = net.connect({ host: '127.0.0.1', port: f.port });
            s.resume();
            s.on('error', () => {
              storm.failed++;
              resolve();
            });
            s.on('connect', () => {
              storm.opened++;
              if (i % 2 === 0) s.end('NAME storm\nREPLICATE events NOW\n');
              else s.resetAndDestroy();
            });
            s.on('close', () => resolve());
          }),
      ),
    );
    writer.send(...rdata('events', [++token]));
  }
  await reader.line(`RDATA events ${token} ["$${token}:hs","!r:hs","m.room.message","",null]`);
  assert.equal(storm.opened + storm.failed, 10_000);
  assert.ok(storm.opened >= 9_900, `${storm.opened} of 10,000 connected`);
  assert.deepEqual(tokensOf(reader, 'events').map(Number), range(1, token), 'every row once, in order');
  await eventually(() => f.server.connections().length === 2, 'only the reader and the writer to be left', 10_000);
});
