import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sweepAction, WriteProgress, type SweepTimes } from '../../src/core/connection-sweep.js';

const LIMITS = { pingIntervalMs: 5_000, pingTimeoutMs: 25_000, lineTimeoutMs: 30_000, maxStallMs: 10_000 };
const T0 = 1_490_197_665_618;

const quiet: SweepTimes = { lastHeardMs: T0, lastSentMs: T0, timeoutArmed: true, lineStartedMs: null, stalledMs: null };

test('a connection heard and written to within every limit is owed nothing', () => {
  assert.equal(sweepAction(T0 + 4_999, quiet, LIMITS), null);
});

test('half a line held past the line timeout is cut, whether or not the peer ever pinged', () => {
  const holding = { ...quiet, lastHeardMs: T0 + 29_000, lastSentMs: T0 + 30_000, timeoutArmed: false, lineStartedMs: T0 };
  assert.equal(sweepAction(T0 + 30_000, holding, LIMITS), null);
  assert.equal(sweepAction(T0 + 30_001, holding, LIMITS), 'line-timeout');
});

test('the line timeout wins over a ping timeout, which wins over a stall', () => {
  const everything = { ...quiet, lineStartedMs: T0, stalledMs: 60_000 };
  assert.equal(sweepAction(T0 + 40_000, everything, LIMITS), 'line-timeout');
  assert.equal(sweepAction(T0 + 40_000, { ...everything, lineStartedMs: null }, LIMITS), 'ping-timeout');
  assert.equal(sweepAction(T0 + 40_000, { ...everything, lineStartedMs: null, lastHeardMs: T0 + 39_000 }, LIMITS), 'stall');
});

test('a blocked socket is cut only past the stall limit, and is never pinged behind its queued bytes', () => {
  const blocked = { ...quiet, lastHeardMs: T0 + 9_000, stalledMs: 10_000 };
  assert.equal(sweepAction(T0 + 9_000, blocked, LIMITS), null, 'a ping is due, but the socket is blocked');
  assert.equal(sweepAction(T0 + 9_000, { ...blocked, stalledMs: 10_001 }, LIMITS), 'stall');
  assert.equal(sweepAction(T0 + 9_000, { ...blocked, stalledMs: null }, LIMITS), 'ping');
});

test('write progress: unsent bytes that fall count as progress; unsent bytes that stay are a stall that grows', () => {
  const progress = new WriteProgress(T0);
  progress.wrote(T0, 1_000);
  assert.equal(progress.stalledFor(T0 + 3_000, 1_000), 3_000);
  assert.equal(progress.stalledFor(T0 + 4_000, 400), 0, 'the transport took 600 bytes');
  assert.equal(progress.stalledFor(T0 + 9_000, 400), 5_000);
  progress.drained(T0 + 9_500);
  assert.equal(progress.stalledFor(T0 + 9_600, 400), 100);
  assert.equal(progress.lastSentMs, T0);
});
