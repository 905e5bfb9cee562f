// `serve` with TLS as an operator runs it: both listeners on TLS, the
// certificate files rewritten and re-read on SIGHUP (a bad rewrite logged and
// the old certificate kept), a relay following a TLS upstream, a TLS client
// on a plaintext port named in the log, and the open-door refusals (exit 2,
// before anything is bound). 127.0.0.1 only, with a throwaway openssl CA.

import assert from 'node:assert/strict';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ReplicationClient, ReplicationWriter } from '../../src/index.js';
import { makeTestPki, type TestPki } from '../support/test-pki.js';
import { killAllGateways, runGateway, startGateway } from './support/gateway-process.js';

after(() => killAllGateways());

const FAST = { pingIntervalMs: 200, pingTimeoutMs: 1000, backoff: { initialMs: 20, maxMs: 200, healthyAfterMs: 0 } };

let pki: TestPki;
let ca: Buffer;
before(async () => {
  pki = await makeTestPki();
  ca = await readFile(pki.ca);
});
after(() => pki.remove());

/** The certificate a new TLS connection to `port` is served (its fingerprint), or the handshake's error code. */
function served(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
  });
}

describe('serve with TLS', () => {
  it('serves TLS on both listeners, and SIGHUP re-reads the rewritten files (a bad rewrite keeps the running certificate)', { timeout: 60_000 }, async () => {
    // The operator's files, rewritten in place as a certificate renewal does.
    const cert = path.join(pki.dir, 'live.pem');
    const key = path.join(pki.dir, 'live.key');
    await copyFile(pki.server.cert, cert);
    await copyFile(pki.server.key, key);
    const gw = await startGateway(['--streams', 'events', '--writer-token', 'w', '--tls-cert', cert, '--tls-key', key, '--ws-engine', 'ws']);
    const listening = await gw.logs.waitFor((e) => e['msg'] === 'listening', 5_000);
    assert.deepEqual(listening['tls'], { tcp: true, http: true });

    const writer = new ReplicationWriter({ port: gw.tcp, tls: { ca }, auth: 'w', streams: ['events'], ...FAST }).start();
    await writer.publish('events', [['over tls']]);
    await writer.flush();
    const ws = new WebSocket(`wss://127.0.0.1:${gw.http!}/replication`, { ca });
    const lines: string[] = [];
    ws.on('message', (m: Buffer) => lines.push(...m.toString().split('\n').filter((l) => l !== '')));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send('REPLICATE events 0\n');
    const deadline = Date.now() + 5_000;
    while (!lines.includes('POSITION events 1') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(lines.includes('RDATA events 1 ["over tls"]'), JSON.stringify(lines));

    const original = await pki.fingerprint(pki.server.cert);
    assert.equal(await served(gw.tcp), original);
    assert.equal(await served(gw.http!), original);

    const renewed = await pki.issue('renewed', 'server');
    await copyFile(renewed.cert, cert);
    await copyFile(renewed.key, key);
    gw.child.kill('SIGHUP');
    const fresh = await pki.fingerprint(renewed.cert);
    for (const listener of ['tcp', 'http']) {
      const reloaded = await gw.logs.waitFor((e) => e['msg'] === 'TLS certificate reloaded: new connections get it' && e['listener'] === listener, 10_000);
      assert.equal(reloaded['fingerprint256'], fresh);
    }
    assert.equal(await served(gw.tcp), fresh, 'the TCP listener serves the new certificate');
    assert.equal(await served(gw.http!), fresh, 'the HTTP listener serves the new certificate');
    await writer.publish('events', [['after the reload']]);
    await writer.flush();
    assert.equal(writer.head('events'), 2, 'the writer connected before the reload goes on');

    await writeFile(cert, 'not a certificate\n');
    gw.child.kill('SIGHUP');
    const refused = await gw.logs.waitFor((e) => typeof e['msg'] === 'string' && e['msg'].startsWith('TLS certificate not reloaded'), 10_000);
    assert.equal(refused['level'], 50);
    assert.match(String(refused['err']), /--tls-cert .*live\.pem/);
    assert.equal(await served(gw.tcp), fresh, 'the running certificate stays');
    assert.equal(gw.child.exitCode, null, 'still running');

    ws.terminate();
    await writer.close();
    assert.deepEqual(await gw.stop('SIGTERM'), { code: 0, signal: null });
  });

  it('a relay follows a TLS upstream with --upstream-tls-ca', { timeout: 60_000 }, async () => {
    const upstream = await startGateway(['--streams', 'events', '--writer-token', 'w', '--tls-cert', pki.server.cert, '--tls-key', pki.server.key, '--http', 'off']);
    const writer = new ReplicationWriter({ port: upstream.tcp, tls: { ca }, auth: 'w', streams: ['events'], ...FAST }).start();
    await writer.publish('events', [['from upstream']]);
    await writer.flush();
    const relay = await startGateway(['--streams', 'events', '--upstream', `127.0.0.1:${upstream.tcp}`, '--upstream-tls-ca', pki.ca, '--http', 'off']);
    const reader = new ReplicationClient({ port: relay.tcp, streams: { events: 0 }, ...FAST });
    const rows: unknown[] = [];
    reader.on('rows', (_s: string, _t: number, batch: readonly { row(): unknown }[]) => rows.push(...batch.map((r) => r.row())));
    reader.start();
    await writer.publish('events', [['live']]);
    await writer.flush();
    const deadline = Date.now() + 10_000;
    while (rows.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(rows, [['from upstream'], ['live']]);
    await reader.close();
    await writer.close();
    assert.equal((await relay.stop('SIGTERM')).code, 0);
    assert.equal((await upstream.stop('SIGTERM')).code, 0);
  });

  it('a TLS file that cannot be used stops start-up with exit 2 and the reason', { timeout: 20_000 }, async () => {
    const r = await runGateway(['--listen', '127.0.0.1:0', '--http', 'off', '--tls-cert', pki.ca, '--tls-key', pki.server.key]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^replication-gateway serve: --tls-cert .*ca\.pem with --tls-key .*server\.key: not a usable certificate and key/);
  });
});

describe('a TLS client on the plaintext port', () => {
  it('is logged with its address and the advice, and closed', { timeout: 20_000 }, async () => {
    const gw = await startGateway(['--streams', 'events']);
    const closed = await new Promise<boolean>((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port: gw.tcp, ca });
      socket.once('error', () => resolve(true));
      socket.once('close', () => resolve(true));
    });
    assert.ok(closed);
    const line = await gw.logs.waitFor((e) => e['detail'] === 'TLS on a plaintext port: start the gateway with --tls-cert/--tls-key or connect without TLS', 5_000);
    assert.equal(line['level'], 40);
    assert.match(String(line['address']), /^127\.0\.0\.1:\d+$/);
    assert.equal((await gw.stop('SIGTERM')).code, 0);
  });
});

describe('no open door by accident', () => {
  for (const [what, args, pattern] of [
    ['--listen 0.0.0.0', ['--listen', '0.0.0.0:0', '--http', '127.0.0.1:0'], /^replication-gateway serve: refusing to listen on 0\.0\.0\.0:0 \(--listen\) without TLS and a credential: .*; add --tls-cert\/--tls-key .* and --subscriber-token .*, or listen on 127\.0\.0\.1\n$/],
    ['--http 0.0.0.0 with a token but no TLS', ['--listen', '127.0.0.1:0', '--http', '0.0.0.0:0', '--subscriber-token', 's'], /^replication-gateway serve: refusing to listen on 0\.0\.0\.0:0 \(--http\) without TLS: .*--http-tls-cert\/--http-tls-key .*--insecure.*\n$/],
  ] as const) {
    it(`refuses ${what} with exit 2 and one line, before binding anything`, { timeout: 20_000 }, async () => {
      const r = await runGateway([...args]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, pattern);
      assert.equal(r.stdout, '', 'not even a log line: nothing was started');
    });
  }
});
