// bench/profile-top.ts as a user runs it: a real profile of a node process
// that spends its time in one function must put that function first; and the
// bench's BENCH_GATEWAY_NODE_ARGS, which it is for, profiles the gateway alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TOOL = path.join(ROOT, 'dist', 'bench', 'profile-top.js');
const MAIN = path.join(ROOT, 'dist', 'bench', 'main.js');

test('names the function a profiled process spent its time in, with its share of the busy time', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rg-profile-top-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // About 300 ms in spinHere, bounded by the clock.
  const script = 'function spinHere(){const end=Date.now()+300;let x=0;while(Date.now()<end)x+=Math.sqrt(x+1);return x}spinHere()';
  await run(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, '-e', script], { timeout: 30_000 });
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(dir, f));
  assert.equal(files.length, 1);

  const { stdout } = await run(process.execPath, [TOOL, '--top', '3', ...files], { timeout: 30_000 });
  const lines = stdout.trim().split('\n');
  assert.match(lines[0]!, /^\d+\.\d\d s busy in 1 profile\(s\)$/);
  const first = /^\s*\d+ ms\s+([\d.]+)%  (\S+)/.exec(lines[1]!);
  assert.ok(first, lines[1]);
  assert.equal(first[2], 'spinHere');
  assert.ok(Number(first[1]) > 50, `spinHere's share: ${first[1]}%`);
  assert.ok(lines.length <= 4, '--top 3 prints at most 3 functions');

  const none = await run(process.execPath, [TOOL, '--from', 'no-such-script', ...files], { timeout: 30_000 });
  assert.match(none.stdout, /^0\.00 s busy/, '--from counts nothing before a sample in the script it names');
});

test('BENCH_GATEWAY_NODE_ARGS profiles the gateway process and no other, and profile-top reads its ingest', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rg-profile-bench-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const profiles = path.join(dir, 'profiles');
  const env: Record<string, string | undefined> = {
    ...process.env,
    // Sampled every 100 µs, over 60,000 rows (tens of ms of ingest): the tiny run's 3,000 rows were a few ms, and beside another test some runs sampled none of it.
    BENCH_GATEWAY_NODE_ARGS: `--cpu-prof --cpu-prof-interval=100 --cpu-prof-dir=${profiles}`,
  };
  delete env.BENCH_RESULTS_DIR;
  delete env.npm_lifecycle_event;
  await run(process.execPath, [MAIN, '--tiny', '--only', 'W1', '--systems', 'gateway', '--rows', '60000', '--results-dir', path.join(dir, 'results')], {
    cwd: ROOT,
    env,
    timeout: 60_000,
  });
  const files = (await readdir(profiles)).filter((f) => f.endsWith('.cpuprofile'));
  assert.ok(files.length > 0, 'the gateway wrote a profile');
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: one process (its main thread and its worker threads).
  assert.equal(new Set(files.map((f) => f.split('.')[3])).size, 1, `profiles of one process only: ${files.join(', ')}`);

  const { stdout } = await run(process.execPath, [TOOL, '--from', 'src/core/', '--top', '200', ...files.map((f) => path.join(profiles, f))], {
    timeout: 30_000,
  });
  // The ingest of a writer's lines, which only the gateway runs: its samples fall in one file or the other as V8 inlines, run to run.
  assert.match(stdout, /dist\/src\/core\/(writer-ingest|server-connection)\.js:\d+/, 'the writer ingest (gateway only) is in the profile');
});
