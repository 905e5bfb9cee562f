// Starts the benchmark peers, nats-server and redis-server, on free
// 127.0.0.1 ports, each a child of the calling process with no persistence
// and no config of the machine's own. Install them with
// `bash bench/peers/install.sh`; a missing one is a skip, never a silent gap.
//
// Both peers get unbounded (or very large) per-client output buffers. The
// throughput scenarios fan 200,000 rows (40 MB) out to each subscriber, and
// a subscriber process holding 10-50 sockets on a 2-core machine can fall
// tens of MB behind; with their defaults the peers would cut it mid-run
// (redis: `client-output-buffer-limit pubsub 32mb 8mb 60`; nats-server:
// `max_pending` 64 MB, `write_deadline` 2 s) and the run would measure
// their congestion policy instead of their fan-out. Slow-consumer behaviour
// is measured on the gateway only.
//   redis-server: --client-output-buffer-limit pubsub 0 0 0 (no limit), --maxclients 100000 (W4)
//   nats-server:  max_pending: 1GB, write_deadline: "60s" (config file only)
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export type PeerName = 'nats-server' | 'redis-server';

export interface RunningPeer {
  name: PeerName;
  port: number;
  pid: number;
  /** SIGTERM, then SIGKILL if it has not exited within 5 s. */
  stop(): Promise<void>;
}

export const INSTALL_COMMAND = 'bash bench/peers/install.sh';
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
// Debian puts nats-server in /usr/sbin, which is not on every user's PATH.
const EXTRA_DIRS = ['/usr/sbin', '/usr/local/sbin', '/sbin'];

/** Children still running: killed if the bench exits without stopping them, so no server outlives it. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export function findBinary(name: PeerName): string | null {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), ...EXTRA_DIRS]) {
    if (dir === '') continue;
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not in this directory
    }
  }
  return null;
}

/** true, or why the peer cannot run (with the command that installs it). */
export function peerAvailable(name: PeerName): true | string {
  return findBinary(name) !== null ? true : `${name} not installed (install with: ${INSTALL_COMMAND})`;
}

/** A port that was free a moment ago: bind port 0, read it, close. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export function startPeer(name: PeerName): Promise<RunningPeer> {
  return name === 'nats-server' ? startNats() : startRedis();
}

export async function startNats(): Promise<RunningPeer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'bench-nats-'));
  const config = join(dir, 'nats.conf');
  writeFileSync(config, 'max_pending: 1GB\nwrite_deadline: "60s"\n');
  // Everything but max_pending/write_deadline on the command line, as they would be typed.
  return start('nats-server', ['-c', config, '-a', '127.0.0.1', '-p', String(port)], port, 'INFO', '', () =>
    rmSync(dir, { recursive: true, force: true }),
  );
}

export async function startRedis(): Promise<RunningPeer> {
  const port = await freePort();
  const args = [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--client-output-buffer-limit', 'pubsub', '0', '0', '0',
    // W4 holds 10,000 subscribers plus the writer; redis's default maxclients is 10,000
    // (it lowers this to what the open-file limit allows and says so in its log).
    '--maxclients', '100000',
  ];
  return start('redis-server', args, port, '+PONG', 'PING\r\n', () => {});
}

async function start(
  name: PeerName,
  args: string[],
  port: number,
  greeting: string,
  probe: string,
  cleanUp: () => void,
): Promise<RunningPeer> {
  const binary = findBinary(name);
  if (binary === null) throw new Error(peerAvailable(name) as string);
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  // Keep the end of its log for the error message; reading also keeps the pipes from filling.
  let log = '';
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-2000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
    running.delete(child);
    cleanUp();
  });

  const stop = async () => {
    if (hasExited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (hasExited) throw new Error(`${name} exited while starting (${args.join(' ')}): ${log.trim()}`);
    if (await answers(port, greeting, probe)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name} did not accept connections on 127.0.0.1:${port} within ${START_TIMEOUT_MS} ms: ${log.trim()}`);
    }
    await sleep(50);
  }
  return { name, port, pid: child.pid!, stop };
}

/** Connects, sends `probe`, and says whether the reply starts with `greeting` within a second. */
function answers(port: number, greeting: string, probe: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write(probe));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (reply.length >= greeting.length) done(reply.startsWith(greeting));
    });
  });
}
