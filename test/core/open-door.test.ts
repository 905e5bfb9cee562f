// The open-door rule (src/core/open-door.ts): loopback as today; off loopback
// a listener needs TLS (or --insecure) and a credential (or --anonymous-read),
// and the refusal is one line saying what is missing and what to add.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopbackHost, openDoorRefusal, type ListenerExposure } from '../../src/core/open-door.js';

const open: ListenerExposure = { flag: '--listen', host: '0.0.0.0', port: 9092, tls: false, subscriberCredential: false, insecure: false, anonymousRead: false };

describe('openDoorRefusal', () => {
  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) assert.equal(isLoopbackHost(h), true, h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'gw.example.org', '128.0.0.1']) assert.equal(isLoopbackHost(h), false, h);
  });

  it('lets any listener on loopback start, with no TLS and no credential', () => {
    for (const host of ['127.0.0.1', '::1', 'localhost']) assert.equal(openDoorRefusal({ ...open, host }), null, host);
  });

  it('off loopback, without TLS and without a credential: names both and what to add', () => {
    assert.equal(
      openDoorRefusal(open),
      'refusing to listen on 0.0.0.0:9092 (--listen) without TLS and a credential: it is not loopback, so anyone who can reach it could read every stream; ' +
        'add --tls-cert/--tls-key (or --insecure, if a TLS proxy or a private network protects it) and --subscriber-token ' +
        '(or --anonymous-read, if anyone who can connect may read every stream), or listen on 127.0.0.1',
    );
  });

  it('names only what is missing, and the HTTP listener\'s own TLS flags', () => {
    assert.match(openDoorRefusal({ ...open, tls: true })!, /^refusing to listen on 0\.0\.0\.0:9092 \(--listen\) without a credential: .*; add --subscriber-token \(or --anonymous-read/);
    assert.match(openDoorRefusal({ ...open, subscriberCredential: true })!, /without TLS: .*; add --tls-cert\/--tls-key \(or --insecure/);
    assert.match(
      openDoorRefusal({ ...open, flag: '--http', host: '::', port: 9093, anonymousRead: true })!,
      /^refusing to listen on \[::\]:9093 \(--http\) without TLS: .*add --http-tls-cert\/--http-tls-key \(or --tls-cert\/--tls-key\)/,
    );
    for (const r of [openDoorRefusal({ ...open, tls: true }), openDoorRefusal(open)]) assert.ok(!r!.includes('\n'), 'one line');
  });

  it('starts off loopback with TLS or --insecure, and a subscriber token or --anonymous-read', () => {
    for (const tls of [{ tls: true }, { insecure: true }]) {
      for (const cred of [{ subscriberCredential: true }, { anonymousRead: true }]) {
        assert.equal(openDoorRefusal({ ...open, ...tls, ...cred }), null, JSON.stringify({ ...tls, ...cred }));
      }
    }
  });
});
