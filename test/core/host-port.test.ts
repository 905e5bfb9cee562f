import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHostPort } from '../../src/core/host-port.js';

test('HOST:PORT, IPv6 in brackets, the port within its range', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:9092', 1), { host: '127.0.0.1', port: 9092 });
  assert.deepEqual(parseHostPort('[::1]:0', 0), { host: '::1', port: 0 });
  assert.deepEqual(parseHostPort('gw.example.com:65535', 1), { host: 'gw.example.com', port: 65535 });
  for (const bad of ['127.0.0.1:0', 'host:65536', 'host', ':9092', '::1:9092', 'a b:1', 'host:12a', '[::1]9092']) {
    assert.equal(parseHostPort(bad, 1), null, bad);
  }
});
