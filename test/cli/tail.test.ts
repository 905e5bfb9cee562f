// `replication-gateway tail` as a child process against the real server, through a proxy that cuts it once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ReplicationServer } from '../../src/server.js';
import { JsonLineLog } from '../support/json-line-log.js';
import { projectRoot } from '../support/project-root.js';
import { startCuttableProxy } from '../support/cuttable-proxy.js';
import { TodayPeer } from '../support/today-peer.js';

const BIN = path.join(projectRoot(), 'bin', 'replication-gateway.js');

interface TailLine {
  stream: string;
  token: number;
  row: unknown;
}

test('prints every row as a JSON line, resumes across a drop, and exits 0 on SIGTERM', { timeout: 20_000 }, async (t) => {
  const server = new ReplicationServer({ serverName: 'gw.test', streams: ['events', 'caches'], pingIntervalMs: 200, pingTimeoutMs: 1000 });
  t.after(() => server.close());
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const proxy = await startCuttableProxy(port);
  t.after(() => proxy.close());
  for (let i = 1; i <= 3; i++) await server.publish('events', [{ n: i, url: 'a/b' }]);
  await server.publish('caches', [['a'], ['b']]);

  const child = spawn(
    process.execPath,
    [BIN, 'tail', '--connect', `127.0.0.1:${proxy.port}`, '--stream', 'events:1', '--stream', 'caches:0', '--server-name', 'gw.test', '--ping-interval-ms', '200'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.after(() => void child.kill('SIGKILL'));
  const out = new JsonLineLog<TailLine>('tail stdout');
  out.attach(child.stdout);
  const err = new JsonLineLog<{ msg: string }>('tail stderr');
  err.attach(child.stderr);
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));

  await out.waitFor((l) => l.stream === 'caches' && l.row !== null && (l.row as string[])[0] === 'b', 10_000, 'the caches batch');
  await out.waitFor((l) => l.stream === 'events' && l.token === 3, 10_000, 'events 3');
  proxy.cutAfter(0);
  await err.waitFor((l) => l.msg === 'replication connection lost', 10_000, 'the drop logged');
  await server.publish('events', [{ n: 4 }, { n: 5 }]);
  await out.waitFor((l) => l.stream === 'events' && l.token === 4 && (l.row as { n: number }).n === 5, 10_000, 'the live batch after the drop');
  child.kill('SIGTERM');
  assert.equal(await exited, 0);

  const lines = out.all();
  assert.deepEqual(
    lines.filter((l) => l.stream === 'events'),
    [
      { stream: 'events', token: 2, row: { n: 2, url: 'a/b' } },
      { stream: 'events', token: 3, row: { n: 3, url: 'a/b' } },
      { stream: 'events', token: 4, row: { n: 4 } },
      { stream: 'events', token: 4, row: { n: 5 } },
    ],
  );
  assert.deepEqual(
    lines.filter((l) => l.stream === 'caches'),
    [
      { stream: 'caches', token: 1, row: ['a'] },
      { stream: 'caches', token: 1, row: ['b'] },
    ],
  );
  assert.ok(err.all().filter((l) => l.msg === 'replication connected').length >= 2, 'connected twice');
});

/** Runs tail to its exit; stdout is read until `readStdout` says stop (then closed: the reader left). */
function runTail(args: string[], readStdout: (text: string) => boolean = () => true): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, 'tail', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
    if (!readStdout(stdout)) child.stdout.destroy();
  });
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    }),
  );
}

test('exits 2 with the reason when the server refuses it, instead of reconnecting', { timeout: 20_000 }, async (t) => {
  const server = new ReplicationServer({ serverName: 'gw.test', streams: ['events'], subscriberToken: 'right' });
  t.after(() => server.close());
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  let connections = 0;
  server.on('connection', () => connections++);
  const bad = await runTail(['--connect', `127.0.0.1:${port}`, '--stream', 'events', '--auth', 'wrong']);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /refused \(AUTH_FAILED\): AUTH failed/);
  const unknown = await runTail(['--connect', `127.0.0.1:${port}`, '--stream', 'evnets', '--auth', 'right']);
  assert.equal(unknown.code, 2, unknown.stderr);
  assert.match(unknown.stderr, /refused \(UNKNOWN_STREAM\): unknown stream: evnets/);
  assert.equal(connections, 2, 'one connection each: no reconnect loop');
});

