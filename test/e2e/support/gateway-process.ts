// Runs `replication-gateway serve` as a child process the way an operator
// does (node bin/replication-gateway.js serve ...), on 127.0.0.1 with port 0
// and a ready file, and gives tests its ports, its JSON log lines and a way
// to stop it. Every child is killed when the test process ends.
//
//   const gw = await startGateway(['--streams', 'events']);
//   const client = await LineClient.connect(gw.tcp);
//   ...
//   assert.equal((await gw.stop()).code, 0);

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { projectRoot } from '../../support/project-root.js';
import { JsonLineLog, type JsonObject } from '../../support/json-line-log.js';

export const BIN = path.join(projectRoot(), 'bin', 'replication-gateway.js');
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 15_000;

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly tcp: number;
  /** null with --http off. */
  readonly http: number | null;
  readonly readyFile: string;
  /** pino's JSON lines from stdout. */
  readonly logs: JsonLineLog<JsonObject>;
  readonly exited: Promise<Exit>;
  stderr(): string;
  /** Sends `signal` (default SIGTERM) and waits for the exit (SIGKILL after a while). */
  stop(signal?: NodeJS.Signals): Promise<Exit>;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** Defaults to a fresh temporary file. */
  readyFile?: string;
  /** Without the defaults for --listen/--http/--ready-file. */
  bare?: boolean;
  cwd?: string;
  timeoutMs?: number;
}

/** The environment of a child without any RG_ variable from ours (tests choose their own). */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RG_') && v !== undefined) env[k] = v;
  return { ...env, ...extra };
}

export async function startGateway(args: string[], opts: StartOptions = {}): Promise<GatewayProcess> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rg-e2e-'));
  const readyFile = opts.readyFile ?? path.join(dir, 'ready.json');
  const fullArgs = opts.bare
    ? args
    : ['--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--ready-file', readyFile, ...args];
  const child = spawn(process.execPath, [BIN, 'serve', ...fullArgs], {
    cwd: opts.cwd ?? projectRoot(),
    env: cleanEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const logs = new JsonLineLog<JsonObject>(`gateway pid ${child.pid}`);
  logs.attach(child.stdout!);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const exited = new Promise<Exit>((resolve) =>
    child.once('close', (code, signal) => {
      live.delete(child);
      void rm(dir, { recursive: true, force: true });
      resolve({ code, signal });
    }),
  );
  const timeoutMs = opts.timeoutMs ?? START_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  type Ready = { tcp: number; http: number | null; pid: number };
  let ready = null as Ready | null;
  let exit: Exit | null = null;
  void exited.then((e) => (exit = e));
  while (ready === null) {
    if (exit !== null) throw new Error(`gateway exited (${JSON.stringify(exit)}) before it was ready; stderr: ${stderr}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`gateway not ready within ${timeoutMs} ms; stderr: ${stderr}; logs: ${JSON.stringify(logs.all().slice(-5))}`);
    }
    if (existsSync(readyFile)) ready = JSON.parse(readFileSync(readyFile, 'utf8')) as Ready;
    else await delay(20);
  }
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const force = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    const e = await exited;
    clearTimeout(force);
    return e;
  };
  return {
    child,
    pid: child.pid!,
    tcp: ready.tcp,
    http: ready.http,
    readyFile,
    logs,
    exited,
    stderr: () => stderr,
    stop,
  };
}

/** Runs `serve` to its exit (for settings that must stop it at once). */
export function runGateway(args: string[], env: Record<string, string> = {}, timeoutMs = 10_000): Promise<Exit & { stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', ...args], { cwd: projectRoot(), env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`serve ${args.join(' ')} did not exit within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export function killAllGateways(): void {
  for (const child of live) child.kill('SIGKILL');
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A raw TCP client that sends and reads lines, as a person with netcat does. */
export class LineClient {
  readonly lines: string[] = [];
  readonly closed: Promise<void>;
  private pending = '';
  private conditions = new Set<() => boolean>();

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.pending += chunk.toString('utf8');
      let nl: number;
      while ((nl = this.pending.indexOf('\n')) !== -1) {
        this.lines.push(this.pending.slice(0, nl));
        this.pending = this.pending.slice(nl + 1);
      }
      for (const c of this.conditions) c();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static connect(port: number, host = '127.0.0.1'): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host }, () => resolve(new LineClient(socket)));
      socket.once('error', reject);
    });
  }

  send(...lines: string[]): void {
    this.socket.write(lines.map((l) => `${l}\n`).join(''));
  }

  /** Resolves once `cond()` holds (checked now and on every chunk received). */
  until(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (!cond()) return false;
        clearTimeout(timer);
        this.conditions.delete(check);
        resolve();
        return true;
      };
      const timer = setTimeout(() => {
        this.conditions.delete(check);
        reject(new Error(`${what}: not within ${timeoutMs} ms; last lines ${JSON.stringify(this.lines.slice(-8))}`));
      }, timeoutMs);
      // A wait nobody needs any more (the loser of a race) must not keep the test process up.
      timer.unref();
      if (!check()) this.conditions.add(check);
    });
  }

  /** The first line matching `pred`, already received or still to come. */
  async waitFor(pred: (line: string) => boolean, timeoutMs = 5_000): Promise<string> {
    let found: string | undefined;
    await this.until(() => (found = this.lines.find(pred)) !== undefined, 'a matching line', timeoutMs);
    return found!;
  }

  /** Resolves once `n` lines match `pred`; returns them. */
  async waitForCount(pred: (line: string) => boolean, n: number, timeoutMs = 5_000): Promise<string[]> {
    let found: string[] = [];
    await this.until(() => (found = this.lines.filter(pred)).length >= n, `${n} matching lines`, timeoutMs);
    return found;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** GET on the gateway's HTTP listener. */
export async function httpGet(port: number, pathname: string): Promise<{ status: number; contentType: string; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${pathname}`);
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: await res.text() };
}

/** Prometheus text as name{labels} -> value. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)$/.exec(line);
    if (m === null) throw new Error(`not a Prometheus sample line: ${line}`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

