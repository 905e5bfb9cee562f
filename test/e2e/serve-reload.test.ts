// SIGHUP re-reads the settings: tokens, limits and the log level change live,
// settings that need a restart are named in one warning, a bad file keeps the
// running settings, and the streams survive it all (the process never stops).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import { LineClient, killAllGateways, startGateway } from './support/gateway-process.js';

after(() => killAllGateways());

/** A fresh connection's answer to `AUTH secret` then a catch-up of events from 0. */
async function readAs(port: number, secret: string): Promise<string[]> {
  const c = await LineClient.connect(port);
  c.send(`AUTH ${secret}`, 'REPLICATE events 0');
  await c.waitFor((l) => l.startsWith('ERROR') || l.startsWith('POSITION events'));
  c.close();
  return c.lines.filter((l) => !l.startsWith('PING') && !l.startsWith('SERVER'));
}

it('SIGHUP applies new tokens, limits and log level live, names what needs a restart, and survives a bad file', { timeout: 30_000 }, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rg-reload-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'gateway.json');
  const settings = { streams: ['events'], writerToken: 'w', subscriberToken: 's1', logLevel: 'info' };
  await writeFile(file, JSON.stringify(settings));
  const gw = await startGateway(['--config', file]);

  const writer = await LineClient.connect(gw.tcp);
  writer.send('AUTH w', 'REPLICATE events NOW');
  await writer.waitFor((l) => l.startsWith('POSITION events'));
  writer.send('RDATA events 1 ["a"]', 'RDATA events 2 ["b"]');
  assert.deepEqual(await readAs(gw.tcp, 's1'), ['RDATA events 1 ["a"]', 'RDATA events 2 ["b"]', 'POSITION events 2']);

  await writeFile(file, JSON.stringify({ ...settings, subscriberToken: 's2', logLevel: 'debug', maxConnections: 50, streams: ['events', 'caches'] }));
  gw.child.kill('SIGHUP');
  const reloaded = await gw.logs.waitFor((e) => e['msg'] === 'settings reloaded', 10_000);
  assert.deepEqual(reloaded['applied'], ['--subscriber-token', '--max-connections', '--log-level']);
  const restart = await gw.logs.waitFor((e) => e['needsRestart'] !== undefined, 5_000);
  assert.deepEqual(restart['needsRestart'], ['--streams']);
  assert.equal(restart['level'], 40, 'a warning');

  assert.match((await readAs(gw.tcp, 's1')).join('\n'), /^ERROR AUTH failed/, 'the old token is refused');
  assert.deepEqual(await readAs(gw.tcp, 's2'), ['RDATA events 1 ["a"]', 'RDATA events 2 ["b"]', 'POSITION events 2'], 'the new token reads the streams kept across the reload');
  // --log-level debug is live: a subscriber's command is now logged.
  const sub = await LineClient.connect(gw.tcp);
  sub.send('AUTH s2', 'FEDERATION_ACK 7');
  const debug = await gw.logs.waitFor((e) => e['msg'] === 'client command', 5_000);
  assert.equal(debug['level'], 20);
  sub.close();

  await writeFile(file, '{ not json');
  gw.child.kill('SIGHUP');
  const refused = await gw.logs.waitFor((e) => typeof e['msg'] === 'string' && e['msg'].startsWith('settings not reloaded'), 10_000);
  assert.match(String(refused['err']), /not JSON/);
  assert.deepEqual(await readAs(gw.tcp, 's2'), ['RDATA events 1 ["a"]', 'RDATA events 2 ["b"]', 'POSITION events 2'], 'the running settings stay');
  assert.equal(gw.child.exitCode, null, 'still running');

  writer.close();
  assert.deepEqual(await gw.stop('SIGTERM'), { code: 0, signal: null });
});
