// The status feed's numbers, on a real server's hub with a fake clock: rows/s
// over a window (a burst does not read as 0 a second later), the sparkline's
// history, uptime, version and the queue limits; and what a page scoped by a
// read list is shown of a followed Synapse pair's subscribers.
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { MemoryStreamLog } from '../../src/core/stream-log.js';
import { RATE_HISTORY, RATE_WINDOW_MS, StatusFeed } from '../../src/bindings/status-feed.js';
import { ReplicationServer, hubOf } from '../../src/server.js';
import { VERSION } from '../../src/version.js';

describe('StatusFeed', () => {
  it('averages rows/s over the window and keeps one rate per interval for the sparkline', async (t) => {
    const server = new ReplicationServer({ streams: ['events'], maxQueueCommands: 123, maxQueueBytes: 4567 });
    t.after(() => server.close());
    let now = 1_000_000;
    const feed = new StatusFeed(hubOf(server), { clock: () => now, intervalMs: 1000 });
    t.after(() => feed.close());
    const events = (): { rowsPerSec: number; rateHistory: number[] } => feed.snapshot().streams.find((s) => s.name === 'events')!;

    // A burst of 50 rows within one second, then silence.
    for (let i = 0; i < 50; i++) await server.publish('events', [[i]]);
    now += 1000;
    feed.publish();
    assert.equal(events().rowsPerSec, 50);
    for (let s = 2; s <= 5; s++) {
      now += 1000;
      feed.publish();
    }
    // Five seconds on, the window still holds the burst: 50 rows over 5 s.
    assert.equal(events().rowsPerSec, 10);
    assert.deepEqual(events().rateHistory, [50, 0, 0, 0, 0]);
    for (let s = 6; s <= RATE_WINDOW_MS / 1000 + 1; s++) {
      now += 1000;
      feed.publish();
    }
    assert.equal(events().rowsPerSec, 0, 'past the window, the burst is out of the average');
    for (let s = 0; s < RATE_HISTORY; s++) {
      now += 1000;
      feed.publish();
    }
    assert.equal(events().rateHistory.length, RATE_HISTORY);

    const snap = feed.snapshot();
    assert.equal(snap.version, VERSION);
    assert.equal(snap.uptimeSeconds, (now - 1_000_000) / 1000);
    assert.deepEqual(snap.limits, { maxQueueCommands: 123, maxQueueBytes: 4567 });
    assert.deepEqual(snap.cuts, []);
  });

  it("shows a page whose read list names a followed stream the subscribers of that stream's pairs, with their instance", async (t) => {
    const server = new ReplicationServer({ streams: [] });
    t.after(() => server.close());
    const log = new MemoryStreamLog({ startToken: 1040 });
    hubOf(server).followed().pairLog('events', 'event_persister1', log);
    log.append({ firstToken: 1041, lastToken: 1041, bytes: Buffer.from('RDATA events event_persister1 1041 ["$a"]\n'), lines: 1, rows: 1 });
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
    const socket = net.connect(port, '127.0.0.1');
    t.after(() => socket.destroy());
    socket.on('data', () => {});
    socket.write('REPLICATE events event_persister1 1040\n');
    const deadline = Date.now() + 5000;
    while (!server.connections().some((c) => c.subscriptions().length > 0)) {
      assert.ok(Date.now() < deadline, 'the subscription within 5 s');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const feed = new StatusFeed(hubOf(server), { intervalMs: 1000 });
    t.after(() => feed.close());
    const shown = (scope: ReadonlySet<string> | null) => feed.snapshot(scope).connections.listed.flatMap((c) => c.streams.map((x) => [x.stream, x.instance, x.lastToken]));
    assert.deepEqual(shown(new Set(['events'])), [['events', 'event_persister1', 1041]]);
    assert.deepEqual(shown(null), [['events', 'event_persister1', 1041]]);
    assert.deepEqual(shown(new Set(['typing'])), [], 'not to a page that may not read it');
  });
});
