/**
 * The replication client library: `ReplicationClient` follows streams (a
 * worker, a test, the relay); `ReplicationWriter` (src/writer.ts) publishes
 * rows to a gateway. See docs/client.md; src/index.ts exports both.
 */
import { ReplicationSession, type SessionEvents, type SessionOptions } from './client-session.js';
import type { RdataCommand } from './core/commands.js';
import type { InstanceFollow } from './core/instance-follows.js';
import type { RowBatch } from './core/row-batch.js';

export interface ReplicationClientOptions extends SessionOptions {
  /** Streams to follow: names (from NOW), or name → token to start after. */
  streams?: readonly string[] | Readonly<Record<string, number | 'NOW'>>;
  /**
   * Streams of today's Synapse dialect to follow per writer instance
   * (`instance: '*'` for every writer of the stream), from a gateway that
   * follows a Synapse deployment (docs/client.md). A stream is followed
   * either here or in `streams`, not both.
   */
  instances?: readonly InstanceFollow[];
  /** Users syncing on this worker now (USER_SYNC start on every connect). */
  syncingUsers?: readonly string[];
  /** Batches a stream() iterator holds before the client stops reading the socket (default 1000). */
  maxBufferedBatches?: number;
  /**
   * Ask the gateway for its log's generation on every connect, and emit
   * 'generation' when a reconnect brings another (a gateway extension: a
   * Synapse master would refuse it with ERROR and a close). Default false.
   */
  followGeneration?: boolean;
}

/** An async-iterator view's buffer (see ReplicationClient.stream). */
interface StreamConsumer {
  batches: RowBatch[];
  wake: ((r: IteratorResult<RowBatch>) => void) | null;
  paused: boolean;
  done: boolean;
}

export interface ReplicationClientEvents extends SessionEvents {
  /** The rows of one token; `rows[i].row()` decodes one; `batch.instance` is their writer (null for a v1 stream). */
  rows: [stream: string, token: number, rows: readonly RdataCommand[], batch: RowBatch];
  /** The stream (the instance's pair, for a stream followed per instance; else null) is at token without new rows. */
  position: [stream: string, token: number, instance: string | null];
  /**
   * The server put the stream below where this client was (its log was wiped
   * or replaced, a new generation, or lost rows in a crash): rows from `token`
   * on come again, under tokens this client may have seen with other rows.
   * For a stream followed per instance: that writer restarted the stream from
   * a lower token (a reset; `instance` names it, null for v1). Also logged.
   */
  rewound: [stream: string, before: number, token: number, instance: string | null];
  /**
   * With followGeneration: the gateway's log is another generation than on
   * the last connection (wiped or replaced; null: a log without one). Its
   * tokens started over: positions are kept, so a stream above the new head
   * is 'rewound' to it, and rows of the new log at or below a kept position
   * are not sent; follow(stream, 0) to read a stream's new log from its start. Also logged.
   */
  generation: [previous: string | null, current: string | null];
}

/** Follows streams; its events are ReplicationClientEvents. */
export class ReplicationClient extends ReplicationSession<ReplicationClientEvents> {
  private readonly consumers = new Map<string, Set<StreamConsumer>>();
  private readonly maxBufferedBatches: number;

  constructor(options: ReplicationClientOptions) {
    super(options, { followGeneration: options.followGeneration ?? false });
    this.maxBufferedBatches = options.maxBufferedBatches ?? 1000;
    const streams = options.streams ?? [];
    const now = Date.now();
    if (isNameList(streams)) for (const s of streams) this.conn.follow(s, undefined, now);
    else for (const [s, from] of Object.entries(streams)) this.conn.follow(s, from, now);
    for (const f of options.instances ?? []) this.conn.followInstance(f.stream, f.instance, f.from, now);
    for (const u of options.syncingUsers ?? []) this.conn.userSync(u, true, now);
  }

  /**
   * Follows `stream` after token `from` (or 'NOW'); without `from`, a stream
   * already followed keeps its position and a new one starts at NOW.
   */
  follow(stream: string, from?: number | 'NOW'): void {
    this.conn.follow(stream, from, Date.now());
  }

  /**
   * Follows writer `instance` of `stream` in today's Synapse dialect, or
   * every writer with '*' (new ones included), after token `from` (or 'NOW');
   * without `from`, a pair already followed keeps its position. Rows come
   * with `batch.instance`; positions are kept per (stream, instance).
   */
  followInstance(stream: string, instance: string, from?: number | 'NOW'): void {
    this.conn.followInstance(stream, instance, from, Date.now());
  }

  /** The last token per (stream, instance) of the streams followed per instance: `{ events: { event_persister1: 1040 } }`. */
  instancePositions(): Record<string, Record<string, number | null>> {
    return this.conn.instancePositions();
  }

