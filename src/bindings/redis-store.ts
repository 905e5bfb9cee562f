/**
 * The gateway's link to Redis for `--log redis://...`: two connections and
 * the logs of its streams (redis-log.ts).
 *
 *     commands  appends (the append script), catch-up XRANGEs, restarts, PING every second
 *     reader    ONE blocking `XREAD COUNT n BLOCK ms STREAMS <every stream> <last id heard>`
 *               loop for the whole gateway, never one per subscriber: each entry, whoever
 *               wrote it, goes to its stream's log and from there to live fan-out
 *
 * Neither connection queues or resends a command across a reconnect: an
 * append that Redis may not have stored fails at once (the writer gets
 * ERROR and resumes from the head), and the reader resumes from the last id
 * it heard. A PING without an answer, or an XREAD past its block time, for
 * longer than the health timeout (a blackholed Redis) drops the connection
 * and reconnects.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { MemoryLogOptions } from '../core/stream-log.js';
import { RedisStreamLog, type RedisLogLink, type RedisStreamKeys } from './redis-log.js';
import { APPEND_LUA, OPEN_LUA, RESTART_LUA } from './redis-scripts.js';

/** `--log redis://[USER:PASSWORD@]HOST:PORT[/PREFIX]`, `rediss://...` (TLS) or `unix:PATH[?prefix=PREFIX]`. */
export interface RedisLogSpec {
  kind: 'redis';
  /** TCP, or a unix socket path. */
  address: { host: string; port: number } | { path: string };
  tls: boolean;
  username: string | null;
  password: string | null;
  /** Every key of this gateway's streams starts with `<prefix>:`; gateways sharing streams share it. */
  prefix: string;
}

export interface RedisStoreOptions {
  logger?: Logger | undefined;
  /** PING and XREAD deadline checks run this often. */
  healthIntervalMs?: number;
  /** A connection silent this long past its deadline is dropped and reconnected. */
  healthTimeoutMs?: number;
  /** How long the XREAD blocks waiting for new entries. */
  blockMs?: number;
}

const DEFAULT_HEALTH_INTERVAL_MS = 1_000;
const DEFAULT_HEALTH_TIMEOUT_MS = 5_000;
const DEFAULT_BLOCK_MS = 2_000;
/** Entries per stream per XREAD. */
const READ_COUNT = 1_000;
/** A catch-up read retries this long while Redis is away, so a catching-up subscriber stays connected across a Redis restart. */
const READ_RETRY_MS = 30_000;
const READ_RETRY_PAUSE_MS = 200;

interface ScriptCommands {
  rgAppend(stream: string, meta: string, ...args: (string | Buffer)[]): Promise<number[]>;
  rgOpen(meta: string, startToken: string): Promise<(string | null)[]>;
  rgRestart(stream: string, meta: string, token: string): Promise<unknown>;
}

type XReadReply = [Buffer, [Buffer, Buffer[]][]][] | null;

/** A failure of the link, not of the command: ioredis's not-connected and lost-connection errors. */
function isConnectionError(err: unknown): boolean {
  const message = err instanceof Error ? err.message : '';
  return /enableOfflineQueue|max retries per request|Connection is closed/i.test(message);
}

export function describeRedis(spec: RedisLogSpec): string {
  const where = 'path' in spec.address ? `unix:${spec.address.path}` : `${spec.tls ? 'rediss' : 'redis'}://${spec.address.host}:${spec.address.port}`;
  return `${where} (prefix ${spec.prefix})`;
}

export class RedisLogStore {
  private readonly commands: Redis & ScriptCommands;
  private readonly reader: Redis;
  private readonly logs = new Map<string, RedisStreamLog>();
  /** Stream key -> its log, for the XREAD replies. */
  private readonly byKey = new Map<string, RedisStreamLog>();
  private readonly instance = randomBytes(6).toString('hex');
  private tagSeq = 0;
  private closed = false;
  private commandsUp = false;
  private readerRunning = false;
  private lastProblem: string | null = null;
  /** The last error either connection reported, for the message when opening fails. */
  private lastError: string | null = null;
  private pingSentAt = 0;
  private readStartedAt = 0;
  private readerId: number | null = null;
  private readerBlocked = false;
  private loop: Promise<void> | null = null;
  private wakeLoop: (() => void) | null = null;
  private readonly healthTimer: NodeJS.Timeout;
  private readonly healthTimeoutMs: number;
  private readonly blockMs: number;
  private readonly logger: Logger | undefined;
  readonly link: RedisLogLink;
  readonly where: string;
  private readonly prefix: string;

