// SIGHUP's reload takes the new limits live: per-address connections, the
// budget of unfinished lines and the line timeout reach the running hub.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../src/gateway/config.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { hubOf } from '../../src/server.js';

test('a reload applies --max-connections-per-address, --max-partial-line-bytes and --line-timeout-ms without a restart', async () => {
  const base = ['--http', 'off', '--streams', 'events'];
  const { config } = loadConfig({ argv: base, env: {} });
  const gateway = await Gateway.open(config, pino({ level: 'silent' }));
  try {
    const hub = hubOf(gateway.server);
    assert.equal(hub.options.maxConnectionsPerAddress, 10_000);
    assert.equal(hub.options.maxPartialLineBytes, 256 * 1024 * 1024);
    assert.equal(hub.limits.lineTimeoutMs, 30_000);
    const next = loadConfig({
      argv: [...base, '--max-connections-per-address', '5', '--max-partial-line-bytes', '1MiB', '--line-timeout-ms', '2000'],
      env: {},
    }).config;
    const { applied, needsRestart } = gateway.reload(next);
    assert.deepEqual(applied.sort(), ['--line-timeout-ms', '--max-connections-per-address', '--max-partial-line-bytes']);
    assert.deepEqual(needsRestart, []);
    assert.equal(hub.options.maxConnectionsPerAddress, 5);
    assert.equal(hub.options.maxPartialLineBytes, 1024 * 1024);
    assert.equal(hub.limits.lineTimeoutMs, 2_000);
  } finally {
    await gateway.stop(1_000);
  }
});
