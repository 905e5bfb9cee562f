// Runs `replication-gateway serve` as a child process the way an operator
// does (node bin/replication-gateway.js serve ...), with none of our RG_
// variables, and waits for its ready file. The end-to-end tests
// (test/e2e/support/gateway-process.ts) and the bench's gateway
// (bench/scenarios/servers.ts) both start theirs here. Every child still
// running when this process exits is killed.
//
//   const gw = await startGatewayChild({ args: ['--listen', '127.0.0.1:0'], readyFile, readyTimeoutMs, stdout: { file } });
//   ... gw.ready.tcp ...
//   await gw.stop();

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { waitForReadyFile } from '../../src/bindings/ready-file.js';
import { projectRoot } from './project-root.js';

export const GATEWAY_BIN = path.join(projectRoot(), 'bin', 'replication-gateway.js');
/** How much of a child's stderr is kept for failure messages. */
const STDERR_KEPT_CHARS = 64 * 1024;
const DEFAULT_STOP_GRACE_MS = 15_000;

const live = new Set<ChildProcess>();
process.on('exit', () => killAllGatewayChildren());

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** What serve writes to its ready file. */
export interface GatewayReady {
  tcp: number;
  /** null with --http off. */
  http: number | null;
  /** With --monitor. */
  monitor?: number;
  pid: number;
}

/** The environment of a child without any RG_ variable from ours (callers choose their own), plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RG_') && v !== undefined) env[k] = v;
  return { ...env, ...extra };
}

/** `serve <args>` with stdout and stderr piped, killed if still running when this process exits. */
export function spawnServe(
  args: readonly string[],
  opts: { env?: Record<string, string>; cwd?: string; nodeArgs?: readonly string[] } = {},
): ChildProcess {
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), GATEWAY_BIN, 'serve', ...args], {
    cwd: opts.cwd ?? projectRoot(),
    env: cleanEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`cannot start ${GATEWAY_BIN}`);
  live.add(child);
  child.once('close', () => live.delete(child));
  return child;
}

export interface GatewayChildOptions {
  /** serve's arguments; `--ready-file <readyFile>` goes before them. */
  args: readonly string[];
  readyFile: string;
  /** Variables on top of our environment without its RG_ ones. */
  env?: Record<string, string>;
  cwd?: string;
  /** Options for node itself, before the script (e.g. --cpu-prof, which NODE_OPTIONS refuses). */
  nodeArgs?: readonly string[];
  readyTimeoutMs: number;
  /** pino's JSON lines: to a file, or to a reader attached before the wait (so the pipe never fills). */
  stdout: { file: string } | ((stdout: Readable) => void);
}

export interface GatewayChild {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly ready: GatewayReady;
  readonly exited: Promise<Exit>;
  /** What the child wrote to stderr (its last 64 KiB). */
  stderr(): string;
  /** Sends `signal` (default SIGTERM) and waits for the exit, with SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<Exit>;
}

/** Starts serve and resolves once its ready file is there; throws (having killed it) when it exits first or is late. */
export async function startGatewayChild(opts: GatewayChildOptions): Promise<GatewayChild> {
  const child = spawnServe(['--ready-file', opts.readyFile, ...opts.args], opts);
  if (typeof opts.stdout === 'function') opts.stdout(child.stdout!);
  else child.stdout!.pipe(createWriteStream(opts.stdout.file));
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-STDERR_KEPT_CHARS)));
  let hasExited = false;
  const exited = new Promise<Exit>((resolve) =>
    child.once('close', (code, signal) => {
      hasExited = true;
      resolve({ code, signal });
    }),
  );
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs = DEFAULT_STOP_GRACE_MS): Promise<Exit> => {
    if (!hasExited) child.kill(signal);
    const force = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const exit = await exited;
    clearTimeout(force);
    return exit;
  };
  let ready: GatewayReady;
  try {
    ready = await waitForReadyFile<GatewayReady>(opts.readyFile, opts.readyTimeoutMs, () => !hasExited);
  } catch (err) {
    const exit = hasExited ? `exited ${JSON.stringify(await exited)}` : 'killed';
    await stop('SIGKILL');
    throw new Error(`gateway not ready (${exit}): ${(err as Error).message}; stderr: ${stderr}`);
  }
  return { child, pid: child.pid!, ready, exited, stderr: () => stderr, stop };
}

export function killAllGatewayChildren(): void {
  for (const child of live) child.kill('SIGKILL');
}
