// The systems a scenario measures, each started fresh on a free 127.0.0.1
// port and stopped afterwards:
//
//   gateway          node bin/replication-gateway.js serve (the real CLI, test/support/gateway-child.ts)
//   naive-relay      bench/baselines/naive-relay.ts (split + one write per line)
//   zero-copy-relay  bench/baselines/zero-copy-relay.ts (the ceiling)
//   nats-server      core pub/sub (bench/peers/peers.ts)
//   redis-server     pub/sub (bench/peers/peers.ts)
//
// For each, the writer and subscriber arguments that speak its protocol: the
// peers get the writer's --raw mode (wire bytes on a plain socket), so the
// client libraries' per-message cost does not limit what they are measured at.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { WsEngineName } from '../../src/bindings/edge-engine.js';
import { waitForReadyFile } from '../../src/bindings/ready-file.js';
import { startGatewayChild, type GatewayChild } from '../../test/support/gateway-child.js';
import { peerAvailable, startPeer } from '../peers/peers.js';
import { benchScript, spawnNode } from './children.js';
import type { Phase } from './progress.js';

export type SystemName = 'gateway' | 'naive-relay' | 'zero-copy-relay' | 'nats-server' | 'redis-server';

export const ALL_SYSTEMS: readonly SystemName[] = ['gateway', 'naive-relay', 'zero-copy-relay', 'nats-server', 'redis-server'];
export const PEERS: readonly SystemName[] = ['nats-server', 'redis-server'];

export const SYSTEM_LABELS: Record<SystemName, string> = {
  gateway: 'gateway',
  'naive-relay': 'naive relay',
  'zero-copy-relay': 'zero-copy relay',
  'nats-server': 'nats-server',
  'redis-server': 'redis-server',
};

export const WRITER_TOKEN = 'bench-writer';
const READY_TIMEOUT_MS = 20_000;

export interface GatewaySettings {
  maxQueueCommands?: number;
  maxQueueBytes?: number;
  retentionRows?: number;
  retentionBytes?: number;
  /** Open the --http listener (WebSocket bridge at /replication) on a free port; off otherwise. */
  http?: boolean;
  /** --ws-engine for that listener (default: the gateway's auto). */
  wsEngine?: WsEngineName;
  /** --log (default memory) and, for a file log, --fsync. */
  log?: string;
  fsync?: string;
  /** --max-connections-per-address: every bench peer connects from 127.0.0.1. */
  maxConnectionsPerAddress?: number;
  /** Follow a Synapse deployment's channel (W9): --synapse-redis URL --synapse-server-name NAME. */
  synapse?: { redis: string; serverName: string };
}

export interface RunningServer {
  system: SystemName;
  port: number;
  pid: number;
  /** The gateway's --http port (WebSocket bridge), when asked for. */
  httpPort?: number;
  /** Arguments for bench/load/writer.js besides --port and --rows. */
  writerArgs: string[];
  /** Arguments for bench/load/subscriber.js besides --port, --count and --expect. */
  subscriberArgs: string[];
  /** The gateway's pino JSON log lines so far (others: empty). */
  logLines(): Record<string, unknown>[];
  stop(): Promise<void>;
}

/** true, or why the system cannot run here (with the command that installs it). */
export function systemAvailable(system: SystemName): true | string {
  return system === 'nats-server' || system === 'redis-server' ? peerAvailable(system) : true;
}

/**
 * Starts `system` fresh, runs `body` against it and stops it whatever
 * happens; a body that throws first ends `phase` as FAILED.
 */
export async function onFreshServer<T>(
  system: SystemName,
  workDir: string,
  gateway: GatewaySettings,
  phase: Phase,
  body: (server: RunningServer) => Promise<T>,
): Promise<T> {
  const server = await startServer(system, workDir, gateway);
  try {
    return await body(server);
  } catch (err) {
    phase.end('FAILED');
    throw err;
  } finally {
    await server.stop();
  }
}

