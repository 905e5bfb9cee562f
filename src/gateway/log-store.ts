/**
 * Where the gateway keeps its streams (`--log`): one opened store hands the
 * server a StreamLog per stream (the contract in src/core/stream-log.ts) and
 * reports its own state to /healthz and /metrics. A store is opened before
 * the gateway is built (a durable store recovers its files, a shared one
 * connects) and closed after the server has stopped.
 */
import type { Logger } from 'pino';
import type { RedisLogSpec } from '../bindings/redis-store.js';
import { MemoryStreamLog, type StreamLog } from '../core/stream-log.js';

/** `--log`: what the value names, parsed in options.ts. */
export type LogSpec = { kind: 'memory' } | RedisLogSpec;

export interface LogStoreOptions {
  retentionRows: number;
  retentionBytes: number;
  /** The declared streams: a shared store loads each one's state when it opens. */
  streams: readonly string[];
  logger?: Logger | undefined;
}

/** What /healthz shows of the store: `ok` false makes the gateway unhealthy. */
export interface LogStoreHealth {
  kind: LogSpec['kind'];
  ok: boolean;
  /** Why not ok (a disk error, a lost Redis link), for operators. */
  problem: string | null;
  /** Each connection of the store and whether it works now (none for memory). */
  links: Record<string, boolean>;
}

export interface LogStore {
  readonly kind: LogSpec['kind'];
  /** The log of one stream, made once per stream when the server starts. */
  createLog(stream: string): StreamLog;
  health(): LogStoreHealth;
  /** After the server has closed: flushes and releases files or connections. */
  close(): Promise<void>;
}

export async function openLogStore(spec: LogSpec, options: LogStoreOptions): Promise<LogStore> {
  switch (spec.kind) {
    case 'memory':
      return memoryLogStore(options);
    case 'redis':
      return redisLogStore(spec, options);
  }
}

function memoryLogStore(options: LogStoreOptions): LogStore {
  return {
    kind: 'memory',
    createLog: () => new MemoryStreamLog({ retentionRows: options.retentionRows, retentionBytes: options.retentionBytes }),
    health: () => ({ kind: 'memory', ok: true, problem: null, links: {} }),
    close: async () => {},
  };
}

/** Every stream's log is opened (its state read from Redis) before the server is built. */
async function redisLogStore(spec: RedisLogSpec, options: LogStoreOptions): Promise<LogStore> {
  // Loaded only here: ioredis takes a noticeable part of a second to import, which a memory gateway need not pay.
  const { RedisLogStore } = await import('../bindings/redis-store.js');
  const store = await RedisLogStore.open(spec, { logger: options.logger });
  try {
    const logOptions = { retentionRows: options.retentionRows, retentionBytes: options.retentionBytes };
    for (const stream of options.streams) await store.openLog(stream, logOptions);
  } catch (err) {
    await store.close();
    throw err;
  }
  return {
    kind: 'redis',
    createLog: (stream) => {
      const log = store.streamLog(stream);
      if (log === undefined) throw new Error(`stream ${stream} was not declared when the Redis log store opened`);
      return log;
    },
    health: () => ({ kind: 'redis', ...store.health() }),
    close: () => store.close(),
  };
}
