import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeTransport, fakeHub } from './support/fake-hub.js';

test('connections from one host past maxConnectionsPerAddress are refused with ERROR; other hosts are not, and a closed one frees its place', () => {
  const h = fakeHub({ maxConnectionsPerAddress: 2 });
  const open = (address: string) => {
    const t = new FakeTransport();
    const conn = h.hub.accept(t, 'tcp', address);
    h.settle();
    return { conn, t };
  };
  const first = open('10.0.0.1:40001');
  open('10.0.0.1:40002');
  const third = open('10.0.0.1:40003');
  assert.deepEqual(third.t.take().at(-1), 'ERROR too many connections from 10.0.0.1 (limit 2 per address); try again later');
  assert.ok(third.t.ended && !third.conn.open);
  const elsewhere = open('::1:40004');
  assert.ok(elsewhere.conn.open, 'another host has its own count');
  const page = open('10.0.0.2');
  assert.ok(page.conn.open, 'an address without a port (uWS WebSocket peers) counts as its host');
  // The refused connection and a closed one leave the count once their transports are gone.
  third.conn.transportClosed();
  first.conn.transportClosed();
  const again = open('10.0.0.1:40005');
  assert.ok(again.conn.open);
  assert.deepEqual(h.events.filter((e) => e[0] === 'closed').map((e) => e[2]), ['too_many_connections', 'peer_closed']);
});
