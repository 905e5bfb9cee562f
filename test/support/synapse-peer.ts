// Runs Synapse's own 2017 TCP replication peers (master.py, worker.py in
// ../shared/synapse-peer, see its README) for interop tests, with Debian's
// /usr/bin/python3 and python3-twisted. Port files and logs go to a fresh
// temporary folder per peer: the shared folder is read-only in CI.
//
//   const master = await startSynapseMaster({ streams: ['events'], prefill: 20 });
//   const worker = await startSynapseWorker({ port: master.port, streams: { events: 10 }, until: { events: 20 } });
//   assert.equal(await worker.exited, 0);
//
// Tests must not skip when the peer is missing: call requirePythonPeer() (or
// assert pythonPeerAvailable()) so CI fails with the install command.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, createWriteStream, existsSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JsonLineLog } from './json-line-log.js';
import {
  masterEvent,
  type MasterEvent,
  type MasterListening,
  type StreamToken,
  type WorkerEvent,
  type WorkerOp,
} from './synapse-peer-events.js';

export { JsonLineLog, type JsonObject } from './json-line-log.js';
export * from './synapse-peer-events.js';

export const PYTHON = '/usr/bin/python3';
export const PYTHON_PEER_INSTALL = 'apt-get install -y python3-twisted python3-ujson';

const DEFAULT_START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 3_000;
// Lower than the scripts' own hard stops (600 s, 60 s), so a peer orphaned
// by a test process killed with SIGKILL does not linger for long.
const DEFAULT_MASTER_MAX_SECONDS = 120;
const DEFAULT_WORKER_MAX_SECONDS = 30;

// ---------------------------------------------------------------- locating

