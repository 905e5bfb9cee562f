/**
 * Where the gateway keeps its streams (`--log`): one opened store hands the
 * server a StreamLog per stream (the contract in src/core/stream-log.ts) and
 * reports its own state to /healthz and /metrics. A store is opened before
 * the gateway is built (a durable store recovers its files, a shared one
 * connects) and closed after the server has stopped.
 */
import type { Logger } from 'pino';
import type { RedisLogSpec } from '../bindings/redis-store.js';
import { FileLogDir } from '../bindings/file-log-store.js';
import type { FsyncPolicy } from '../bindings/file-log.js';
import { MemoryStreamLog, type StreamLog } from '../core/stream-log.js';

export type { FsyncPolicy } from '../bindings/file-log.js';

/** `--log`: what the value names, parsed in options.ts. */
export type LogSpec = { kind: 'memory' } | { kind: 'file'; dir: string } | RedisLogSpec;

export interface LogStoreOptions {
  /** The declared streams: a durable store opens (recovers) each one's log, a shared one loads its state, before the gateway is built. */
  streams: readonly string[];
  retentionRows: number;
  retentionBytes: number;
  /** File log: segments last written longer ago are deleted; null: no age limit. */
  retentionAgeMs: number | null;
  /** File log: when written lines are forced to the disk (--fsync). */
  fsync: FsyncPolicy;
  logger: Logger;
}

/** What /healthz shows of the store: `ok` false makes the gateway unhealthy. */
export interface LogStoreHealth {
  kind: LogSpec['kind'];
  ok: boolean;
  /** Why not ok (a disk error, a lost Redis link), for operators. */
  problem: string | null;
  /** Each connection of the store and whether it works now (none for memory). */
  links: Record<string, boolean>;
  /** A durable store's generation: a new id means its tokens started over (file log). */
  generation?: { id: string; createdAt: string; createdByThisStart: boolean };
}

/** Counters of the store for /metrics (plain numbers, read at scrape time). */
export interface LogStoreStats {
  appendErrors: number;
  /** Generations this process made (1 when it found an empty, wiped or replaced directory). */
  generationsCreated: number;
  fsyncs: number;
  fsyncSeconds: number;
  fsyncMaxSeconds: number;
  tornTailsCut: number;
  corruptSegments: number;
  segmentsDeleted: number;
}

export interface LogStore {
  readonly kind: LogSpec['kind'];
  /** The log of one stream, made once per stream when the server starts. */
  createLog(stream: string): StreamLog;
  health(): LogStoreHealth;
  stats(): LogStoreStats;
  /** After the server has closed: flushes and releases files or connections. */
  close(): Promise<void>;
}

export async function openLogStore(spec: LogSpec, options: LogStoreOptions): Promise<LogStore> {
  switch (spec.kind) {
    case 'memory':
      return memoryLogStore(options);
    case 'redis':
      return redisLogStore(spec, options);
    case 'file':
      return fileLogStore(spec.dir, options);
  }
}

const noStats = (): LogStoreStats => ({
  appendErrors: 0,
  generationsCreated: 0,
  fsyncs: 0,
  fsyncSeconds: 0,
  fsyncMaxSeconds: 0,
  tornTailsCut: 0,
  corruptSegments: 0,
  segmentsDeleted: 0,
});

function memoryLogStore(options: LogStoreOptions): LogStore {
  return {
    kind: 'memory',
    createLog: () => new MemoryStreamLog({ retentionRows: options.retentionRows, retentionBytes: options.retentionBytes }),
    health: () => ({ kind: 'memory', ok: true, problem: null, links: {} }),
    stats: noStats,
    close: async () => {},
  };
}

/** Every stream's log is opened (its state read from Redis) before the server is built. */
async function redisLogStore(spec: RedisLogSpec, options: LogStoreOptions): Promise<LogStore> {
  // Loaded only here: ioredis takes a noticeable part of a second to import, which a memory gateway need not pay.
  const { RedisLogStore } = await import('../bindings/redis-store.js');
  const store = await RedisLogStore.open(spec, { logger: options.logger.child({ component: 'redis-log' }) });
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
    stats: noStats,
    close: () => store.close(),
  };
}

async function fileLogStore(dir: string, options: LogStoreOptions): Promise<LogStore> {
  const log = options.logger.child({ component: 'file-log', dir });
  const stats = noStats();
  /** Problems that make the store unhealthy until they clear: a failing disk (by file), corrupt segments. */
  const failing = new Map<string, string>();
  const corrupt: string[] = [];
  const opened = await FileLogDir.open(dir, {
    streams: options.streams,
    retentionRows: options.retentionRows,
    retentionBytes: options.retentionBytes,
    retentionAgeMs: options.retentionAgeMs,
    fsync: options.fsync,
    events: {
      generationCreated(generation, leftover) {
        stats.generationsCreated++;
        if (leftover.length > 0) {
          log.warn({ generation: generation.id, streams: leftover }, 'the log directory had stream files but no generation: a new generation begins over them');
        } else {
          log.warn({ generation: generation.id }, 'new log generation: the directory was empty (new, wiped or replaced); every stream starts over');
        }
      },
      undeclaredStream(stream) {
        log.warn({ stream }, 'the log directory holds a stream that is not declared (--streams): kept, not served');
      },
      tornTailCut(file, offset, bytes) {
        stats.tornTailsCut++;
        log.warn({ file, offset, bytes }, 'cut a torn tail (a write cut short by a crash): the stream resumes from its last complete row');
      },
      corrupt(file, offset, reason) {
        stats.corruptSegments++;
        const problem = `corrupt data in ${file} at offset ${offset}: ${reason}`;
        corrupt.push(problem);
        log.error({ file, offset, reason }, 'corrupt data in a segment: catch-up will not go past it; move the segment away or restore it, then restart');
      },
      appendFailed(file, err) {
        stats.appendErrors++;
        failing.set(file, err.message);
        log.error({ file, err: err.message, code: (err as NodeJS.ErrnoException).code }, 'append to the file log failed: the writer gets ERROR, nothing of its write is served');
      },
      appendRecovered(file) {
        failing.delete(file);
        log.info({ file }, 'the file log stores appends again');
      },
      fsynced(seconds) {
        stats.fsyncs++;
        stats.fsyncSeconds += seconds;
        if (seconds > stats.fsyncMaxSeconds) stats.fsyncMaxSeconds = seconds;
      },
      segmentDeleted(file, why) {
        stats.segmentsDeleted++;
        log.debug({ file, why }, 'segment deleted');
      },
    },
  });
  const { generation } = opened;
  log.info({ generation: generation.id, created: generation.created, fsync: options.fsync }, 'file log opened');
  return {
    kind: 'file',
    createLog(stream) {
      const l = opened.logs.get(stream);
      if (l === undefined) throw new Error(`stream ${stream} was not opened in ${dir}: declare it in --streams`);
      return l;
    },
    health() {
      const problems = [...corrupt, ...failing.values()];
      if (!opened.stillOurs()) problems.push(`${dir}/generation is gone or changed under the running gateway (the directory was wiped or replaced): restart the gateway`);
      return {
        kind: 'file',
        ok: problems.length === 0,
        problem: problems.length === 0 ? null : problems.join('; '),
        links: {},
        generation: { id: generation.id, createdAt: generation.createdAt, createdByThisStart: generation.created },
      };
    },
    stats: () => ({ ...stats }),
    close: () => opened.close(),
  };
}
