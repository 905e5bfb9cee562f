// `serve` with lists of tokens in its config file: each token reads (and a
// writer writes) its own streams, a SIGHUP swaps the list live, and failed
// AUTHs are logged once per burst, with the address, not once per attempt.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import { LineClient, killAllGateways, startGateway } from './support/gateway-process.js';

after(() => killAllGateways());

/** What a fresh connection hears after `AUTH secret` and `command`: its first ERROR or POSITION. */
async function answer(port: number, secret: string, command: string): Promise<string> {
  const c = await LineClient.connect(port);
  c.send(`AUTH ${secret}`, command);
  const line = await c.waitFor((l) => l.startsWith('ERROR') || l.startsWith('POSITION'));
  c.close();
  return line;
}

it('token lists from the config file apply per token, and a SIGHUP swaps the list live', { timeout: 30_000 }, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rg-creds-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'gateway.json');
  const settings = { streams: ['events', 'typing'], writerToken: ['w-all', 'w-typing:typing'], subscriberToken: ['s1', 's2:typing'] };
  await writeFile(file, JSON.stringify(settings));
  const gw = await startGateway(['--config', file]);

  const typingWriter = await LineClient.connect(gw.tcp);
  typingWriter.send('AUTH w-typing', 'RDATA typing 1 ["t"]', 'RDATA events 1 ["e"]');
  assert.equal(await typingWriter.waitFor((l) => l.startsWith('ERROR')), 'ERROR not permitted to write stream events');
  assert.equal(await answer(gw.tcp, 's1', 'REPLICATE typing 0'), 'POSITION typing 1');
  assert.equal(await answer(gw.tcp, 's1', 'REPLICATE events 0'), 'POSITION events 0', 'nothing of events was stored');
  assert.equal(await answer(gw.tcp, 's2', 'REPLICATE events 0'), 'ERROR not permitted to read stream events');
  assert.equal(await answer(gw.tcp, 'w-all', 'REPLICATE events 0'), 'POSITION events 0');

  await writeFile(file, JSON.stringify({ ...settings, subscriberToken: ['s2:typing', 's3:events'] }));
  gw.child.kill('SIGHUP');
  const reloaded = await gw.logs.waitFor((e) => e['msg'] === 'settings reloaded', 10_000);
  assert.deepEqual(reloaded['applied'], ['--subscriber-token']);
  assert.match(await answer(gw.tcp, 's1', 'REPLICATE typing 0'), /^ERROR AUTH failed/, 'a token taken off the list is refused');
  assert.equal(await answer(gw.tcp, 's3', 'REPLICATE events 0'), 'POSITION events 0');
  assert.equal(await answer(gw.tcp, 's3', 'REPLICATE typing 0'), 'ERROR not permitted to read stream typing');
  assert.equal(await answer(gw.tcp, 's2', 'REPLICATE typing 0'), 'POSITION typing 1');

  typingWriter.close();
  assert.deepEqual(await gw.stop('SIGTERM'), { code: 0, signal: null });
});

it('a burst of failed AUTHs from one address is logged once when it starts and once when it hits the limit', { timeout: 30_000 }, async () => {
  const gw = await startGateway(['--streams', 'events', '--subscriber-token', 'right']);
  const answers: string[] = [];
  for (let i = 0; i < 14; i++) answers.push(await answer(gw.tcp, `guess-${i}`, 'REPLICATE events NOW'));
  assert.equal(answers.filter((a) => a.startsWith('ERROR AUTH failed')).length, 10);
  assert.equal(answers.filter((a) => a.startsWith('ERROR too many failed AUTH attempts from 127.0.0.1')).length, 4);
  // A marker: the log is in order, so once this connection's line is in, every AUTH line before it is too.
  const marker = await LineClient.connect(gw.tcp);
  const port = marker.socket.localPort;
  await gw.logs.waitFor((e) => e['msg'] === 'connection opened' && e['address'] === `127.0.0.1:${port}`, 10_000);
  marker.close();

  const authLines = gw.logs.all().filter((e) => typeof e['msg'] === 'string' && /AUTH/.test(e['msg']));
  assert.deepEqual(
    authLines.map((e) => [e['level'], e['msg'], e['host'], e['failures']]),
    [
      [40, 'AUTH failed from 127.0.0.1: the token matches no configured credential', '127.0.0.1', 1],
      [40, '10 failed AUTHs from 127.0.0.1: every AUTH from it is refused until its window is over', '127.0.0.1', 10],
    ],
  );
  assert.match(String(authLines[0]!['address']), /^127\.0\.0\.1:\d+$/);
  assert.equal(authLines[1]!['windowMs'], 60_000);
  const closedForAuth = gw.logs.all().filter((e) => e['msg'] === 'connection closed' && e['reason'] === 'auth');
  assert.deepEqual(closedForAuth, [], 'no line per refused connection');
  assert.deepEqual(await gw.stop('SIGTERM'), { code: 0, signal: null });
});
