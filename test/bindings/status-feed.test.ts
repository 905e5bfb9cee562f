// The status feed's numbers, on a real server's hub with a fake clock: rows/s
// over a window (a burst does not read as 0 a second later), the sparkline's
// history, uptime, version and the queue limits.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
});
