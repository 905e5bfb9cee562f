// The bench harness end to end, in its tiny mode (a few thousand rows, S = 2,
// nats-server and redis-server skipped): run as a user runs it, a child
// `node dist/bench/main.js`, with the results in a temporary directory. It
// must verify delivery (W6: over TCP, WebSocket text and WebSocket msgpack,
// on each --ws-engine that runs here) and write result files with the documented fields,
// and a subscriber that drops a row (--drop-row) must fail the run.
// No timing assertions: only that figures exist and are positive.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENGINES } from '../bindings/ws-harness.js';
import { redisSkip } from '../support/redis-server.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = path.join(ROOT, 'dist', 'bench', 'main.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function runBench(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env.BENCH_RESULTS_DIR;
    delete env.npm_lifecycle_event;
    execFile(process.execPath, [MAIN, ...args], { cwd: ROOT, env, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

async function readJson(dir: string, id: string): Promise<Record<string, any>> {
  return JSON.parse(await readFile(path.join(dir, `${id}.json`), 'utf8')) as Record<string, any>;
}

/** node dist/bench/report.js on the results in `dir`: the page it writes there (report.md). */
function reportOf(dir: string): Promise<string> {
  return new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [path.join(ROOT, 'dist/bench/report.js'), '--results-dir', dir, '--out', path.join(dir, 'report.md'), '--svg', path.join(dir, 'chart.svg')], { cwd: ROOT }, (err) =>
      err ? reject(err) : resolve(readFile(path.join(dir, 'report.md'), 'utf8')),
    ),
  );
}

/** Runs the bench with `args` and its results in a temporary directory, removed after the test. */
async function benchInTempDir(t: TestContext, args: string[]): Promise<{ run: Run; dir: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-harness-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return { run: await runBench([...args, '--results-dir', dir]), dir };
}

test('the tiny run checks delivery, prints the summary and writes result files with the documented fields', { timeout: 90_000 }, async (t) => {
  const { run, dir } = await benchInTempDir(t, ['--tiny', '--only', 'W1,W3,W6']);
  assert.equal(run.code, 0, `bench exited ${run.code}:\n${run.stderr}`);

  // Progress on stderr, the summary table on stdout.
  assert.match(run.stderr, /W1 gateway S=2 round 1\/1: .*rows/);
  assert.match(run.stdout, /W1\s+S=2\s+delivered rows\/s/);
  assert.match(run.stdout, /skipped nats-server: skipped by --tiny/);

  const w1 = await readJson(dir, 'W1');
  for (const key of ['id', 'title', 'ok', 'mode', 'command', 'startedAt', 'runStartedAt', 'seconds', 'machine', 'settings', 'summary', 'skipped', 'notes', 'data']) {
    assert.ok(key in w1, `W1.json has ${key}`);
  }
  assert.equal(w1.id, 'W1');
  assert.equal(w1.ok, true);
  assert.equal(w1.mode, 'tiny');
  assert.match(w1.command, /^node dist\/bench\/main\.js --tiny/);
  for (const key of ['cpu', 'cores', 'node', 'platform', 'release', 'memoryBytes']) assert.ok(key in w1.machine, `machine.${key}`);
  assert.deepEqual(
    w1.skipped.map((s: { system: string }) => s.system).sort(),
    ['nats-server', 'redis-server'],
  );

  // Every system that ran delivered every row to both subscribers (the subscriber checks tokens; the totals agree).
  const cells = w1.data.cells as Record<string, any>[];
  assert.deepEqual(cells.map((c) => c.system).sort(), ['gateway', 'naive-relay', 'zero-copy-relay']);
  for (const c of cells) {
    assert.equal(c.subscribers, 2);
    assert.ok(c.rowsPerSec > 0, `${c.system} rowsPerSec`);
    assert.ok(c.mbPerSec > 0, `${c.system} mbPerSec`);
    assert.ok(c.cpuSecondsPer1M >= 0, `${c.system} cpuSecondsPer1M`);
    assert.ok(c.peakRssBytes > 0, `${c.system} peakRssBytes`);
  }
  for (const r of w1.data.runs as Record<string, any>[]) assert.equal(r.deliveredRows, r.rows * 2, `${r.system} delivered every row twice`);

  // Summary rows: the gateway's figure beside each baseline, with a ratio.
  const vsNaive = (w1.summary as Record<string, any>[]).find((s) => s.baseline?.name === 'naive relay');
  assert.ok(vsNaive !== undefined, 'a summary row against the naive relay');
  assert.equal(vsNaive.scenario, 'W1');
  assert.equal(vsNaive.case, 'S=2');
  assert.ok(vsNaive.value > 0 && vsNaive.baseline.value > 0 && vsNaive.ratio > 0);

  const w3 = await readJson(dir, 'W3');
  assert.equal(w3.ok, true);
  assert.equal(w3.data.rows, 5000);
  assert.ok(w3.data.rowsPerSec > 0);
  assert.ok(w3.data.peakGrowthBytes >= 0);

  // W6: a run fails unless every subscriber got every row, so ok means delivery was checked in each mode, on each engine that runs here.
  const w6 = await readJson(dir, 'W6');
  assert.equal(w6.ok, true);
  const engines = ENGINES.filter((e) => e.skip === false).map((e) => e.name);
  assert.deepEqual(
    w6.data.cells.map((c: { transport: string; engine: string | null }) => `${c.transport} ${c.engine}`),
    ['tcp null', ...engines.flatMap((e) => [`ws ${e}`, `ws-msgpack ${e}`, `ws-msgpack-scan ${e}`])],
  );
  for (const c of w6.data.cells as Record<string, any>[]) assert.ok(c.rowsPerSec > 0, `W6 ${c.transport} ${c.engine} rowsPerSec`);
  assert.deepEqual(w6.summary.map((s: { case: string }) => s.case), engines.flatMap((e) => [`S=2, text, ${e}`, `S=2, msgpack, ${e}`, `S=2, msgpack token scan, ${e}`]));
  assert.deepEqual(
    w6.skipped.map((s: { system: string }) => s.system),
    ENGINES.filter((e) => e.skip !== false).map((e) => `gateway on --ws-engine ${e.name}`),
  );
  assert.match(run.stdout, /W6\s+S=2, msgpack, ws\s+WebSocket delivered rows\/s/);
  assert.match(run.stdout, /W6\s+S=2, msgpack token scan, ws\s+WebSocket delivered rows\/s/);

});

test('W7 in the tiny run: every log kind caught up with delivery checked, and every --fsync setting stored every row', { timeout: 90_000 }, async (t) => {
  const { run, dir } = await benchInTempDir(t, ['--tiny', '--only', 'W7']);
  assert.equal(run.code, 0, `bench exited ${run.code}:\n${run.stderr}`);
  const w7 = await readJson(dir, 'W7');
  assert.equal(w7.ok, true);
  assert.equal(w7.data.rows, 5000);
  assert.deepEqual(Object.keys(w7.data.catchUp), ['memory', 'file']);
  for (const c of Object.values(w7.data.catchUp) as Record<string, any>[]) assert.ok(c.rowsPerSec > 0 && c.peakGrowthBytes >= 0);
  assert.deepEqual(Object.keys(w7.data.ingest), ['memory', 'file always', 'file interval:100', 'file never']);
  for (const x of Object.values(w7.data.ingest) as Record<string, any>[]) assert.ok(x.rowsPerSec > 0 && x.cpuSeconds >= 0);
  assert.match(run.stdout, /W7\s+ingest of 5\.0 k rows, file log, --fsync interval:100\s+writer rows\/s stored/);
});

test('W10 in the tiny run: every subscriber read every row at the steady rate, with latency, CPU per delivered row and the report section', { timeout: 90_000 }, async (t) => {
  const { run, dir } = await benchInTempDir(t, ['--tiny', '--only', 'W10']);
  assert.equal(run.code, 0, `bench exited ${run.code}:\n${run.stderr}`);
  const w10 = await readJson(dir, 'W10');
  assert.equal(w10.ok, true);
  assert.deepEqual(w10.settings, { rate: 200, seconds: 1, rows: 200, subscribers: 5, gatewayFlags: 'defaults' });
  const gateway = (w10.data.systems as Record<string, any>[]).find((x) => x.system === 'gateway')!;
  assert.equal(gateway.samples, 200 * 5, 'every row at every subscriber');
  assert.ok(gateway.p99 > 0 && gateway.p999 >= gateway.p99 && gateway.deliveredRowsPerSec > 0 && gateway.serverPeakRssBytes > 0);
  assert.match(run.stdout, /W10\s+0\.2k rows\/s, S=5\s+server CPU per delivered row/);
  const report = await reportOf(dir);
  assert.match(report, /\| system \| delivered rows\/s \| p50 \| p99 \| p99\.9 \|/);
  // The page ends with its hand-written part (A/B records, profiles): a new report keeps it as it is.
  const mark = report.indexOf('<!-- Written by hand from here on');
  assert.ok(mark > 0, 'the page ends with the hand-written mark');
  const note = '\n## A/B: a change\n\nmain 0.40, branch 0.43 (node dist/bench/main.js --only W1)\n';
  await writeFile(path.join(dir, 'report.md'), report + note);
  const again = await reportOf(dir);
  assert.equal(again, report + note, 'regenerated, with the hand-written part kept once');
});

test('W9 in the tiny run: a gateway following a Synapse channel on a real redis-server stores every row beside a bare subscriber, and serves them all to TCP subscribers', { timeout: 90_000, skip: redisSkip() }, async (t) => {
  const { run, dir } = await benchInTempDir(t, ['--tiny', '--only', 'W9']);
  assert.equal(run.code, 0, `bench exited ${run.code}:\n${run.stderr}`);
  const w9 = await readJson(dir, 'W9');
  assert.equal(w9.ok, true);
  assert.equal(w9.data.rows, 3_000);
  assert.ok(w9.data.ingest.bareRowsPerSec > 0 && w9.data.ingest.gatewayRowsPerSec > 0, JSON.stringify(w9.data.ingest));
  assert.equal(w9.data.delivery.subscribers, 2);
  assert.ok(w9.data.delivery.rowsPerSec > 0, 'the subscribers checked every row, in order, once');
  assert.match(run.stdout, /W9\s+ingest from Redis pub\/sub\s+rows\/s/);
});

test('a subscriber that drops a row fails the run with a message naming the gap', { timeout: 60_000 }, async (t) => {
  const { run, dir } = await benchInTempDir(t, ['--tiny', '--only', 'W1', '--systems', 'gateway', '--drop-row', '100']);
  assert.equal(run.code, 1, `bench should exit 1, got ${run.code}:\n${run.stderr}`);
  assert.match(run.stderr, /W1 FAILED: .*delivery check failed: subscriber 0: expected token 100, saw 101 \(gap: rows lost\)/);
  const w1 = await readJson(dir, 'W1');
  assert.equal(w1.ok, false);
  assert.match(w1.error, /gap: rows lost/);
});

test('M7 in the quick run: the probe times every row with and without a PING flood beside it, over TCP and over each WebSocket engine', { timeout: 90_000 }, async (t) => {
  const { run, dir } = await benchInTempDir(t, ['--quick', '--only', 'M7']);
  assert.equal(run.code, 0, `bench exited ${run.code}:\n${run.stderr}`);
  const m7 = await readJson(dir, 'M7');
  assert.equal(m7.ok, true);
  const rows = m7.rows as Record<string, any>[];
  const engines = ENGINES.filter((e) => e.skip === false).map((e) => e.name);
  assert.deepEqual(rows.map((r) => r.baseline), [true, false, ...engines.map(() => false)]);
  assert.match(rows[1]!.name, /^beside one TCP connection flooding PINGs: /);
  engines.forEach((engine, i) => assert.match(rows[2 + i]!.name, new RegExp(`^beside one WebSocket \\(${engine}\\) flooding ~1 MB messages of PINGs \\(\\d+ MB sent`)));
  for (const r of rows) assert.match(r.name, /: p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms$/);
  assert.ok(rows[1]!.ratio > 0, 'the flooded p99 is compared with the quiet one');
  assert.match(run.stdout, /M7\s+no flood \(baseline\): p50/);
});
