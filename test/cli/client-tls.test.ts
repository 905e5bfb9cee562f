// `publish` and `tail` over TLS (--tls, --tls-ca, --tls-cert/--tls-key) as
// child processes against a TLS ReplicationServer on 127.0.0.1, with a
// throwaway openssl CA.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { ReplicationServer } from '../../src/server.js';
import { projectRoot } from '../support/project-root.js';
import { makeTestPki, type TestPki } from '../support/test-pki.js';

const BIN = path.join(projectRoot(), 'bin', 'replication-gateway.js');

let pki: TestPki;
before(async () => {
  pki = await makeTestPki();
});
after(() => pki.remove());

/** Runs the CLI to its exit with `stdin`; once `enough(stdout, stderr)` says so the child is sent SIGTERM. */
function runCli(
  args: string[],
  stdin: string,
  enough: (stdout: string, stderr: string) => boolean = () => false,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], timeout: 15_000 });
    let stdout = '';
    let stderr = '';
    let signalled = false;
    const check = (): void => {
      if (signalled || !enough(stdout, stderr)) return;
      signalled = true;
      child.kill('SIGTERM');
    };
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      check();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      check();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

async function startTlsServer(t: TestContext, clientCa: boolean): Promise<{ server: ReplicationServer; port: number }> {
  const tls = { cert: await readFile(pki.server.cert), key: await readFile(pki.server.key), ...(clientCa ? { ca: await readFile(pki.ca) } : {}) };
  const server = new ReplicationServer({ serverName: 'gw.test', streams: ['events'], writerToken: 'w', tls });
  t.after(() => server.close());
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return { server, port };
}

test('publish --tls-ca writes rows over TLS, and tail --tls --tls-ca prints them', { timeout: 30_000 }, async (t) => {
  const { server, port } = await startTlsServer(t, false);
  const published = await runCli(['publish', '--connect', `127.0.0.1:${port}`, '--tls-ca', pki.ca, '--auth', 'w', '--stream', 'events'], '["a"]\n["b"]\n');
  assert.equal(published.code, 0, published.stderr);
  assert.equal((JSON.parse(published.stdout.trim()) as { rows: number }).rows, 2);
  assert.equal(server.head('events'), 2);

  const tailed = await runCli(['tail', '--connect', `127.0.0.1:${port}`, '--tls', '--tls-ca', pki.ca, '--stream', 'events:0'], '', (out) => out.split('\n').length > 2);
  assert.equal(tailed.code, 0, tailed.stderr);
  assert.deepEqual(
    tailed.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown),
    [
      { stream: 'events', token: 1, row: ['a'] },
      { stream: 'events', token: 2, row: ['b'] },
    ],
  );
});

test('tail --tls alone (the system CAs) does not trust a private CA: it never connects, and logs why', { timeout: 20_000 }, async (t) => {
  const { server, port } = await startTlsServer(t, false);
  await server.publish('events', [['secret']]);
  const tailed = await runCli(['tail', '--connect', `127.0.0.1:${port}`, '--tls', '--stream', 'events:0'], '', (_out, err) => err.includes('replication connect failed'));
  assert.equal(tailed.code, 0);
  assert.equal(tailed.stdout, '', 'no row');
  assert.match(tailed.stderr, /"msg":"replication connect failed"/);
  assert.match(tailed.stderr, /"reason":"(UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)"/);
  assert.doesNotMatch(tailed.stderr, /"msg":"replication connected"/);
});

test('against a server requiring client certificates: publish --tls-cert/--tls-key gets in, tail without one does not', { timeout: 30_000 }, async (t) => {
  const { server, port } = await startTlsServer(t, true);
  const published = await runCli(
    ['publish', '--connect', `127.0.0.1:${port}`, '--tls-ca', pki.ca, '--tls-cert', pki.client.cert, '--tls-key', pki.client.key, '--auth', 'w', '--stream', 'events'],
    '{"n":1}\n',
  );
  assert.equal(published.code, 0, published.stderr);
  assert.equal(server.head('events'), 1);

  const tailed = await runCli(['tail', '--connect', `127.0.0.1:${port}`, '--tls-ca', pki.ca, '--stream', 'events:0'], '', (_out, err) => /replication conn(ect failed|ection lost)/.test(err));
  assert.equal(tailed.stdout, '', 'no row without a client certificate');
  assert.doesNotMatch(tailed.stderr, /"msg":"replication connected"/);
});

test('a TLS file that cannot be read, or a certificate without its key, is a usage error (exit 2) naming it', { timeout: 20_000 }, async () => {
  const missing = await runCli(['tail', '--connect', '127.0.0.1:1', '--tls-ca', path.join(pki.dir, 'nope.pem'), '--stream', 'events'], '');
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^replication-gateway tail: --tls-ca .*nope\.pem: cannot read it \(ENOENT\)/);
  const half = await runCli(['publish', '--connect', '127.0.0.1:1', '--tls-cert', pki.client.cert, '--auth', 'w', '--stream', 'events'], '');
  assert.equal(half.code, 2);
  assert.match(half.stderr, /--tls-cert is given without --tls-key/);
});
