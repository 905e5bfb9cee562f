import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthFailures, hostOf } from '../../src/core/auth-failures.js';

test('hostOf takes the port off IPv4 and IPv6 addresses, and leaves an address without one', () => {
  assert.equal(hostOf('127.0.0.1:5431'), '127.0.0.1');
  assert.equal(hostOf('::1:5431'), '::1');
  assert.equal(hostOf('10.0.0.7'), '10.0.0.7');
  assert.equal(hostOf('unknown'), 'unknown');
});

test('a host is held back only past the limit, only within the window, and one host never holds back another', () => {
  const f = new AuthFailures(3, 1_000);
  for (let i = 0; i < 3; i++) {
    assert.equal(f.retryAfter('a', 0), 0);
    f.failed('a', 0);
  }
  assert.equal(f.retryAfter('a', 400), 600);
  assert.equal(f.retryAfter('b', 400), 0);
  assert.equal(f.retryAfter('a', 1_000), 0, 'the window is over');
  f.failed('a', 1_000);
  assert.equal(f.retryAfter('a', 1_001), 0, 'counting starts again');
});

test('it remembers at most maxHosts hosts, forgetting the oldest first', () => {
  const f = new AuthFailures(1, 10_000, 2);
  f.failed('a', 0);
  f.failed('b', 1);
  f.failed('c', 2);
  assert.equal(f.retryAfter('a', 3), 0, 'a was forgotten');
  assert.ok(f.retryAfter('b', 3) > 0 && f.retryAfter('c', 3) > 0);
});
