import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fakeHub, send } from './support/fake-hub.js';

const KiB = 1024;

/** A connection holding `bytes` of one unfinished NAME line. */
function holding(h: ReturnType<typeof fakeHub>, bytes: number) {
  const c = h.connect();
  c.t.take();
  send(h, c.conn, `NAME ${'a'.repeat(bytes - 5)}`);
  return c;
}

test('past the budget of unfinished lines, the connections holding the most are cut first, until it fits', () => {
  const h = fakeHub({ maxPartialLineBytes: 100 * KiB, maxLineBytes: 64 * KiB });
  const small = holding(h, 20 * KiB);
  const large = holding(h, 45 * KiB);
  const middle = holding(h, 30 * KiB);
  assert.equal(h.hub.lineBudget.heldBytes, 95 * KiB);
  assert.ok(small.conn.open && large.conn.open && middle.conn.open, 'under the budget nobody is cut');
  const last = holding(h, 10 * KiB);
  // 105 KiB held: cutting the largest (45 KiB) brings it to 60 KiB; nobody else is cut.
  assert.ok(!large.conn.open);
  assert.deepEqual(large.t.take(), [
    `ERROR unfinished lines of all connections over their budget of ${100 * KiB} bytes: the connections holding the most are closed first, and this one held ${45 * KiB} bytes`,
  ]);
  assert.ok(large.t.ended);
  assert.ok(small.conn.open && middle.conn.open && last.conn.open);
  assert.equal(h.hub.lineBudget.heldBytes, 60 * KiB);
  assert.deepEqual(h.events.filter((e) => e[0] === 'closed').map((e) => e[2]), ['partial_line_budget']);
});

test('the connection whose chunk crosses the budget is cut when it holds the most, and its bytes are released', () => {
  const h = fakeHub({ maxPartialLineBytes: 70 * KiB, maxLineBytes: 64 * KiB });
  const other = holding(h, 20 * KiB);
  const grower = holding(h, 20 * KiB);
  send(h, grower.conn, 'b'.repeat(20 * KiB));
  assert.ok(other.conn.open, 'under the budget');
  send(h, grower.conn, 'b'.repeat(20 * KiB));
  assert.ok(!grower.conn.open);
  assert.match(grower.t.take().at(-1)!, /^ERROR unfinished lines of all connections over their budget .* this one held 61440 bytes$/);
  assert.ok(other.conn.open);
  assert.equal(h.hub.lineBudget.heldBytes, 20 * KiB);
});

test('what a connection holds leaves the budget when its line ends, when it is cut for another reason and when its peer goes', () => {
  const h = fakeHub({ maxPartialLineBytes: 1024 * KiB });
  const finishes = holding(h, 1_000);
  const tooLong = holding(h, 1_000);
  const goes = holding(h, 1_000);
  assert.equal(h.hub.lineBudget.heldBytes, 3_000);
  send(h, finishes.conn, ' b\nPING 1');
  assert.equal(h.hub.lineBudget.heldBytes, 2_006, 'the next unfinished line (PING 1) counts');
  send(h, tooLong.conn, 'x'.repeat(4096));
  assert.match(tooLong.t.take().at(-1)!, /^ERROR line too long/);
  assert.equal(h.hub.lineBudget.heldBytes, 1_006);
  goes.conn.transportClosed();
  assert.equal(h.hub.lineBudget.heldBytes, 6);
  send(h, finishes.conn, '\n');
  assert.equal(h.hub.lineBudget.heldBytes, 0);
  assert.ok(finishes.conn.open);
});
