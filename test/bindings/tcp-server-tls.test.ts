// The TCP listener over TLS (src/bindings/tcp-server.ts with `tls`), the
// client library's `tls` option (src/bindings/tcp-client-transport.ts), client
// certificates, a certificate replaced while running, and a TLS client on a
// plaintext port; all over real sockets on 127.0.0.1, with a throwaway CA.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import tls from 'node:tls';
import { after, before, describe, it, type TestContext } from 'node:test';
import { ReplicationClient, ReplicationWriter } from '../../src/index.js';
import { ReplicationServer, type ReplicationServerOptions } from '../../src/server.js';
import type { ServerTlsOptions } from '../../src/bindings/tls-files.js';
import { makeTestPki, type TestPki } from '../support/test-pki.js';

const FAST = { pingIntervalMs: 100, pingTimeoutMs: 500, backoff: { initialMs: 10, maxMs: 50, healthyAfterMs: 0 } };
const WAIT_MS = 5_000;

let pki: TestPki;
let serverTls: ServerTlsOptions;
let ca: Buffer;
before(async () => {
  pki = await makeTestPki();
  ca = await readFile(pki.ca);
  serverTls = { cert: await readFile(pki.server.cert), key: await readFile(pki.server.key) };
});
after(() => pki.remove());

async function startServer(t: TestContext, options: ReplicationServerOptions): Promise<{ server: ReplicationServer; port: number }> {
  const server = new ReplicationServer({ serverName: 'gw.test', streams: ['events'], writerToken: 'w', pingIntervalMs: 100, pingTimeoutMs: 500, ...options });
  t.after(() => server.close());
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return { server, port };
}

async function until<T>(what: string, check: () => T | undefined): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** One TLS handshake: the server certificate's fingerprint, or the error. */
function handshake(port: number, options: tls.ConnectionOptions): Promise<{ fingerprint: string } | { error: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options });
    socket.once('secureConnect', () => {
      resolve({ fingerprint: socket.getPeerCertificate().fingerprint256 });
      socket.destroy();
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

describe('TCP listener with TLS', () => {
  it('carries a writer\'s rows to a subscriber, both through the client library with tls: { ca }', { timeout: 15_000 }, async (t) => {
    const { server, port } = await startServer(t, { tls: serverTls });
    const writer = new ReplicationWriter({ port, tls: { ca }, auth: 'w', streams: ['events'], ...FAST }).start();
    t.after(() => writer.close());
    const reader = new ReplicationClient({ port, tls: { ca }, streams: { events: 0 }, ...FAST });
    t.after(() => reader.close());
    const got: [number, unknown[]][] = [];
    reader.on('rows', (_s: string, token: number, rows: readonly { row(): unknown }[]) => got.push([token, rows.map((r) => r.row())]));
    reader.start();
    assert.equal(await writer.publish('events', [{ n: 1 }]), 1);
    assert.equal(await writer.publish('events', [{ n: 2 }, { n: 3 }]), 2);
    await writer.flush();
    await until('both tokens at the reader', () => (got.length >= 2 ? true : undefined));
    assert.deepEqual(got, [
      [1, [{ n: 1 }]],
      [2, [{ n: 2 }, { n: 3 }]],
    ]);
    assert.equal(server.head('events'), 2);
    // Connections over TLS are told apart from plain TCP in /connections, the metrics and the logs.
    assert.deepEqual(server.connections().map((c) => c.transportKind), ['tls', 'tls']);
  });

  it('a client that does not trust the certificate never connects, and says why', { timeout: 10_000 }, async (t) => {
    const { port } = await startServer(t, { tls: serverTls });
    const reader = new ReplicationClient({ port, tls: true, streams: ['events'], ...FAST });
    t.after(() => reader.close());
    let connected = false;
    reader.on('connected', () => (connected = true));
    const reasons: string[] = [];
    reader.on('disconnected', (reason: string) => reasons.push(reason));
    reader.start();
    await until('two failed attempts', () => (reasons.length >= 2 ? true : undefined));
    assert.equal(connected, false);
    assert.match(reasons[0]!, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER_CERT/);
  });

  it('with a client CA, refuses a client without a certificate and serves one with a certificate it signed', { timeout: 10_000 }, async (t) => {
    const { server, port } = await startServer(t, { tls: { ...serverTls, ca } });
    const tlsErrors: string[] = [];
    server.on('tlsError', (message, address) => tlsErrors.push(`${address} ${message}`));

    const anonymous = new ReplicationClient({ port, tls: { ca }, streams: ['events'], ...FAST });
    t.after(() => anonymous.close());
    let anonymousConnected = false;
    anonymous.on('connected', () => (anonymousConnected = true));
    const reasons: string[] = [];
    anonymous.on('disconnected', (reason: string) => reasons.push(reason));
    anonymous.start();
    await until('a refused attempt', () => (reasons.length >= 1 && tlsErrors.length >= 1 ? true : undefined));
    await anonymous.close();
    assert.equal(anonymousConnected, false, 'no SERVER line reached a client without a certificate');
    assert.match(tlsErrors[0]!, /^127\.0\.0\.1:\d+ .*certificate/i);
    assert.equal(server.connections().length, 0, 'it never became a connection');

    const clientCert = { cert: await readFile(pki.client.cert), key: await readFile(pki.client.key) };
    const named = new ReplicationClient({ port, tls: { ca, ...clientCert }, streams: ['events'], ...FAST });
    t.after(() => named.close());
    const serverName = new Promise<string>((resolve) => named.once('connected', resolve));
    named.start();
    assert.equal(await serverName, 'gw.test');
  });

  it('setTls serves new connections with the new certificate; a bad one is refused and the old one stays', { timeout: 10_000 }, async (t) => {
    const { server, port } = await startServer(t, { tls: serverTls });
    const first = await handshake(port, { ca });
    assert.ok('fingerprint' in first, JSON.stringify(first));
    assert.equal(first.fingerprint, await pki.fingerprint(pki.server.cert));

    const renewed = await pki.issue('server-renewed', 'server');
    server.setTls({ cert: await readFile(renewed.cert), key: await readFile(renewed.key) });
    const second = await handshake(port, { ca });
    assert.ok('fingerprint' in second, JSON.stringify(second));
    assert.equal(second.fingerprint, await pki.fingerprint(renewed.cert));
    assert.notEqual(second.fingerprint, first.fingerprint);

    assert.throws(() => server.setTls({ cert: 'not a certificate', key: 'not a key' }));
    const third = await handshake(port, { ca });
    assert.deepEqual(third, second, 'the certificate in use stays');
  });
});

describe('a TLS client on the plaintext TCP port', () => {
  it('is closed with a line saying the port is plaintext, naming the peer', { timeout: 10_000 }, async (t) => {
    const { server, port } = await startServer(t, {});
    const closed = new Promise<[string, string, string]>((resolve) =>
      server.once('disconnect', (conn, reason, detail) => resolve([conn.remoteAddress, reason, detail])),
    );
    const attempt = await handshake(port, { ca });
    assert.ok('error' in attempt, 'no handshake');
    const [address, reason, detail] = await closed;
    assert.match(address, /^127\.0\.0\.1:\d+$/);
    assert.equal(reason, 'protocol_error');
    assert.equal(detail, 'TLS on a plaintext port: start the gateway with --tls-cert/--tls-key or connect without TLS');
  });
});
