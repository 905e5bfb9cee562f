// The bench's child processes (relays, writers, subscribers; the gateway is
// started by test/support/gateway-child.ts): spawned with their stdout kept
// (the one-JSON-line results), stderr lines handed to a callback (progress)
// and its tail kept (for failure messages), and killed by pid if the bench
// exits first, so none outlives a run.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** A bench script by its path under dist/bench, e.g. `load/subscriber.js`. */
export function benchScript(relative: string): string {
  return fileURLToPath(new URL(`../${relative}`, import.meta.url));
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Child {
  readonly label: string;
  readonly pid: number;
  readonly exited: Promise<Exit>;
  /** True until the process has exited. */
  alive(): boolean;
  stdout(): string;
  /** The last few KB of stderr, for failure messages. */
  stderrTail(): string;
  /** SIGTERM, then SIGKILL after graceMs; resolves on exit. */
  stop(graceMs?: number): Promise<Exit>;
}

export interface SpawnOptions {
  label: string;
  /** Each stderr line as it comes (progress). */
  onStderrLine?: (line: string) => void;
  /** Send stdout to this file instead of keeping it (a server's log). */
  stdoutFile?: string;
  env?: NodeJS.ProcessEnv;
}

const STDERR_TAIL_CHARS = 4000;
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Every child still running: stopped when a run is interrupted. */
export function killAllChildren(): void {
  for (const child of running) child.kill('SIGKILL');
}

export function spawnChild(command: string, args: string[], opts: SpawnOptions): Child {
  const proc = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
  });
  if (proc.pid === undefined) throw new Error(`cannot start ${opts.label} (${command})`);
  running.add(proc);
  let stdout = '';
  let stderrTail = '';
  let pendingLine = '';
  let hasExited = false;
  if (opts.stdoutFile !== undefined) proc.stdout!.pipe(createWriteStream(opts.stdoutFile));
  else proc.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  proc.stderr!.on('data', (chunk: Buffer) => {
    const text = chunk.toString();
    stderrTail = (stderrTail + text).slice(-STDERR_TAIL_CHARS);
    if (opts.onStderrLine === undefined) return;
    const lines = (pendingLine + text).split('\n');
    pendingLine = lines.pop()!;
    for (const line of lines) opts.onStderrLine(line);
  });
  const exited = new Promise<Exit>((resolve) => {
    proc.once('close', (code, signal) => {
      hasExited = true;
      running.delete(proc);
      resolve({ code, signal });
    });
  });
  return {
    label: opts.label,
    pid: proc.pid,
    exited,
    alive: () => !hasExited,
    stdout: () => stdout,
    stderrTail: () => stderrTail.trim(),
    async stop(graceMs = 5000) {
      if (hasExited) return exited;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      const exit = await exited;
      clearTimeout(timer);
      return exit;
    },
  };
}

export function spawnNode(script: string, args: string[], opts: SpawnOptions): Child {
  return spawnChild(process.execPath, [script, ...args], opts);
}

/** The last JSON line a child printed on stdout, or null. */
export function lastJsonLine<T = Record<string, unknown>>(child: Child): T | null {
  const lines = child.stdout().trim().split('\n').reverse();
  for (const line of lines) {
    if (!line.startsWith('{')) continue;
    try {
      return JSON.parse(line) as T;
    } catch {
      // not a result line
    }
  }
  return null;
}

/** Rejects after ms with `message`, unless `promise` settles first. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
