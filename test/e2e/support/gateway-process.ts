// A gateway for end-to-end tests: `replication-gateway serve` started as an
// operator does (test/support/gateway-child.ts), on 127.0.0.1 with port 0
// and a ready file, with its ports, its JSON log lines and a way to stop it.
// Every child is killed when the test process ends.
//
//   const gw = await startGateway(['--streams', 'events']);
//   const client = await LineClient.connect(gw.tcp);
//   ...
//   assert.equal((await gw.stop()).code, 0);

import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { JsonLineLog, type JsonObject } from '../../support/json-line-log.js';
import { killAllGatewayChildren, spawnServe, startGatewayChild, type Exit, type GatewayChild } from '../../support/gateway-child.js';
const START_TIMEOUT_MS = 15_000;

export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly tcp: number;
  /** null with --http off. */
  readonly http: number | null;
  /** With --monitor. */
  readonly monitor: number | null;
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
  /** Without the defaults for --listen/--http. */
  bare?: boolean;
  cwd?: string;
  timeoutMs?: number;
}

export async function startGateway(args: string[], opts: StartOptions = {}): Promise<GatewayProcess> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rg-e2e-'));
  const readyFile = opts.readyFile ?? path.join(dir, 'ready.json');
  const logs = new JsonLineLog<JsonObject>('gateway');
  let gw: GatewayChild;
  try {
    gw = await startGatewayChild({
      args: opts.bare ? args : ['--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', ...args],
      readyFile,
      ...(opts.env !== undefined ? { env: opts.env } : {}),
      ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
      readyTimeoutMs: opts.timeoutMs ?? START_TIMEOUT_MS,
      stdout: (stdout) => logs.attach(stdout),
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}; logs: ${JSON.stringify(logs.all().slice(-5))}`);
  }
  logs.label = `gateway pid ${gw.pid}`;
  void gw.exited.then(() => rm(dir, { recursive: true, force: true }));
  return {
    child: gw.child,
    pid: gw.pid,
    tcp: gw.ready.tcp,
    http: gw.ready.http,
    monitor: gw.ready.monitor ?? null,
    readyFile,
    logs,
    exited: gw.exited,
    stderr: gw.stderr,
    stop: (signal) => gw.stop(signal),
  };
}

/** Runs `serve` to its exit (for settings that must stop it at once). */
export function runGateway(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<Exit & { stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawnServe(args, { env });
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
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export function killAllGateways(): void {
  killAllGatewayChildren();
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