/** The nearest folder above `from` holding a package.json (from dist/test/support: the project root). */
export function projectRoot(from = path.dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json in ${from} or above it`);
  }
}

/** ../shared/synapse-peer from the project root; SYNAPSE_PEER_DIR overrides it. */
export function synapsePeerDir(): string {
  const override = process.env['SYNAPSE_PEER_DIR'];
  return override ? path.resolve(override) : path.join(projectRoot(), '..', 'shared', 'synapse-peer');
}

export interface PythonPeerCheck {
  ok: boolean;
  /** Why not, with what to do about it; null when ok. */
  reason: string | null;
  /** python3-ujson importable (without it the peer uses a stdlib stand-in). */
  ujson: boolean;
}

let checked: PythonPeerCheck | undefined;

/** Checks once per process that the reference peer can run here. */
export function checkPythonPeer(): PythonPeerCheck {
  if (checked) return checked;
  const fail = (reason: string): PythonPeerCheck => (checked = { ok: false, reason, ujson: false });
  let dir: string;
  try {
    dir = synapsePeerDir();
  } catch (err) {
    return fail(`cannot find ../shared/synapse-peer: ${(err as Error).message} (set SYNAPSE_PEER_DIR)`);
  }
  const missing = ['master.py', 'worker.py', 'vendor/synapse/replication/tcp/protocol.py'].filter(
    (f) => !existsSync(path.join(dir, f)),
  );
  if (missing.length > 0) return fail(`${dir} lacks ${missing.join(', ')}`);
  if (!existsSync(PYTHON)) return fail(`${PYTHON} not found: ${PYTHON_PEER_INSTALL}`);
  const probe = 'import twisted\ntry:\n import ujson\n print("ujson")\nexcept ImportError:\n print("-")\n';
  const r = spawnSync(PYTHON, ['-c', probe], { encoding: 'utf8', timeout: 15_000 });
  if (r.status !== 0) {
    const why = (r.stderr ?? '').trim().split('\n').pop() || r.error?.message || `exit ${r.status}`;
    return fail(`Twisted is not importable by ${PYTHON} (${why}): ${PYTHON_PEER_INSTALL}`);
  }
  return (checked = { ok: true, reason: null, ujson: r.stdout.trim() === 'ujson' });
}

export function pythonPeerAvailable(): boolean {
  return checkPythonPeer().ok;
}

/** Throws, naming the install command, when the reference peer cannot run. */
export function requirePythonPeer(): void {
  const c = checkPythonPeer();
  if (!c.ok) throw new Error(`Synapse reference peer unavailable: ${c.reason}`);
}

// --------------------------------------------------------------- processes

const live = new Set<ChildProcess>();
let hooksInstalled = false;

function killAllNow(): void {
  for (const child of live) child.kill('SIGKILL');
}

// A test process that ends, normally or by a signal, takes its peers along.
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAllNow();
      // Keep the default outcome (death by the signal) unless someone else listens.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

interface SpawnedPeer<T extends object> {
  child: ChildProcess;
  pid: number;
  logDir: string;
  stderrPath: string;
  events: JsonLineLog<T>;
  exited: Promise<number | null>;
  stop(opts?: { keepLogs?: boolean }): Promise<void>;
  readStderr(): Promise<string>;
}

async function spawnPeer<T extends object>(
  role: 'master' | 'worker',
  logDir: string,
  args: string[],
  withStdin: boolean,
  keepLogs: boolean,
): Promise<SpawnedPeer<T>> {
  const script = `${role}.py`;
  const stderrPath = path.join(logDir, `${role}.err`);
  const stdoutLog = createWriteStream(path.join(logDir, `${role}.out`));
  const errFd = openSync(stderrPath, 'w');
  let child: ChildProcess;
  try {
    child = spawn(PYTHON, [script, ...args], {
      cwd: synapsePeerDir(),
      stdio: [withStdin ? 'pipe' : 'ignore', 'pipe', errFd],
      // No .pyc files in the shared (read-only) folder.
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' },
    });
  } finally {
    closeSync(errFd); // the child holds its own copy
  }
  installExitHooks();
  live.add(child);

  const events = new JsonLineLog<T>(`${script} (stderr: ${stderrPath})`);
  events.attach(child.stdout!, (chunk) => stdoutLog.write(chunk));
  child.stdin?.on('error', () => {}); // EPIPE once the worker has gone; send() reports it

  const exited = new Promise<number | null>((resolve) => {
    const done = (code: number | null): void => {
      live.delete(child);
      resolve(code);
    };
    // 'close' comes after stdout is drained, so events are complete by then.
    child.once('close', (code) => done(code));
    child.once('error', (err) => {
      events.end(`could not run: ${err.message}`);
      done(null);
    });
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (err) => reject(new Error(`cannot run ${PYTHON} ${script}: ${err.message}`)));
  });
  const pid = child.pid!;
  events.label = `${script} (pid ${pid}, stderr: ${stderrPath})`;

  let stopping: Promise<void> | undefined;
  const stop = (opts: { keepLogs?: boolean } = {}): Promise<void> =>
    (stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const force = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
        await exited;
        clearTimeout(force);
      } else {
        await exited;
      }
      await new Promise<void>((resolve) => stdoutLog.end(resolve));
      if (!(opts.keepLogs ?? keepLogs)) await rm(logDir, { recursive: true, force: true });
    })());

  return { child, pid, logDir, stderrPath, events, exited, stop, readStderr: () => readFile(stderrPath, 'utf8') };
}

async function makeLogDir(role: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `synapse-${role}-`));
}

function keepLogsDefault(opt: boolean | undefined): boolean {
  return opt ?? process.env['SYNAPSE_PEER_KEEP_LOGS'] === '1';
}

function perStream(value: number | Record<string, number>): string {
  return typeof value === 'number'
    ? String(value)
    : Object.entries(value)
        .map(([s, k]) => `${s}:${k}`)
        .join(',');
}

async function stderrTail(p: string, lines = 15): Promise<string> {
  const text = await readFile(p, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

// ------------------------------------------------------------------ master

export interface MasterOptions {
  /** server_name sent in SERVER (default master.test). */
  name?: string;
  host?: string;
  /** Streams that get generated rows (default ['events']); all 15 are served. */
  streams?: string[];
  /** Tokens written before listening: per stream, or one count for all. */
  prefill?: number | Record<string, number>;
  /** Rows per token. */
  batch?: number | Record<string, number>;
  /** Live tokens per stream. */
  rows?: number;
  /** Live tokens/s per stream; 0: as fast as the fan-out drains. */
  rate?: number;
  chunk?: number;
  kickAfter?: number;
  waitSubscribers?: number;
  rowBytes?: number;
  /** Hard stop (default 120 here, 600 in master.py). */
  maxSeconds?: number;
  exitWhenDone?: boolean;
  /** Log every command sent as a `send` event (default: only ERRORs). */
  logSent?: boolean;
  /** Fake store timing: reactor | sync | SECONDS | per-row:SECONDS. */
  db?: string;
  extraArgs?: string[];
  startTimeoutMs?: number;
  /** Keep the log folder after stop() (also SYNAPSE_PEER_KEEP_LOGS=1). */
  keepLogs?: boolean;
}

export interface SynapseMaster {
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  readonly name: string;
  readonly events: JsonLineLog<MasterEvent>;
  readonly listening: MasterListening;
  readonly logDir: string;
  readonly stderrPath: string;
  readonly exited: Promise<number | null>;
  /** SIGUSR1: write --chunk tokens now; SIGUSR2: abort every connection; SIGTERM: stop. */
  signal(sig: NodeJS.Signals): boolean;
  readStderr(): Promise<string>;
  /** SIGTERM, SIGKILL after 3 s; resolves once the process is gone. */
  stop(): Promise<void>;
}

export async function startSynapseMaster(opts: MasterOptions = {}): Promise<SynapseMaster> {
  requirePythonPeer();
  const name = opts.name ?? 'master.test';
  const host = opts.host ?? '127.0.0.1';
  const logDir = await makeLogDir('master');
  const portFile = path.join(logDir, 'master.port');
  const args = ['--port', '0', '--port-file', portFile, '--host', host, '--name', name];
  args.push('--streams', (opts.streams ?? ['events']).join(','));
  if (opts.prefill !== undefined) args.push('--prefill', perStream(opts.prefill));
  if (opts.batch !== undefined) args.push('--batch', perStream(opts.batch));
  if (opts.rows !== undefined) args.push('--rows', String(opts.rows));
  if (opts.rate !== undefined) args.push('--rate', String(opts.rate));
  if (opts.chunk !== undefined) args.push('--chunk', String(opts.chunk));
  if (opts.kickAfter !== undefined) args.push('--kick-after', String(opts.kickAfter));
  if (opts.waitSubscribers !== undefined) args.push('--wait-subscribers', String(opts.waitSubscribers));
  if (opts.rowBytes !== undefined) args.push('--row-bytes', String(opts.rowBytes));
  args.push('--max-seconds', String(opts.maxSeconds ?? DEFAULT_MASTER_MAX_SECONDS));
  if (opts.exitWhenDone) args.push('--exit-when-done');
  if (opts.logSent) args.push('--log-sent');
  if (opts.db !== undefined) args.push('--db', opts.db);
  args.push(...(opts.extraArgs ?? []));

  const peer = await spawnPeer<MasterEvent>('master', logDir, args, false, keepLogsDefault(opts.keepLogs));
  const timeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  let listening: MasterListening;
  let port: number;
  try {
    // master.py renames the port file into place just before this event.
    listening = await peer.events.waitFor(masterEvent('listening'), timeoutMs, 'listening event');
    port = Number((await readFile(portFile, 'utf8')).trim());
    if (!Number.isInteger(port) || port <= 0) throw new Error(`bad port file ${portFile}`);
  } catch (err) {
    const ranOut = !peer.events.ended; // else its stdout closed: it exited
    await peer.stop({ keepLogs: true }); // the message names the log
    const tail = await stderrTail(peer.stderrPath);
    const what = ranOut
      ? `did not listen within ${timeoutMs} ms`
      : `exited (code ${await peer.exited}) before listening`;
    throw new Error(`master.py ${what}; stderr: ${peer.stderrPath}${tail ? '\n' + tail : ' (empty)'}`, {
      cause: err,
    });
  }
  return {
    host,
    port,
    pid: peer.pid,
    name,
    events: peer.events,
    listening,
    logDir,
    stderrPath: peer.stderrPath,
    exited: peer.exited,
    signal: (sig) => peer.child.kill(sig),
    readStderr: peer.readStderr,
    stop: () => peer.stop(),
  };
}

// ------------------------------------------------------------------ worker

export interface WorkerOptions {
  port: number;
  host?: string;
  /** Sent in NAME (worker.py's default: synapse.app.reference_worker). */
  name?: string;
  /** Streams and the token to replicate from (default { events: 'NOW' }); order kept. */
  streams?: Record<string, StreamToken>;
  /** Expected SERVER name; without it the check is skipped (Synapse always checks). */
  expectServer?: string;
  /** Users currently syncing: USER_SYNC <u> start <now> on every connect. */
  userSync?: string[];
  /** Queued before connecting, sent after the REPLICATEs and USER_SYNCs. */
  userSyncEnd?: string[];
  federationAck?: number[];
  removePusher?: { appId: string; pushKey: string; userId: string }[];
  invalidateCache?: { cacheFunc: string; keys: unknown }[];
  userIp?: { userId: string; accessToken: string; ip: string; userAgent: string; deviceId: string; lastSeen: number }[];
  /** Exit 0 once every stream here reached its token. */
  until?: Record<string, number>;
  /** Exit 3 after this many lost connections (0: reconnect forever). */
  maxConnections?: number;
  /** Exit 2 after this long (default 30 here, 60 in worker.py). */
  maxSeconds?: number;
  /** Read WorkerOps from stdin (see send()); closing stdin ends the worker. */
  stdin?: boolean;
  logLevel?: string;
  extraArgs?: string[];
  keepLogs?: boolean;
}

export interface SynapseWorker {
  readonly pid: number;
  readonly events: JsonLineLog<WorkerEvent>;
  readonly logDir: string;
  readonly stderrPath: string;
  /** Exit code: 0 --until reached (or quit), 2 --max-seconds, 3 --max-connections; null if killed. */
  readonly exited: Promise<number | null>;
  /** Writes one op as a JSON line; needs `stdin: true`. */
  send(op: WorkerOp): void;
  signal(sig: NodeJS.Signals): boolean;
  readStderr(): Promise<string>;
  stop(): Promise<void>;
}

export async function startSynapseWorker(opts: WorkerOptions): Promise<SynapseWorker> {
  requirePythonPeer();
  const logDir = await makeLogDir('worker');
  const streams = Object.entries(opts.streams ?? { events: 'NOW' })
    .map(([s, t]) => `${s}:${t}`)
    .join(',');
  const args = ['--connect', `${opts.host ?? '127.0.0.1'}:${opts.port}`, '--streams', streams];
  if (opts.name !== undefined) args.push('--name', opts.name);
  if (opts.expectServer !== undefined) args.push('--expect-server', opts.expectServer);
  for (const u of opts.userSync ?? []) args.push('--user-sync', u);
  for (const u of opts.userSyncEnd ?? []) args.push('--user-sync-end', u);
  for (const t of opts.federationAck ?? []) args.push('--federation-ack', String(t));
  for (const p of opts.removePusher ?? []) args.push('--remove-pusher', p.appId, p.pushKey, p.userId);
  for (const c of opts.invalidateCache ?? []) args.push('--invalidate-cache', c.cacheFunc, JSON.stringify(c.keys));
  for (const u of opts.userIp ?? []) {
    args.push('--user-ip', u.userId, u.accessToken, u.ip, u.userAgent, u.deviceId, String(u.lastSeen));
  }
  for (const [s, t] of Object.entries(opts.until ?? {})) args.push('--until', `${s}:${t}`);
  if (opts.maxConnections !== undefined) args.push('--max-connections', String(opts.maxConnections));
  args.push('--max-seconds', String(opts.maxSeconds ?? DEFAULT_WORKER_MAX_SECONDS));
  if (opts.stdin) args.push('--stdin');
  if (opts.logLevel !== undefined) args.push('--log-level', opts.logLevel);
  args.push(...(opts.extraArgs ?? []));

  const peer = await spawnPeer<WorkerEvent>('worker', logDir, args, opts.stdin === true, keepLogsDefault(opts.keepLogs));
  const send = (op: WorkerOp): void => {
    const stdin = peer.child.stdin;
    if (!stdin) throw new Error('worker.py was started without `stdin: true`');
    if (stdin.destroyed || !stdin.writable || peer.child.exitCode !== null) {
      throw new Error(`worker.py (pid ${peer.pid}) no longer reads stdin`);
    }
    stdin.write(JSON.stringify(op) + '\n');
  };
  return {
    pid: peer.pid,
    events: peer.events,
    logDir,
    stderrPath: peer.stderrPath,
    exited: peer.exited,
    send,
    signal: (sig) => peer.child.kill(sig),
    readStderr: peer.readStderr,
    stop: () => peer.stop(),
  };
}
