import { test } from 'node:test';
import assert from 'node:assert/strict';
import { catchUpRefusal, tooOldReason } from '../../src/core/catch-up-refusal.js';

test('our too-old ERROR reads back as a refusal of its stream', () => {
  for (const stream of ['events', 'tag_account_data', 'a.b-c_1']) {
    const reason = tooOldReason(stream, 0, 500, 900);
    assert.equal(reason, `token 0 is older than the oldest retained token 500 (stream=${stream} oldest=500 head=900)`);
    assert.deepEqual(catchUpRefusal(reason), { stream });
  }
  assert.deepEqual(catchUpRefusal('token 0 is older than the oldest retained token 500 (oldest=500 head=900)'), { stream: null }, 'an older build named no stream');
  // A followed Synapse pair's also names its instance, and still reads back as a refusal of its stream.
  const pair = tooOldReason('events', 0, 500, 900, 'event_persister1');
  assert.equal(pair, 'token 0 is older than the oldest retained token 500 (stream=events instance=event_persister1 oldest=500 head=900)');
  assert.deepEqual(catchUpRefusal(pair), { stream: 'events' });
});

test("Synapse 2017's refusal names its stream too, and other ERRORs refuse nothing", () => {
  assert.deepEqual(catchUpRefusal("failed to handle replicate: Exception('stream events has fallen behined')"), { stream: 'events' });
  assert.deepEqual(catchUpRefusal("failed to handle replicate: Exception('stream caches has fallen behined',)"), { stream: 'caches' });
  assert.deepEqual(catchUpRefusal('stream to_device has fallen behind'), { stream: 'to_device' });
  for (const other of ["failed to handle replicate: Exception('unknown stream %s', 'nosuch')", 'Failed to keep up', 'ping timeout']) {
    assert.equal(catchUpRefusal(other), null, other);
  }
});