test('`tail | head`: exits 0, quietly, when the reader of its stdout leaves', { timeout: 20_000 }, async (t) => {
  const server = new ReplicationServer({ serverName: 'gw.test', streams: ['events'] });
  t.after(() => server.close());
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  for (let i = 1; i <= 200; i++) await server.publish('events', [{ n: i, pad: 'x'.repeat(500) }]);
  const timer = setInterval(() => void server.publish('events', [{ live: true, pad: 'x'.repeat(500) }]), 5);
  t.after(() => clearInterval(timer));
  // Like `head -n 1`: read the first line, then go.
  const { code, stdout, stderr } = await runTail(['--connect', `127.0.0.1:${port}`, '--stream', 'events:0'], (text) => !text.includes('\n'));
  assert.equal(code, 0, stderr);
  assert.match(stdout, /^\{"stream":"events","token":1,/);
  assert.doesNotMatch(stderr, /EPIPE|Error|at /, 'no crash or stack trace');
});

test('--help lists every option with its default', async () => {
  const child = spawn(process.execPath, [BIN, 'tail', '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  const code = await new Promise((resolve) => child.on('close', resolve));
  assert.equal(code, 0);
  for (const opt of ['--connect', '--stream', '--instance', '--server-name', '--name', '--auth', '--ping-interval-ms']) {
    const line = stdout.split('\n').find((l) => l.trimStart().startsWith(`${opt} `));
    assert.match(line ?? '', /default/, `${opt} is listed with its default`);
  }
  assert.match(stdout, /-h, --help/);
});

test('refuses a --stream token the wire would refuse, naming it, with exit code 2', { timeout: 20_000 }, async () => {
  for (const spec of ['events:9007199254740992', 'events:-1', 'events:Now', 'events:']) {
    // Killed after 2 s: a tail that took the token would keep retrying port 9.
    const child = spawn(process.execPath, [BIN, 'tail', '--connect', '127.0.0.1:9', '--stream', spec], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 2_000 });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise((resolve) => child.on('close', resolve));
    assert.equal(code, 2, spec);
    assert.ok(stderr.includes(`bad --stream "${spec}": expected NAME or NAME:TOKEN`), `${spec}: ${stderr}`);
  }
});

test('--instance follows a stream per writer: each JSON line says its instance, and a drop loses and doubles nothing', { timeout: 20_000 }, async (t) => {
  const peer = await TodayPeer.start();
  t.after(() => peer.close());
  peer.append('events', 'event_persister1', 1031, ['{"n":1}']);
  peer.append('events', 'event_persister2', 1032, ['{"n":2}', '{"n":3}']);
  const child = spawn(
    process.execPath,
    [BIN, 'tail', '--connect', `127.0.0.1:${peer.port}`, '--stream', 'events:1030', '--instance', '*', '--ping-interval-ms', '200'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.after(() => void child.kill('SIGKILL'));
  const out = new JsonLineLog<TailLine & { instance: string }>('tail stdout');
  out.attach(child.stdout);
  const err = new JsonLineLog<{ msg: string; instance?: string }>('tail stderr');
  err.attach(child.stderr);
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  await out.waitFor((l) => l.token === 1032 && (l.row as { n: number }).n === 3, 10_000, 'the batch of event_persister2');
  peer.cut();
  await err.waitFor((l) => l.msg === 'replication connection lost', 10_000, 'the drop logged');
  peer.append('events', 'event_persister1', 1033, ['{"n":4}']);
  await out.waitFor((l) => l.token === 1033, 10_000, 'the row after the drop');
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.deepEqual(out.all(), [
    { stream: 'events', instance: 'event_persister1', token: 1031, row: { n: 1 } },
    { stream: 'events', instance: 'event_persister2', token: 1032, row: { n: 2 } },
    { stream: 'events', instance: 'event_persister2', token: 1032, row: { n: 3 } },
    { stream: 'events', instance: 'event_persister1', token: 1033, row: { n: 4 } },
  ]);
  assert.ok(err.all().some((l) => l.msg === 'position' && l.instance === 'event_persister2'), 'positions are logged with their instance');
  assert.deepEqual(
    peer.received.map((lines) => lines.filter((l) => l.startsWith('REPLICATE'))),
    [['REPLICATE events * 1030'], ['REPLICATE events * 0', 'REPLICATE events event_persister1 1031', 'REPLICATE events event_persister2 1032']],
  );
});

test('--instance with a bad name, or * beside names, is a usage error (exit 2)', { timeout: 20_000 }, async () => {
  for (const [args, problem] of [
    [['--instance', 'a b'], 'bad --instance "a b"'],
    [['--instance', '*', '--instance', 'event_persister1'], '--instance * already means every writer instance'],
  ] as const) {
    const { code, stderr } = await runTail(['--connect', '127.0.0.1:9', '--stream', 'events', ...args]);
    assert.equal(code, 2, stderr);
    assert.ok(stderr.includes(problem), stderr);
  }
});
