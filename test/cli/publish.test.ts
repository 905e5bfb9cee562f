// `replication-gateway publish` as a child process against the real server.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ReplicationServer } from '../../src/server.js';
import { projectRoot } from '../support/project-root.js';

const BIN = path.join(projectRoot(), 'bin', 'replication-gateway.js');

/** Runs the CLI with `stdin` as its input, written after `stdinDelayMs` (a slow pipe) when given; killed after 15 s. */
function runCli(args: string[], stdin: string, stdinDelayMs = 0): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], timeout: 15_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    if (stdinDelayMs > 0) setTimeout(() => child.stdin.end(stdin), stdinDelayMs);
    else child.stdin.end(stdin);
  });
}

async function startServer(t: TestContext): Promise<{ server: ReplicationServer; port: number }> {
  const server = new ReplicationServer({ serverName: 'gw.test', streams: ['events'], writerToken: 'w' });
  t.after(() => server.close());
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return { server, port };
}

test('publishes stdin rows with rising tokens, skips a bad line by number, and prints a summary', { timeout: 20_000 }, async (t) => {
  const { server, port } = await startServer(t);
  await server.publish('events', [['before']]);
  const lines = Array.from({ length: 1000 }, (_, i) => JSON.stringify(['$ev', i]));
  lines[4] = '{not json';
  lines.splice(10, 0, '');
  const { code, stdout, stderr } = await runCli(
    ['publish', '--connect', `127.0.0.1:${port}`, '--auth', 'w', '--stream', 'events'],
    lines.join('\n') + '\n',
  );
  assert.equal(code, 0, stderr);
  const summary = JSON.parse(stdout.trim()) as Record<string, number>;
  assert.equal(summary['rows'], 999);
  assert.equal(summary['badLines'], 1);
  assert.equal(summary['firstToken'], 2);
  assert.equal(summary['lastToken'], 1000);
  assert.ok((summary['rowsPerSecond'] ?? 0) > 0);
  assert.equal(server.head('events'), 1000);
  const bad = stderr
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { line?: number; msg: string })
    .filter((l) => l.line !== undefined);
  assert.deepEqual(
    bad.map((l) => l.line),
    [5],
  );
});

for (const [how, delayMs] of [['at once', 0], ['through a slow pipe', 500]] as const) {
  test(`a re-run with the same --start-token publishes only what is missing (input ${how})`, { timeout: 20_000 }, async (t) => {
    const { server, port } = await startServer(t);
    const rows = Array.from({ length: 2000 }, (_, i) => JSON.stringify(['$ev', i]));
    const args = ['publish', '--connect', `127.0.0.1:${port}`, '--auth', 'w', '--stream', 'events', '--start-token', '1'];
    const summaryOf = async (input: string[]): Promise<Record<string, number>> => {
      const { code, stdout, stderr } = await runCli(args, input.join('\n') + '\n', delayMs);
      assert.equal(code, 0, stderr);
      return JSON.parse(stdout.trim()) as Record<string, number>;
    };
    const first = await summaryOf(rows.slice(0, 1000));
    assert.deepEqual([first['firstToken'], first['lastToken'], first['alreadyStored']], [1, 1000, 0]);
    assert.equal(server.head('events'), 1000);
    const rerun = await summaryOf(rows);
    assert.deepEqual([rerun['rows'], rerun['firstToken'], rerun['lastToken'], rerun['alreadyStored']], [2000, 1, 2000, 1000]);
    assert.equal(server.head('events'), 2000);
    const again = await summaryOf(rows);
    assert.deepEqual([again['lastToken'], again['alreadyStored']], [2000, 2000], 'everything already stored: nothing written');
    assert.equal(server.head('events'), 2000);
  });
}

for (const [what, args, reason] of [
  ['a bad credential', ['--auth', 'wrong', '--stream', 'events'], /refused \(AUTH_FAILED\): AUTH failed/],
  ['an unknown stream', ['--stream', 'evnets'], /refused \(UNKNOWN_STREAM\): unknown stream: evnets/],
] as const) {
  test(`exits 2 with the reason when the gateway refuses ${what}`, { timeout: 20_000 }, async (t) => {
    const { port } = await startServer(t);
    const argv = ['publish', '--connect', `127.0.0.1:${port}`, ...((args as readonly string[]).includes('--auth') ? [] : ['--auth', 'w']), ...args];
    const { code, stderr } = await runCli(argv, '[1]\n');
    assert.equal(code, 2, stderr);
    assert.match(stderr, reason);
  });
}

test('refuses a --start-token past 2^53-1 (the wire would refuse its rows) with exit code 2', { timeout: 20_000 }, async () => {
  const { code, stderr } = await runCli(['publish', '--connect', '127.0.0.1:9', '--auth', 'w', '--stream', 'events', '--start-token', '9007199254740992'], '[1]\n');
  assert.equal(code, 2, stderr);
  assert.match(stderr, /numbers must be whole/);
});

test('--help lists every option with its default', async () => {
  const { code, stdout } = await runCli(['publish', '--help'], '');
  assert.equal(code, 0);
  for (const opt of ['--connect', '--auth', '--stream', '--start-token', '--server-name', '--name', '--max-unstored-rows', '--ping-interval-ms']) {
    const line = stdout.split('\n').find((l) => l.trimStart().startsWith(`${opt} `));
    assert.match(line ?? '', /default/, `${opt} is listed with its default`);
  }
  assert.match(stdout, /-h, --help/);
});
