/**
 * Where the gateway keeps its streams (`--log`): one opened store hands the
 * server a StreamLog per stream (the contract in src/core/stream-log.ts) and
 * reports its own state to /healthz and /metrics. A store is opened before
 * the gateway is built (a durable store recovers its files, a shared one
 * connects) and closed after the server has stopped.
 */
import { MemoryStreamLog, type StreamLog } from '../core/stream-log.js';

/** `--log`: what the value names, parsed in options.ts. */
export type LogSpec = { kind: 'memory' };

export interface LogStoreOptions {
  retentionRows: number;
  retentionBytes: number;
}

/** What /healthz shows of the store: `ok` false makes the gateway unhealthy. */
export interface LogStoreHealth {
  kind: LogSpec['kind'];
  ok: boolean;
  /** Why not ok (a disk error, a lost Redis link), for operators. */
  problem: string | null;
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
  }
}

function memoryLogStore(options: LogStoreOptions): LogStore {
  return {
    kind: 'memory',
    createLog: () => new MemoryStreamLog(options),
    health: () => ({ kind: 'memory', ok: true, problem: null }),
    close: async () => {},
  };
}
