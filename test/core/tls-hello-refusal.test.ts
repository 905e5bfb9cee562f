// tlsHelloRefusal (src/core/access-refusal.ts): a connection's first chunk that
// starts a TLS handshake is refused by name; anything a line could start with is not.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { tlsHelloRefusal } from '../../src/core/access-refusal.js';

const MESSAGE = 'TLS on a plaintext port: start the gateway with --tls-cert/--tls-key or connect without TLS';

it('refuses a ClientHello (0x16 0x03 ...), and a first chunk of 0x16 alone', () => {
  for (const first of [Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]), Buffer.from([0x16, 0x03]), Buffer.from([0x16])]) {
    const refusal = tlsHelloRefusal(first);
    assert.equal(refusal?.message, MESSAGE, first.toString('hex'));
    assert.equal(refusal?.code, 'UNKNOWN_COMMAND');
  }
});

it('lets everything else through to the line scanner', () => {
  for (const first of [Buffer.alloc(0), Buffer.from('NAME w\n'), Buffer.from('GET / HTTP/1.1\r\n'), Buffer.from([0x16, 0x04]), Buffer.from([0x03, 0x16])]) {
    assert.equal(tlsHelloRefusal(first), null, first.toString('hex'));
  }
});
