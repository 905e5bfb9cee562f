import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_PING_INTERVAL_MS,
  DEFAULT_PING_TIMEOUT_MS,
  keepAliveAction,
  type KeepAliveTimes,
} from '../../src/core/keep-alive.js';

const SYNAPSE = { pingIntervalMs: 5_000, pingTimeoutMs: 25_000 };
const T0 = 1_490_197_665_618; // a wall-clock ms, as the sweeps pass

const times = (lastHeardMs: number, lastSentMs: number, timeoutArmed: boolean): KeepAliveTimes => ({
  lastHeardMs,
  lastSentMs,
  timeoutArmed,
});

test('the defaults are Synapse 2017\'s: a PING after 5 s of sending nothing, a timeout after 25 s of silence', () => {
  assert.deepEqual({ pingIntervalMs: DEFAULT_PING_INTERVAL_MS, pingTimeoutMs: DEFAULT_PING_TIMEOUT_MS }, SYNAPSE);
});

test('asks for nothing while something was sent within the ping interval', () => {
  assert.equal(keepAliveAction(T0, times(T0, T0, true), SYNAPSE), null);
  assert.equal(keepAliveAction(T0 + 4_999, times(T0, T0, true), SYNAPSE), null);
  assert.equal(keepAliveAction(T0 + 4_999, times(T0, T0, false), SYNAPSE), null);
});

test('asks for a PING once nothing was sent for exactly the ping interval, and again an interval after each one', () => {
  assert.equal(keepAliveAction(T0 + 5_000, times(T0 + 5_000, T0, true), SYNAPSE), 'ping');
  assert.equal(keepAliveAction(T0 + 60_000, times(T0 + 60_000, T0, false), SYNAPSE), 'ping');
  // The PING just sent is the new last-sent time.
  assert.equal(keepAliveAction(T0 + 9_999, times(T0 + 9_999, T0 + 5_000, true), SYNAPSE), null);
  assert.equal(keepAliveAction(T0 + 10_000, times(T0 + 10_000, T0 + 5_000, true), SYNAPSE), 'ping');
});

test('hearing the peer does not stand in for sending: the PING follows what was last sent', () => {
  // The peer times our silence, not its own.
  assert.equal(keepAliveAction(T0 + 5_000, times(T0 + 4_999, T0, true), SYNAPSE), 'ping');
});

test('times out an armed peer only after more than the timeout in silence', () => {
  assert.equal(keepAliveAction(T0 + 25_000, times(T0, T0 + 25_000, true), SYNAPSE), null);
  assert.equal(keepAliveAction(T0 + 25_001, times(T0, T0 + 25_001, true), SYNAPSE), 'time-out');
});

test('never times out a peer that has not pinged (a person on netcat), however long it is silent: it is only pinged', () => {
  assert.equal(keepAliveAction(T0 + 25_001, times(T0, T0 + 25_001, false), SYNAPSE), null);
  assert.equal(keepAliveAction(T0 + 3_600_000, times(T0, T0 + 3_595_000, false), SYNAPSE), 'ping');
});

test('a timeout wins over a PING that is due at the same sweep', () => {
  assert.equal(keepAliveAction(T0 + 30_000, times(T0, T0, true), SYNAPSE), 'time-out');
  assert.equal(keepAliveAction(T0 + 30_000, times(T0, T0, false), SYNAPSE), 'ping');
});

test('anything heard restarts the timeout, whenever it came', () => {
  assert.equal(keepAliveAction(T0 + 50_000, times(T0 + 25_000, T0 + 50_000, true), SYNAPSE), null);
  assert.equal(keepAliveAction(T0 + 50_001, times(T0 + 25_000, T0 + 50_001, true), SYNAPSE), 'time-out');
});

test('follows the timings it is given, not the defaults', () => {
  const fast = { pingIntervalMs: 40, pingTimeoutMs: 200 };
  assert.equal(keepAliveAction(39, times(0, 0, true), fast), null);
  assert.equal(keepAliveAction(40, times(0, 0, true), fast), 'ping');
  assert.equal(keepAliveAction(200, times(0, 200, true), fast), null);
  assert.equal(keepAliveAction(201, times(0, 201, true), fast), 'time-out');
});
