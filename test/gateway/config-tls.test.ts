// The TLS and open-door settings of `serve` (src/gateway/options.ts,
// config.ts): switches as flags, variables and file keys, certificate and key
// together, the HTTP listener sharing the TCP one's files by default, and the
// open-door refusal before anything is bound.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, httpTlsFiles, loadConfig, tcpTlsFiles, upstreamTlsFiles } from '../../src/gateway/config.js';

const file = (json: unknown) => (): string => JSON.stringify(json);

describe('TLS and open-door settings', () => {
  it('takes --insecure and --anonymous-read as bare switches, RG_ variables or JSON booleans; off by default', () => {
    assert.equal(loadConfig({ argv: [], env: {} }).config.insecure, false);
    const flags = loadConfig({ argv: ['--insecure', '--anonymous-read', '--streams', 'events'], env: {} }).config;
    assert.equal(flags.insecure, true);
    assert.equal(flags.anonymousRead, true);
    assert.deepEqual(flags.streams, ['events'], 'a switch takes no value: the next flag is read as usual');
    assert.equal(loadConfig({ argv: ['--insecure=false'], env: { RG_INSECURE: 'true' } }).config.insecure, false);
    assert.equal(loadConfig({ argv: [], env: { RG_ANONYMOUS_READ: '1' } }).config.anonymousRead, true);
    assert.equal(loadConfig({ argv: ['--config', 'c.json'], env: {}, readFile: file({ insecure: true }) }).config.insecure, true);
    assert.throws(() => loadConfig({ argv: [], env: { RG_INSECURE: 'maybe' } }), /invalid --insecure \(from RG_INSECURE\): 'maybe'; expected true or false/);
  });

  it('the HTTP listener uses the --tls-* files unless it has its own; the relay connects with TLS when any --upstream-tls* is set', () => {
    const shared = loadConfig({ argv: ['--tls-cert', 'c.pem', '--tls-key', 'k.pem', '--tls-ca', 'ca.pem'], env: {} }).config;
    assert.deepEqual(tcpTlsFiles(shared), { cert: 'c.pem', key: 'k.pem', ca: 'ca.pem', flagPrefix: '--tls' });
    assert.deepEqual(httpTlsFiles(shared), tcpTlsFiles(shared));
    const own = loadConfig({ argv: ['--tls-cert', 'c.pem', '--tls-key', 'k.pem', '--http-tls-cert', 'h.pem', '--http-tls-key', 'hk.pem'], env: {} }).config;
    assert.deepEqual(httpTlsFiles(own), { cert: 'h.pem', key: 'hk.pem', ca: null, flagPrefix: '--http-tls' });
    const plain = loadConfig({ argv: [], env: {} }).config;
    assert.equal(tcpTlsFiles(plain), null);
    assert.equal(httpTlsFiles(plain), null);
    assert.equal(upstreamTlsFiles(loadConfig({ argv: ['--upstream', 'hs:9092'], env: {} }).config), null);
    assert.deepEqual(upstreamTlsFiles(loadConfig({ argv: ['--upstream', 'hs:9092', '--upstream-tls-ca', 'ca.pem'], env: {} }).config), {
      ca: 'ca.pem',
      cert: null,
      key: null,
      flagPrefix: '--upstream-tls',
    });
    assert.notEqual(upstreamTlsFiles(loadConfig({ argv: ['--upstream', 'hs:9092', '--upstream-tls'], env: {} }).config), null);
  });

  const bad: [string, string[], RegExp][] = [
    ['a certificate without its key', ['--tls-cert', 'c.pem'], /^--tls-cert is set but --tls-key is not; expected both/],
    ['a key without its certificate', ['--http-tls-key', 'k.pem'], /^--http-tls-key is set but --http-tls-cert is not/],
    ['a client CA without a certificate', ['--tls-ca', 'ca.pem'], /^--tls-ca is set but --tls-cert is not/],
    ['HTTP TLS files with --http off', ['--http', 'off', '--http-tls-cert', 'c', '--http-tls-key', 'k'], /^--http-tls-cert is set but --http is off/],
    ['upstream TLS without --upstream', ['--upstream-tls'], /^--upstream-tls is set but --upstream is not/],
    ['--listen 0.0.0.0 with nothing', ['--listen', '0.0.0.0:0'], /^refusing to listen on 0\.0\.0\.0:0 \(--listen\) without TLS and a credential: /],
    ['--listen 0.0.0.0 with a token but no TLS', ['--listen', '0.0.0.0:0', '--subscriber-token', 's'], /^refusing to listen on 0\.0\.0\.0:0 \(--listen\) without TLS: .*--insecure/],
    ['--http 0.0.0.0 with TLS but no credential', ['--http', '0.0.0.0:0', '--tls-cert', 'c', '--tls-key', 'k'], /^refusing to listen on 0\.0\.0\.0:0 \(--http\) without a credential: .*--anonymous-read/],
    ['--http 0.0.0.0 with --insecure, no credential', ['--http', '0.0.0.0:0', '--insecure'], /^refusing to listen on 0\.0\.0\.0:0 \(--http\) without a credential/],
  ];
  for (const [name, argv, message] of bad) {
    it(`refuses ${name} in one line`, () => {
      assert.throws(
        () => loadConfig({ argv, env: {} }),
        (err: unknown) => err instanceof ConfigError && message.test(err.message) && !err.message.includes('\n'),
      );
    });
  }

  it('lets listeners off loopback start with TLS or --insecure, and a subscriber token or --anonymous-read', () => {
    for (const argv of [
      ['--listen', '0.0.0.0:0', '--http', '0.0.0.0:0', '--tls-cert', 'c', '--tls-key', 'k', '--subscriber-token', 's'],
      ['--listen', '0.0.0.0:0', '--http', 'off', '--insecure', '--anonymous-read'],
      ['--listen', '127.0.0.1:0', '--http', '[::]:0', '--http-tls-cert', 'c', '--http-tls-key', 'k', '--anonymous-read'],
    ]) {
      assert.doesNotThrow(() => loadConfig({ argv, env: {} }), argv.join(' '));
    }
  });
});
