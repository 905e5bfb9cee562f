// A real redis-server for tests (Debian package `redis-server`), on a free
// 127.0.0.1 port with its own temp dir and no persistence (or, asked for,
// an append-only file synced on every write), stopped by the test; it can be
// stopped and started again on the same port.
//
//   describe('...', { skip: redisSkip() }, () => { ... const redis = await startRedis(); ... await redis.stop(); });
//
// Without redis-server on PATH the tests are skipped with a message, except
// with CI=true, where they fail: CI installs it (.ci/run).

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const PORT_ATTEMPTS = 5;

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

function installed(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** node:test's `skip` for Redis tests: a one-line reason when redis-server is missing (never under CI=true). */
export function redisSkip(): string | false {
  if (installed()) return false;
  if (process.env['CI'] === 'true') {
    throw new Error('redis-server is not on PATH, and CI=true makes the Redis tests mandatory: apt-get install redis-server');
  }
  return 'redis-server not found: install the Debian package redis-server to run the Redis log tests';
}

export interface RedisServer {
  readonly port: number;
  /** Its unix socket, when asked for. */
  readonly socketPath: string | null;
  /** Its TLS port, when asked for (`tls` option). */
  readonly tlsPort: number | null;
  /** Stops the server (SIGTERM, then SIGKILL) and waits for its exit; without persistence every key is gone. */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  /** Stops it and removes its directory. */
  close(): Promise<void>;
}

/** A port that was free a moment ago (redis-server has no `--port 0`). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Spawns redis-server on `port`; resolves once it accepts connections, rejects when it exits first (a port taken). */
function spawnRedis(port: number, dir: string, persistent: boolean, socketPath: string | null, tls: RedisTls | null): Promise<ChildProcess> {
  const persistence = persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  const socket = socketPath === null ? [] : ['--unixsocket', socketPath, '--unixsocketperm', '700'];
  const overTls = tls === null ? [] : ['--tls-port', String(tls.port), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.ca, '--tls-auth-clients', 'no'];
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence, ...socket, ...overTls, '--dir', dir, '--protected-mode', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  live.add(child);
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`redis-server on port ${port} did not start within ${START_TIMEOUT_MS} ms:\n${output}`));
    }, START_TIMEOUT_MS);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code, signal) => {
      live.delete(child);
      clearTimeout(timer);
      reject(Object.assign(new Error(`redis-server on port ${port} exited (${code ?? signal}):\n${output}`), { inUse: /Address already in use/.test(output) }));
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      live.delete(child);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export interface RedisServerOptions {
  /** Keep every write across a restart (appendonly yes, appendfsync always); default: no persistence. */
  persistent?: boolean;
  /** Listen on a unix socket in its directory too. */
  unixSocket?: boolean;
  /** Listen for TLS too, with this certificate (PEM files; clients are not asked for one). */
  tls?: { cert: string; key: string; ca: string };
}

interface RedisTls {
  port: number;
  cert: string;
  key: string;
  ca: string;
}

export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const persistent = options.persistent ?? false;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rg-redis-'));
  const socketPath = options.unixSocket ? path.join(dir, 'redis.sock') : null;
  let child: ChildProcess | null = null;
  let port = 0;
  let tls: RedisTls | null = null;
  for (let attempt = 1; child === null; attempt++) {
    port = await freePort();
    tls = options.tls === undefined ? null : { ...options.tls, port: await freePort() };
    try {
      child = await spawnRedis(port, dir, persistent, socketPath, tls);
    } catch (err) {
      // Another process took the port between the probe and the bind: pick again.
      if (!(err as { inUse?: boolean }).inUse || attempt >= PORT_ATTEMPTS) throw err;
    }
  }
  const server: RedisServer = {
    port,
    socketPath,
    tlsPort: tls?.port ?? null,
    async stop() {
      if (child !== null) await stopChild(child);
      child = null;
    },
    async start() {
      if (child !== null) return;
      // The old socket may linger for a moment: retry the same port briefly.
      for (let attempt = 1; ; attempt++) {
        try {
          child = await spawnRedis(port, dir, persistent, socketPath, tls);
          return;
        } catch (err) {
          if (!(err as { inUse?: boolean }).inUse || attempt >= 20) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    async close() {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return server;
}
