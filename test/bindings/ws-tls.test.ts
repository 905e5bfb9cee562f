// The HTTP listener with TLS on each engine: wss:// from a Node `ws` client
// (and HTTPS for the routes), client certificates when a CA is given, and a
// certificate replaced while running (HttpListener.setTls, the gateway's
// SIGHUP) served to new connections. A throwaway openssl CA, 127.0.0.1 only.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { chooseEngine, EngineUnavailableError } from '../../src/bindings/engine-choice.js';
import { TlsFilesError } from '../../src/bindings/tls-files.js';
import { makeTestPki, type TestPki } from '../support/test-pki.js';
import { describeEachEngine, startGateway, TcpPeer, WsPeer, type Gateway } from './ws-harness.js';

let pki: TestPki;
let ca: Buffer;
before(async () => {
  pki = await makeTestPki();
  ca = await readFile(pki.ca);
});
after(() => pki.remove());

function peerFingerprint(port: number, options: tls.ConnectionOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, ...options }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

function httpsGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .once('error', reject);
  });
}

describeEachEngine('HTTP listener with TLS', (edge) => {
  let gw: Gateway;
  before(async () => {
    gw = await edge.start({ serverName: 'hs.test', writerToken: 'w' }, { tls: { cert: pki.server.cert, key: pki.server.key } });
  });
  after(() => gw.close());

  it('serves wss:// to a ws client that trusts the CA: the greeting, then rows a TCP writer sends', async () => {
    assert.match(gw.wsUrl, /^wss:\/\//);
    const peer = await WsPeer.open(gw.wsUrl, { tls: { ca } });
    await peer.line(/^PING \d+$/);
    assert.equal(peer.lines[0], 'SERVER hs.test');
    peer.send('REPLICATE events NOW\n');
    await peer.line(/^POSITION events \d+$/);
    const writer = await TcpPeer.connect(gw.tcpPort);
    writer.send('AUTH w\nRDATA events 1 ["over wss"]\n');
    assert.equal(await peer.line(/^RDATA events/), 'RDATA events 1 ["over wss"]');
    writer.close();
    peer.terminate();
  });

  it('answers HTTPS requests, and refuses a client that does not trust the certificate', async () => {
    const health = await httpsGet(`${gw.httpUrl}/healthz`);
    assert.equal(health.status, 200);
    const untrusting = new WsPeer(gw.wsUrl);
    await assert.rejects(untrusting.opened, /self[- ]signed|unable to verify|UNABLE_TO/i);
  });

  it('setTls: new connections get the new certificate (ws engine; uws cannot and says so), open ones stay up; a bad file is refused and the old certificate stays', async () => {
    const open = await WsPeer.open(gw.wsUrl, { tls: { ca } });
    await open.line(/^PING \d+$/);
    const before = await peerFingerprint(gw.httpPort);
    assert.equal(before, await pki.fingerprint(pki.server.cert));
    const renewed = await pki.issue(`server-renewed-${edge.engine}`, 'server');
    assert.throws(() => gw.http.setTls({ cert: pki.ca, key: renewed.cert }), TlsFilesError, 'a key that is not the certificate\'s');
    assert.equal(await peerFingerprint(gw.httpPort), before, 'the certificate in use stays');
    if (edge.engine === 'uws') {
      assert.throws(() => gw.http.setTls({ cert: renewed.cert, key: renewed.key }), /uws engine cannot change its certificate while running.*--ws-engine ws/);
      assert.equal(await peerFingerprint(gw.httpPort), before, 'the certificate in use stays');
    } else {
      gw.http.setTls({ cert: renewed.cert, key: renewed.key });
      assert.equal(await peerFingerprint(gw.httpPort), await pki.fingerprint(renewed.cert));
    }
    const fresh = await WsPeer.open(gw.wsUrl, { tls: { ca } });
    await fresh.line(/^PING \d+$/);
    open.send('PING 1\nREPLICATE events NOW\n');
    await open.line(/^POSITION events \d+$/);
    assert.equal(open.closeCode, null, 'the connection opened before is still up');
    open.terminate();
    fresh.terminate();
  });
});

describe('HTTP listener with TLS and a client CA', () => {
  it('takes the ws engine (uWS would let a client without a certificate in), and --ws-engine uws is refused', () => {
    assert.equal(chooseEngine('auto', { clientCertificates: true }).name, 'ws');
    assert.throws(() => chooseEngine('uws', { clientCertificates: true }), EngineUnavailableError);
  });

  it('refuses a wss:// client without a certificate and serves one with a certificate the CA signed', async (t) => {
    const gw = await startGateway(
      { serverName: 'hs.test' },
      { engine: chooseEngine('auto', { clientCertificates: true }), tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca } },
    );
    t.after(() => gw.close());
    const anonymous = new WsPeer(gw.wsUrl, { tls: { ca } });
    await assert.rejects(anonymous.opened);
    const named = await WsPeer.open(gw.wsUrl, { tls: { ca, cert: await readFile(pki.client.cert), key: await readFile(pki.client.key) } });
    await named.line(/^PING \d+$/);
    assert.equal(named.lines[0], 'SERVER hs.test');
    named.terminate();
  });
});