  static async open(spec: RedisLogSpec, options: RedisStoreOptions = {}): Promise<RedisLogStore> {
    if (os.endianness() !== 'LE') throw new Error('the Redis log stores group ends in little-endian order: this host is big-endian');
    const store = new RedisLogStore(spec, options);
    try {
      await Promise.all([store.commands.connect(), store.reader.connect()]);
    } catch (err) {
      await store.close();
      // ioredis rejects with "Connection is closed."; the error event before it says why.
      const reason = store.lastError ?? (err instanceof Error ? err.message : String(err));
      const hint = /NOAUTH|WRONGPASS|invalid password|AUTH/i.test(reason)
        ? 'give the password in the --log URL or RG_REDIS_PASSWORD'
        : 'is redis-server running there? check --log';
      throw new Error(`could not connect to Redis at ${store.where}: ${reason} (${hint})`);
    }
    store.commandsUp = true;
    store.loop = store.readLoop();
    return store;
  }

  private constructor(spec: RedisLogSpec, options: RedisStoreOptions) {
    this.where = describeRedis(spec);
    this.prefix = spec.prefix;
    this.logger = options.logger;
    this.healthTimeoutMs = options.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS;
    this.blockMs = options.blockMs ?? DEFAULT_BLOCK_MS;
    const connection: RedisOptions = {
      ...('path' in spec.address ? { path: spec.address.path } : { host: spec.address.host, port: spec.address.port }),
      ...(spec.tls ? { tls: {} } : {}),
      ...(spec.username !== null ? { username: spec.username } : {}),
      ...(spec.password !== null ? { password: spec.password } : {}),
      lazyConnect: true,
      // Nothing waits for a connection or is sent twice: a caller hears of a failure at once.
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      connectTimeout: this.healthTimeoutMs,
      retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
    };
    this.commands = new Redis({ ...connection, connectionName: 'replication-gateway:commands' }) as Redis & ScriptCommands;
    this.commands.defineCommand('rgAppend', { numberOfKeys: 2, lua: APPEND_LUA });
    this.commands.defineCommand('rgOpen', { numberOfKeys: 1, lua: OPEN_LUA });
    this.commands.defineCommand('rgRestart', { numberOfKeys: 2, lua: RESTART_LUA });
    this.reader = new Redis({ ...connection, connectionName: 'replication-gateway:reader' });
    this.watch(this.commands, 'commands');
    this.watch(this.reader, 'reader');
    const commands = this.commands;
    const store = this;
    this.link = {
      append: (keys, args) => commands.rgAppend(keys.stream, keys.meta, ...args),
      range: (key, start, end, count) => this.range(key, start, end, count),
      restart: (keys, token) => commands.rgRestart(keys.stream, keys.meta, String(token)),
      nextTag: () => `${this.instance}:${++this.tagSeq}`,
      get readerUp() {
        return store.reader.status === 'ready';
      },
      problem: (stream, err) => this.problem(`${stream}: ${err instanceof Error ? err.message : String(err)}`),
    };
    this.healthTimer = setInterval(() => this.checkHealth(), options.healthIntervalMs ?? DEFAULT_HEALTH_INTERVAL_MS);
    this.healthTimer.unref();
  }

  /** Opens one stream's log: its state in Redis (a stream seen before resumes where it was). */
  async openLog(stream: string, options: MemoryLogOptions): Promise<RedisStreamLog> {
    if (this.logs.has(stream)) throw new Error(`the Redis log of ${stream} is already open`);
    const keys: RedisStreamKeys = { stream: `${this.prefix}:stream:${stream}`, meta: `${this.prefix}:meta:${stream}` };
    const start = options.startToken === undefined ? '' : String(options.startToken);
    const [head, oldest, rows, bytes] = (await this.commands.rgOpen(keys.meta, start)).map((v) => (v === null ? null : Number(v)));
    const known = head ?? 0;
    const log = new RedisStreamLog(stream, keys, this.link, { head: known, oldest: oldest ?? known, rows: rows ?? 0, bytes: bytes ?? 0 }, options);
    this.logs.set(stream, log);
    this.byKey.set(keys.stream, log);
    // The XREAD in progress does not name this stream yet: end its wait.
    this.wake();
    return log;
  }

  streamLog(stream: string): RedisStreamLog | undefined {
    return this.logs.get(stream);
  }

