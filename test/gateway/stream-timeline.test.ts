import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StreamTimeline } from '../../src/gateway/stream-timeline.js';

describe('StreamTimeline', () => {
  it('tells rows and seconds behind the head from the tokens stored', () => {
    const t = new StreamTimeline();
    t.written('events', 1, 1, 1_000);
    t.written('events', 3, 2, 2_000); // a batch of three at token 2
    t.written('events', 1, 5, 4_000);
    assert.deepEqual(t.behind('events', 5, 9_000), { rows: 0, seconds: 0 });
    assert.deepEqual(t.behind('events', 2, 9_000), { rows: 1, seconds: 5 });
    assert.deepEqual(t.behind('events', 1, 9_000), { rows: 4, seconds: 7 });
    assert.deepEqual(t.behind('other', 0, 9_000), { rows: 0, seconds: 0 });
  });

  it('estimates past its capacity from the oldest sample it kept', () => {
    const t = new StreamTimeline(2);
    for (let i = 1; i <= 10; i++) t.written('s', 1, i, i * 1_000);
    // Kept: tokens 9 and 10; token 5 is 4 tokens before the oldest (6, 7, 8 estimated as a row each).
    assert.deepEqual(t.behind('s', 5, 10_000), { rows: 5, seconds: 1 });
  });
});
