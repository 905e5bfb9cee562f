// The chaos run's checker (chaos-input.ts) sees each way a subscriber can go
// wrong, so a green chaos run means the rows were right.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SequenceChecker, publishSteps, rowJsonAt, rowsAt } from './chaos-input.js';

const SEED = 5;
/** The rows of token `token` of stream `s`, as a subscriber receives them. */
const rowsOf = (s: number, token: number): Buffer[] => Array.from({ length: rowsAt(SEED, s, token) }, (_, k) => Buffer.from(rowJsonAt(SEED, s, token, k)));

test('the input gives each stream tokens 1, 2, 3, ... with the rows the checker expects, and one in five tokens a batch', () => {
  const checker = new SequenceChecker(SEED);
  let batches = 0;
  let steps = 0;
  for (const step of publishSteps(SEED, 10_000)) {
    steps++;
    if (step.rows.length > 1) batches++;
    checker.receive(step.stream, step.token, step.rows.map((r) => Buffer.from(JSON.stringify(r))));
  }
  assert.equal(checker.fault, null);
  assert.ok(checker.rowsReceived.reduce((a, b) => a + b) >= 10_000);
  assert.ok(batches > steps / 8 && batches < steps / 3, `${batches} batches in ${steps} tokens`);
});

test('the checker names a gap, a duplicate, a reorder, a row changed and a batch cut short', () => {
  const cases: [string, (c: SequenceChecker) => void, RegExp][] = [
    ['gap', (c) => { c.receive('a', 1, rowsOf(0, 1)); c.receive('a', 3, rowsOf(0, 3)); }, /a gap: 2 to 2 missing/],
    ['duplicate', (c) => { c.receive('a', 1, rowsOf(0, 1)); c.receive('a', 1, rowsOf(0, 1)); }, /token 1 again/],
    ['reorder', (c) => { c.receive('b', 2, rowsOf(1, 2)); c.receive('b', 1, rowsOf(1, 1)); }, /a gap: 1 to 1 missing/],
    ['changed', (c) => c.receive('c', 1, [Buffer.from('["c",1,0,"y"]'), ...rowsOf(2, 1).slice(1)]), /row 0 is \["c",1,0,"y"\]/],
    ['short batch', (c) => {
      const t = Array.from({ length: 50 }, (_, i) => i + 1).find((tok) => rowsAt(SEED, 0, tok) > 1)!;
      for (let tok = 1; tok < t; tok++) c.receive('a', tok, rowsOf(0, tok));
      c.receive('a', t, rowsOf(0, t).slice(1));
    }, /rows, the writer wrote/],
  ];
  for (const [name, play, what] of cases) {
    const c = new SequenceChecker(SEED);
    play(c);
    assert.ok(c.fault !== null, name);
    assert.match(c.fault.what, what, name);
  }
});
