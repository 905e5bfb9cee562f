import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UnstoredRows } from '../../src/core/unstored-rows.js';
import { encodeRows } from '../../src/core/row-encoding.js';

const text = (bufs: Buffer[]): string => Buffer.concat(bufs).toString('utf8');

test('hands out each entry once per connection, and all unstored ones again after a rewind', () => {
  const u = new UnstoredRows(100, 1 << 20);
  u.add('events', 1, encodeRows('events', 1, ['a']), 1);
  u.add('events', 2, encodeRows('events', 2, ['b', 'c']), 2);
  assert.equal(text(u.takeUnsent('events')), 'RDATA events 1 "a"\nRDATA events batch "b"\nRDATA events 2 "c"\n');
  assert.deepEqual(u.takeUnsent('events'), []);
  u.add('events', 3, encodeRows('events', 3, ['d']), 1);
  assert.equal(text(u.takeUnsent('events')), 'RDATA events 3 "d"\n');
  assert.equal(u.stored('events', 1), 1);
  u.rewind('events');
  assert.equal(text(u.takeUnsent('events')), 'RDATA events batch "b"\nRDATA events 2 "c"\nRDATA events 3 "d"\n');
  assert.equal(u.rows, 3);
});

test('forgets everything up to a stored token, whatever was sent', () => {
  const u = new UnstoredRows(100, 1 << 20);
  for (let t = 1; t <= 2000; t++) u.add('s', t, encodeRows('s', t, [t]), 1);
  assert.equal(u.stored('s', 1500), 1500);
  assert.equal(u.rows, 500);
  assert.equal(text(u.takeUnsent('s')).split('\n')[0], 'RDATA s 1501 1501');
  assert.equal(u.stored('s', 5000), 500);
  assert.equal(u.bytes, 0);
  assert.deepEqual(u.takeUnsent('s'), []);
});

test('has room up to its row and byte bounds, and always when empty', () => {
  const u = new UnstoredRows(3, 1000);
  assert.equal(u.hasRoom(10, 5000), true);
  u.add('s', 1, encodeRows('s', 1, [1, 2]), 2);
  assert.equal(u.hasRoom(1, 0), true);
  assert.equal(u.hasRoom(2, 0), false);
  u.stored('s', 1);
  assert.equal(u.hasRoom(2, 0), true);
});