export async function startServer(system: SystemName, workDir: string, gateway: GatewaySettings = {}): Promise<RunningServer> {
  switch (system) {
    case 'gateway':
      return startGateway(workDir, gateway);
    case 'naive-relay':
    case 'zero-copy-relay':
      return startRelay(system, workDir);
    case 'nats-server':
    case 'redis-server': {
      const peer = await startPeer(system);
      const protocol = system === 'nats-server' ? 'nats' : 'redis';
      return {
        system,
        port: peer.port,
        pid: peer.pid,
        writerArgs: ['--protocol', protocol, '--raw'],
        subscriberArgs: ['--protocol', protocol, '--from', '0'],
        logLines: () => [],
        stop: () => peer.stop(),
      };
    }
    default: {
      const never: never = system;
      throw new Error(`unknown system ${String(never)}`);
    }
  }
}

let serial = 0;

async function startGateway(workDir: string, settings: GatewaySettings): Promise<RunningServer> {
  const n = ++serial;
  const logFile = path.join(workDir, `gateway-${n}.log`);
  const args = [
    '--listen', '127.0.0.1:0', '--http', settings.http ? '127.0.0.1:0' : 'off',
    '--writer-token', WRITER_TOKEN, '--streams', 'events', '--shutdown-timeout-ms', '2000',
  ];
  if (settings.maxQueueCommands !== undefined) args.push('--max-queue-commands', String(settings.maxQueueCommands));
  if (settings.maxQueueBytes !== undefined) args.push('--max-queue-bytes', String(settings.maxQueueBytes));
  if (settings.retentionRows !== undefined) args.push('--retention-rows', String(settings.retentionRows));
  if (settings.retentionBytes !== undefined) args.push('--retention-bytes', String(settings.retentionBytes));
  if (settings.wsEngine !== undefined) args.push('--ws-engine', settings.wsEngine);
  if (settings.log !== undefined) args.push('--log', settings.log);
  if (settings.fsync !== undefined) args.push('--fsync', settings.fsync);
  if (settings.maxConnectionsPerAddress !== undefined) args.push('--max-connections-per-address', String(settings.maxConnectionsPerAddress));
  if (settings.synapse !== undefined) args.push('--synapse-redis', settings.synapse.redis, '--synapse-server-name', settings.synapse.serverName);
  // Settings come from these flags only: the child gets none of the user's RG_ variables.
  let gw: GatewayChild;
  try {
    gw = await startGatewayChild({
      args,
      readyFile: path.join(workDir, `gateway-${n}.ready`),
      readyTimeoutMs: READY_TIMEOUT_MS,
      stdout: { file: logFile },
    });
  } catch (err) {
    throw new Error(`gateway did not start: ${(err as Error).message}`);
  }
  return {
    system: 'gateway',
    port: gw.ready.tcp,
    pid: gw.pid,
    ...(gw.ready.http !== null ? { httpPort: gw.ready.http } : {}),
    writerArgs: ['--auth', WRITER_TOKEN],
    subscriberArgs: [],
    logLines: () => readJsonLines(logFile),
    stop: async () => {
      await gw.stop('SIGTERM', 5000);
    },
  };
}

async function startRelay(system: 'naive-relay' | 'zero-copy-relay', workDir: string): Promise<RunningServer> {
  const readyFile = path.join(workDir, `${system}-${++serial}.ready`);
  const child = spawnNode(benchScript(`baselines/${system}.js`), ['--port', '0', '--ready-file', readyFile], { label: system });
  let ready: { port: number; pid: number };
  try {
    ready = await waitForReadyFile<{ port: number; pid: number }>(readyFile, READY_TIMEOUT_MS, child.alive);
  } catch (err) {
    await child.stop();
    throw new Error(`${system} did not start: ${(err as Error).message}\n${child.stderrTail()}`);
  }
  return {
    system,
    port: ready.port,
    pid: child.pid,
    writerArgs: [],
    subscriberArgs: [],
    logLines: () => [],
    stop: async () => {
      await child.stop(5000);
    },
  };
}

function readJsonLines(file: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line cut by a crash
    }
  }
  return out;
}
