import { test } from 'node:test';
import assert from 'node:assert/strict';
import { COMMAND_NAMES, SENT_BY, parseJson } from '../../src/core/commands.js';
import { ProtocolError } from '../../src/core/errors.js';

test('direction tables say who may send what', () => {
  assert.ok(SENT_BY.server.has('RDATA'));
  assert.ok(!SENT_BY.client.has('RDATA'));
  assert.ok(SENT_BY.writer.has('RDATA'));
  assert.ok(SENT_BY.writer.has('USER_SYNC'));
  assert.ok(!SENT_BY.server.has('REPLICATE'));
  assert.ok(!SENT_BY.client.has('SYNC'));
  // A gateway talking to its writers: what a server sends, and the client actions it passes on.
  for (const name of ['RDATA', 'POSITION', 'SERVER', 'USER_SYNC', 'FEDERATION_ACK', 'REMOVE_PUSHER', 'INVALIDATE_CACHE', 'USER_IP'] as const) {
    assert.ok(SENT_BY.gateway.has(name), name);
  }
  for (const name of ['NAME', 'REPLICATE', 'AUTH'] as const) assert.ok(!SENT_BY.gateway.has(name), name);
});

test('every command someone may send is a known name, and only those', () => {
  const sendable = new Set<string>();
  for (const names of Object.values(SENT_BY)) for (const name of names) sendable.add(name);
  assert.deepEqual([...COMMAND_NAMES].sort(), [...sendable].sort());
});

test('a JSON argument that does not parse is a BAD_JSON error naming its command', () => {
  assert.deepEqual(parseJson('[1,{"a":null}]', 'USER_IP'), [1, { a: null }]);
  assert.throws(
    () => parseJson('[1,', 'INVALIDATE_CACHE'),
    (err: unknown) => err instanceof ProtocolError && err.code === 'BAD_JSON' && err.message.startsWith('bad JSON in INVALIDATE_CACHE: '),
  );
});