  /** Up means both connections answer. */
  health(): { ok: boolean; problem: string | null; links: Record<string, boolean> } {
    const links = { commands: this.commandsUp, reader: this.readerRunning };
    const ok = links.commands && links.reader;
    return { ok, problem: ok ? null : (this.lastProblem ?? `Redis at ${this.where} is not connected`), links };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.healthTimer);
    for (const log of this.logs.values()) log.readerLost('the log store closed');
    this.wakeLoop?.();
    this.commands.disconnect();
    this.reader.disconnect();
    await this.loop;
  }

  /** XRANGE for a catch-up: reads change nothing, so one that failed with the connection is asked again once it is back. */
  private async range(key: string, start: string, end: string, count: number): Promise<[Buffer, Buffer[]][]> {
    const deadline = Date.now() + READ_RETRY_MS;
    for (;;) {
      try {
        return (await this.commands.xrangeBuffer(key, start, end, 'COUNT', count)) as [Buffer, Buffer[]][];
      } catch (err) {
        if (this.closed || Date.now() > deadline || !isConnectionError(err)) throw err;
        await new Promise((r) => setTimeout(r, READ_RETRY_PAUSE_MS));
      }
    }
  }

  // ------------------------------------------------------------ the XREAD loop

  private async readLoop(): Promise<void> {
    while (!this.closed) {
      if (this.reader.status !== 'ready' || this.logs.size === 0) {
        await this.waitForChange();
        continue;
      }
      try {
        if (this.readerId === null) this.readerId = Number(await this.reader.client('ID'));
        if (!this.readerRunning) {
          this.readerRunning = true;
          this.logger?.info({ redis: this.where }, 'Redis XREAD connection reading');
        }
        const logs = [...this.logs.values()];
        const args: (string | number)[] = ['COUNT', READ_COUNT, 'BLOCK', this.blockMs, 'STREAMS'];
        for (const log of logs) args.push(log.keys.stream);
        for (const log of logs) args.push(`${log.head}-0`);
        this.readStartedAt = Date.now();
        this.readerBlocked = true;
        const reply = (await this.reader.callBuffer('XREAD', ...args)) as XReadReply;
        this.readerBlocked = false;
        this.readStartedAt = 0;
        if (reply !== null) this.deliver(reply);
      } catch (err) {
        this.readerBlocked = false;
        this.readStartedAt = 0;
        if (this.closed) return;
        this.readerFailed(err instanceof Error ? err.message : String(err));
      }
    }
  }

  private deliver(reply: NonNullable<XReadReply>): void {
    for (const [key, entries] of reply) {
      const log = this.byKey.get(key.toString());
      if (log === undefined) continue;
      for (const [id, fields] of entries) log.deliver(id, fields);
    }
  }

  private readerFailed(reason: string): void {
    if (this.readerRunning) {
      this.readerRunning = false;
      this.problem(`the XREAD connection to Redis at ${this.where} failed: ${reason}`);
    }
    for (const log of this.logs.values()) log.readerLost(reason);
  }

  /** Resolves when the reader may have something new to do: reconnected, a log opened, closing. */
  private waitForChange(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.blockMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeLoop = done;
    });
  }

  private wake(): void {
    const wake = this.wakeLoop;
    this.wakeLoop = null;
    wake?.();
    if (this.readerBlocked && this.readerId !== null && this.commandsUp) {
      this.commands.client('UNBLOCK', this.readerId).catch(() => {});
    }
  }

  // ------------------------------------------------------------ health

  private watch(connection: Redis, name: 'commands' | 'reader'): void {
    connection.on('ready', () => {
      if (name === 'commands') {
        if (!this.commandsUp) this.logger?.info({ redis: this.where }, 'Redis command connection ready');
        this.commandsUp = true;
      } else {
        this.readerId = null;
        this.wake();
      }
    });
    connection.on('close', () => {
      if (name === 'commands') {
        if (this.commandsUp && !this.closed) this.problem(`the command connection to Redis at ${this.where} closed`);
        this.commandsUp = false;
        this.pingSentAt = 0;
      } else {
        this.readerId = null;
        if (this.readerRunning && !this.closed) this.readerFailed('connection closed');
      }
    });
    // ioredis reports every failed reconnect; the state changes above are what operators need.
    connection.on('error', (err: Error) => {
      this.lastError = err.message;
      if (!this.closed) this.logger?.debug({ redis: this.where, connection: name, err: err.message }, 'Redis connection error');
    });
  }

  private checkHealth(): void {
    const now = Date.now();
    if (this.pingSentAt !== 0 && now - this.pingSentAt > this.healthTimeoutMs) {
      this.pingSentAt = 0;
      this.commandsUp = false;
      this.problem(`Redis at ${this.where} did not answer PING within ${this.healthTimeoutMs} ms: reconnecting`);
      this.commands.disconnect(true);
    } else if (this.pingSentAt === 0 && this.commands.status === 'ready') {
      this.pingSentAt = now;
      this.commands.ping().then(
        () => {
          this.pingSentAt = 0;
          this.refresh();
        },
        () => {},
      );
    }
    if (this.readStartedAt !== 0 && now - this.readStartedAt > this.blockMs + this.healthTimeoutMs) {
      this.readStartedAt = 0;
      this.readerFailed(`no XREAD answer within ${this.blockMs + this.healthTimeoutMs} ms`);
      this.reader.disconnect(true);
    }
  }

  /** Retention figures of every stream as Redis has them now (other gateways append and trim too). */
  private refresh(): void {
    for (const log of this.logs.values()) {
      this.commands.hmget(log.keys.meta, 'oldest', 'rows', 'bytes').then(
        ([oldest, rows, bytes]) => {
          if (oldest != null) log.refreshed(Number(oldest), Number(rows ?? 0), Number(bytes ?? 0));
        },
        () => {},
      );
    }
  }

  private problem(text: string): void {
    this.lastProblem = text;
    this.logger?.warn({ redis: this.where }, text);
  }
}
