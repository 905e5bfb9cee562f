// A ReplicationHub over fake transports and a fake clock: no sockets, no
// timers. `settle()` runs the flushes a binding would run once per tick.

import { ReplicationHub } from '../../../src/core/hub.js';
import type { HubEvents, HubOptions } from '../../../src/core/hub-types.js';
import type { ServerConnection } from '../../../src/core/server-connection.js';
import { MemoryStreamLog, type LogEntry } from '../../../src/core/stream-log.js';
import type { Transport } from '../../../src/core/transport.js';

export class FakeTransport implements Transport {
  readonly written: Buffer[] = [];
  /** Bytes of each write() call. */
  readonly writeSizes: number[] = [];
  /** What write() answers: false plays a socket whose buffer is full. */
  accepting = true;
  /** What unsentBytes() answers: a test lowers it to play a full socket sending part of what it holds. */
  unsent = 0;
  ended = false;
  destroyed = false;
  private taken = 0;

  write(chunks: Buffer[]): boolean {
    if (this.destroyed) return true;
    this.written.push(...chunks);
    this.writeSizes.push(chunks.reduce((n, c) => n + c.length, 0));
    return this.accepting;
  }

  unsentBytes(): number {
    return this.unsent;
  }

  end(): void {
    this.ended = true;
  }

  destroy(): void {
    this.destroyed = true;
  }

  text(): string {
    return Buffer.concat(this.written).toString();
  }

  /** Lines written since the last take(). */
  take(): string[] {
    const text = Buffer.concat(this.written.slice(this.taken)).toString();
    this.taken = this.written.length;
    return text === '' ? [] : text.replace(/\n$/, '').split('\n');
  }
}

export type Recorded = { [K in keyof HubEvents]: [K, ...Parameters<HubEvents[K]>] }[keyof HubEvents];

export interface FakeHub {
  hub: ReplicationHub;
  clock: { now: number };
  events: Recorded[];
  /** Entries appended to each stream's log, in order. */
  appended: Map<string, LogEntry[]>;
  connect(): { conn: ServerConnection; t: FakeTransport };
  settle(): void;
  /** Advances the clock and runs one sweep. */
  advance(ms: number): void;
}

export function fakeHub(options: Partial<HubOptions> = {}, retentionRows = 1_000_000): FakeHub {
  const clock = { now: 1_490_197_665_618 };
  const events: Recorded[] = [];
  const appended = new Map<string, LogEntry[]>();
  let scheduled = false;
  const record =
    <K extends keyof HubEvents>(name: K) =>
    (...args: Parameters<HubEvents[K]>): void => {
      events.push([name, ...args] as unknown as Recorded);
    };
  const hub = new ReplicationHub({
    serverName: 'gw.test',
    streams: ['events', 'caches', { name: 'typing', tooOld: 'jump' }],
    credentials: [
      { secret: 'w-secret', role: 'writer' },
      { secret: 'w-caches', role: 'writer', streams: ['caches'] },
    ],
    requireAuth: false,
    maxLineBytes: 4096,
    maxQueueCommands: 100,
    maxQueueBytes: 64 * 1024,
    maxStallMs: 30_000,
    pingIntervalMs: 5_000,
    pingTimeoutMs: 25_000,
    lineTimeoutMs: 30_000,
    maxConnections: 100,
    maxConnectionsPerAddress: 100,
    maxPartialLineBytes: 1024 * 1024,
    catchUpChunkBytes: 1024,
    clock: () => clock.now,
    createLog: (stream) => {
      const log = new MemoryStreamLog({ retentionRows });
      const list: LogEntry[] = [];
      appended.set(stream, list);
      const append = log.append.bind(log);
      log.append = (e: LogEntry) => {
        list.push(e);
        append(e);
      };
      return log;
    },
    scheduleFlush: () => {
      scheduled = true;
    },
    events: {
      opened: record('opened'),
      closed: record('closed'),
      clientCommand: record('clientCommand'),
      presence: record('presence'),
      remoteError: record('remoteError'),
      tokenAhead: record('tokenAhead'),
      slowConsumer: record('slowConsumer'),
    },
    ...options,
  });
  const settle = (): void => {
    for (let i = 0; scheduled && i < 100; i++) {
      scheduled = false;
      hub.flush();
    }
  };
  return {
    hub,
    clock,
    events,
    appended,
    connect() {
      const t = new FakeTransport();
      const conn = hub.accept(t, 'fake', 'test');
      settle();
      return { conn, t };
    },
    settle,
    advance(ms) {
      clock.now += ms;
      hub.sweep();
      settle();
    },
  };
}

/** Feeds text to a connection as one chunk, then flushes. */
export function send(h: FakeHub, conn: ServerConnection, text: string): Buffer {
  const chunk = Buffer.from(text);
  conn.receive(chunk);
  h.settle();
  return chunk;
}

/** `RDATA <stream> <token> <row>` lines for the given tokens. */
export function rows(stream: string, tokens: number[]): string {
  return tokens.map((t) => `RDATA ${stream} ${t} ["$${t}:hs","!r:hs","m.room.message","",null]\n`).join('');
}