  /** The gateway's log generation as last answered (null: none); undefined until one is, or without followGeneration. */
  get generation(): string | null | undefined {
    return this.conn.generation;
  }

  /** The last token delivered per stream (a batch's token, or a POSITION), null before any. */
  positions(): Record<string, number | null> {
    return this.conn.positions();
  }

  userSync(userId: string, syncing: boolean): void {
    this.conn.userSync(userId, syncing, Date.now());
  }

  federationAck(token: number): void {
    this.conn.send({ name: 'FEDERATION_ACK', token }, Date.now());
  }

  removePusher(appId: string, pushKey: string, userId: string): void {
    this.conn.send({ name: 'REMOVE_PUSHER', appId, pushKey, userId }, Date.now());
  }

  invalidateCache(cacheFunc: string, keys: readonly unknown[]): void {
    this.conn.send({ name: 'INVALIDATE_CACHE', cacheFunc, keysJson: JSON.stringify(keys) }, Date.now());
  }

  userIp(userId: string, accessToken: string, ip: string, userAgent: string, deviceId: string | null, lastSeen: number): void {
    const infoJson = JSON.stringify([accessToken, ip, userAgent, deviceId, lastSeen]);
    this.conn.send({ name: 'USER_IP', userId, infoJson }, Date.now());
  }

  /**
   * The batches of `stream` as an async iterator (following it if not yet;
   * for a stream followed per instance, the batches of all its followed writers).
   * Each iterator holds up to maxBufferedBatches undelivered batches; past
   * that the client stops reading the socket until the consumer catches up
   * (the server then buffers, and may drop a far-behind client, which
   * reconnects and resumes). It ends when the client is closed or the loop breaks.
   */
  stream(stream: string, from?: number | 'NOW'): AsyncIterableIterator<RowBatch> {
    if (this.conn.followsInstances(stream)) {
      if (from !== undefined) throw new TypeError(`stream ${stream} is followed per instance: give its token to followInstance, not stream()`);
    } else {
      this.follow(stream, from);
    }
    const consumer: StreamConsumer = { batches: [], wake: null, paused: false, done: false };
    let set = this.consumers.get(stream);
    if (set === undefined) this.consumers.set(stream, (set = new Set()));
    set.add(consumer);
    const finish = (): IteratorResult<RowBatch> => {
      consumer.done = true;
      this.consumers.get(stream)?.delete(consumer);
      this.unpause(consumer);
      return { done: true, value: undefined };
    };
    const iterator: AsyncIterableIterator<RowBatch> = {
      next: () => {
        const batch = consumer.batches.shift();
        if (batch !== undefined) {
          if (consumer.batches.length <= this.maxBufferedBatches / 2) this.unpause(consumer);
          return Promise.resolve({ done: false, value: batch });
        }
        if (consumer.done) return Promise.resolve(finish());
        return new Promise((resolve) => (consumer.wake = resolve));
      },
      return: () => Promise.resolve(finish()),
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  protected onRows(batch: RowBatch): void {
    this.emit('rows', batch.stream, batch.token, batch.rows, batch);
    const set = this.consumers.get(batch.stream);
    if (set === undefined) return;
    for (const c of set) {
      if (c.wake !== null) {
        const wake = c.wake;
        c.wake = null;
        wake({ done: false, value: batch });
        continue;
      }
      c.batches.push(batch);
      if (!c.paused && c.batches.length >= this.maxBufferedBatches) {
        c.paused = true;
        this.pause();
      }
    }
  }

  protected onPosition(stream: string, token: number, before: number | null, instance?: string): void {
    if (before !== null && token < before) {
      if (instance === undefined) {
        this.log.warn({ stream, before, token }, 'the server went back on this stream (its log was wiped, replaced or lost rows): following it from its head');
      } else {
        this.log.warn({ stream, instance, before, token }, 'the writer restarted this stream from a lower token (a reset): following it from there');
      }
      this.emit('rewound', stream, before, token, instance ?? null);
    }
    this.emit('position', stream, token, instance ?? null);
  }

  protected override onGeneration(previous: string | null, current: string | null): void {
    this.emit('generation', previous, current);
  }

  protected override onClosed(): void {
    for (const set of this.consumers.values()) {
      for (const c of set) {
        c.done = true;
        if (c.wake !== null) {
          const wake = c.wake;
          c.wake = null;
          wake({ done: true, value: undefined });
        }
      }
    }
  }

  private unpause(c: StreamConsumer): void {
    if (!c.paused) return;
    c.paused = false;
    this.resume();
  }
}

function isNameList(streams: ReplicationClientOptions['streams']): streams is readonly string[] {
  return Array.isArray(streams);
}
