import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, type ConnectionOutcome } from '../../src/core/backoff.js';

const failed = (now: number): ConnectionOutcome => ({ now, openedAtMs: null, serverSeen: false, refused: false });

test('doubles from the initial delay up to the 5 s cap, with the jitter between half and all of it', () => {
  const low = new Backoff({ random: () => 0 });
  const high = new Backoff({ random: () => 0.999999 });
  const lows: number[] = [];
  const highs: number[] = [];
  for (let i = 0; i < 10; i++) {
    lows.push(low.next(failed(0)));
    highs.push(high.next(failed(0)));
  }
  assert.deepEqual(lows, [50, 100, 200, 400, 800, 1600, 2500, 2500, 2500, 2500]);
  assert.deepEqual(highs, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]);
});

test('never waits less than half the current step, whatever the random source says', () => {
  let seed = 7;
  const b = new Backoff({ random: () => ((seed = (seed * 16807) % 2147483647) / 2147483647) });
  let prevCeiling = 100;
  for (let i = 0; i < 50; i++) {
    const d = b.next(failed(i));
    const ceiling = Math.min(5000, 100 * 2 ** i);
    assert.ok(d >= ceiling / 2 && d <= ceiling, `try ${i}: ${d} not in [${ceiling / 2}, ${ceiling}]`);
    prevCeiling = ceiling;
  }
  assert.equal(prevCeiling, 5000);
});

test('starts again from the initial delay after a healthy connection, and only then', () => {
  const b = new Backoff({ random: () => 1, healthyAfterMs: 5000 });
  let now = 0;
  for (let i = 0; i < 6; i++) b.next(failed((now += 100)));
  assert.equal(b.attempts, 6);
  // Up, SERVER seen, but cut after 1 s: not healthy, the delay keeps growing.
  const opened = now;
  now += 1000;
  assert.equal(b.next({ now, openedAtMs: opened, serverSeen: true, refused: false }), 5000);
  // Up for 5 s without SERVER: not healthy either.
  assert.equal(b.next({ now: now + 5000, openedAtMs: now, serverSeen: false, refused: false }), 5000);
  // Up for 5 s with SERVER: healthy, back to the first step.
  now += 10_000;
  assert.equal(b.next({ now, openedAtMs: now - 5000, serverSeen: true, refused: false }), 100);
  assert.equal(b.next(failed(now)), 200);
});

test('waits the long wrong-remote delay after a wrong SERVER name, every time', () => {
  const b = new Backoff({ random: () => 0, refusedMs: 30_000 });
  const wrong = (now: number): ConnectionOutcome => ({ now, openedAtMs: now - 10, serverSeen: false, refused: true });
  for (let i = 0; i < 5; i++) assert.equal(b.next(wrong(i * 30_000)), 15_000);
});
