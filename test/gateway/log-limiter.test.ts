import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LogLimiter } from '../../src/gateway/log-limiter.js';

describe('LogLimiter', () => {
  it('lets a burst through, then a steady rate, per category, and counts what it held back', () => {
    const l = new LogLimiter({ perSecond: 10, burst: 5 });
    const allowed = Array.from({ length: 8 }, () => l.allow('connect', 0)).filter(Boolean).length;
    assert.equal(allowed, 5);
    assert.equal(l.allow('protocol_error', 0), true, 'another category has its own bucket');
    assert.equal(l.allow('connect', 100), true, 'one more after 100 ms at 10/s');
    assert.equal(l.allow('connect', 100), false);
    assert.deepEqual(l.takeSuppressed(), { connect: 4 });
    assert.deepEqual(l.takeSuppressed(), {});
  });
});
