// `--log`: memory, or a Redis log by URL (TCP, TLS, unix socket), with the
// password from the URL or RG_REDIS_PASSWORD; anything else is refused in one line.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../src/gateway/config.js';

const logOf = (value: string, env: Record<string, string> = {}) => {
  const { config } = loadConfig({ argv: ['--log', value], env });
  return { log: config.log, redisPassword: config.redisPassword };
};

describe('--log', () => {
  it('takes memory, the default', () => {
    assert.deepEqual(loadConfig({ argv: [], env: {} }).config.log, { kind: 'memory' });
  });

  it('takes redis:// with host, port and prefix, defaulting to port 6379 and prefix rg', () => {
    assert.deepEqual(logOf('redis://127.0.0.1:7001/gw-a').log, {
      kind: 'redis', address: { host: '127.0.0.1', port: 7001 }, tls: false, username: null, password: null, prefix: 'gw-a',
    });
    assert.deepEqual(logOf('redis://redis.internal').log, {
      kind: 'redis', address: { host: 'redis.internal', port: 6379 }, tls: false, username: null, password: null, prefix: 'rg',
    });
  });

  it('takes rediss:// (TLS), a user and password in the URL, and IPv6 hosts', () => {
    assert.deepEqual(logOf('rediss://gw:s%40cret@[::1]:6380/rg').log, {
      kind: 'redis', address: { host: '::1', port: 6380 }, tls: true, username: 'gw', password: 's@cret', prefix: 'rg',
    });
  });

  it('takes a unix socket path with an optional prefix', () => {
    assert.deepEqual(logOf('unix:/run/redis/redis-server.sock?prefix=streams').log, {
      kind: 'redis', address: { path: '/run/redis/redis-server.sock' }, tls: false, username: null, password: null, prefix: 'streams',
    });
  });

  it('takes the password from RG_REDIS_PASSWORD when the URL has none', () => {
    assert.equal(logOf('redis://127.0.0.1:7001/rg', { RG_REDIS_PASSWORD: 'pw' }).redisPassword, 'pw');
  });

  for (const bad of ['file', 'redis://', 'redis://h:1/a b', 'redis://h:1/x?db=2', 'http://h:1/rg', 'unix:relative.sock', 'redis://h:99999/rg']) {
    it(`refuses ${JSON.stringify(bad)} in one line, naming the accepted forms`, () => {
      assert.throws(
        () => loadConfig({ argv: ['--log', bad], env: {} }),
        (err: unknown) => err instanceof ConfigError && /^invalid --log: .*redis:\/\//.test(err.message) && !err.message.includes('\n'),
      );
    });
  }
});
