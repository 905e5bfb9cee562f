// `npm start` as a container or a process manager runs it: SIGTERM to npm stops the gateway with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { projectRoot } from '../support/project-root.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('SIGTERM to `npm start` stops the gateway it started, not just npm', { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rg-npm-start-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const readyFile = path.join(dir, 'ready.json');
  const npm = spawn('npm', ['start', '--', '--listen', '127.0.0.1:0', '--http', 'off', '--ready-file', readyFile], {
    cwd: projectRoot(),
    stdio: 'ignore',
  });
  const npmExit = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
  let gatewayPid = 0;
  t.after(() => {
    if (gatewayPid !== 0 && alive(gatewayPid)) process.kill(gatewayPid, 'SIGKILL');
    npm.kill('SIGKILL');
  });
  for (let i = 0; i < 200 && !existsSync(readyFile); i++) await delay(50);
  assert.ok(existsSync(readyFile), 'the gateway wrote its ready file within 10 s');
  gatewayPid = (JSON.parse(readFileSync(readyFile, 'utf8')) as { pid: number }).pid;
  assert.notEqual(gatewayPid, npm.pid);

  npm.kill('SIGTERM');
  await npmExit;
  for (let i = 0; i < 100 && alive(gatewayPid); i++) await delay(50);
  assert.equal(alive(gatewayPid), false, 'the gateway process exited with npm');
  assert.equal(existsSync(readyFile), false, 'the gateway stopped in order: its ready file is gone');
});
