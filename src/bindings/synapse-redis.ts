/**
 * The gateway's link to a current Synapse deployment's Redis: one subscriber
 * connection on the channel named after the server (`<server_name>`, and
 * `<server_name>/USER_IP` only when asked), every payload handed on with an
 * LF as the line Synapse published. On each (re)connect it publishes the one
 * thing every Synapse process publishes then, `REPLICATE `, so the writers
 * announce their positions; it publishes nothing else, ever (a foreign
 * POSITION or RDATA on that channel breaks Synapse's own replication: see
 * ../shared/synapse-today/README.md, file 09).
 *
 * Reconnects back off (src/core/backoff.ts); a PING every healthIntervalMs
 * checks the subscriber, and one unanswered for healthTimeoutMs drops it.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { Backoff } from '../core/backoff.js';
import { describeSynapseRedis, type SynapseRedisSpec } from '../core/synapse-redis-url.js';

export interface SynapseRedisOptions {
  spec: SynapseRedisSpec;
  serverName: string;
  /** Also subscribe `<server_name>/USER_IP` (it carries access tokens). */
  userIp: boolean;
  logger: Logger;
  /** A new subscription is about to begin: what was published before it is unheard. */
  onConnect(): void;
  /** One payload from the main channel, LF added. */
  onLine(line: Buffer): void;
  /** One USER_IP payload (only with userIp), LF added. */
  onUserIp?(line: Buffer): void;
  healthIntervalMs?: number;
  healthTimeoutMs?: number;
  backoff?: Backoff;
}

export interface SynapseLinkHealth {
  connected: boolean;
  /** ms since the last message on the channel; null: none yet. */
  lastMessageAgeMs: number | null;
  connects: number;
  problem: string | null;
}

const LF = Buffer.from('\n');
export const REPLICATE_PAYLOAD = 'REPLICATE ';

export class SynapseRedisLink {
  private readonly subscriber: Redis;
  private readonly publisher: Redis;
  private readonly channel: string;
  private readonly userIpChannel: string;
  private subscribed = false;
  private lastMessageAt: number | null = null;
  private connects = 0;
  private problem: string | null = null;
  private pingSentAt: number | null = null;
  private healthTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  readonly where: string;

  constructor(private readonly options: SynapseRedisOptions) {
    const { spec } = options;
    this.where = describeSynapseRedis(spec);
    this.channel = options.serverName;
    this.userIpChannel = `${options.serverName}/USER_IP`;
    const backoff = options.backoff ?? new Backoff({ initialMs: 100, maxMs: 5_000 });
    const connection: RedisOptions = {
      ...('path' in spec.address ? { path: spec.address.path } : { host: spec.address.host, port: spec.address.port }),
      ...(spec.tls ? { tls: {} } : {}),
      ...(spec.username !== null ? { username: spec.username } : {}),
      ...(spec.password !== null ? { password: spec.password } : {}),
      db: spec.db,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: options.healthTimeoutMs ?? 10_000,
      retryStrategy: () => backoff.next({ now: Date.now(), openedAtMs: null, serverSeen: false, refused: false }),
    };
    // We subscribe ourselves on every ready, so the follower hears of the new subscription before its first message.
    this.subscriber = new Redis({ ...connection, autoResubscribe: false, connectionName: 'replication-gateway-follower' });
    this.publisher = new Redis({ ...connection, connectionName: 'replication-gateway-replicate' });
    this.subscriber.on('ready', () => {
      backoff.reset();
      void this.subscribe();
    });
    this.subscriber.on('close', () => {
      if (this.subscribed) options.logger.warn({ redis: this.where }, 'lost the Synapse Redis subscription: reconnecting; what is published meanwhile is a gap');
      this.subscribed = false;
      this.pingSentAt = null;
    });
    this.subscriber.on('error', (err: Error) => {
      this.problem = err.message;
    });
    this.publisher.on('error', (err: Error) => {
      this.problem = err.message;
    });
    const channelBytes = Buffer.from(this.channel, 'utf8');
    this.subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      this.lastMessageAt = Date.now();
      const line = Buffer.concat([message, LF]);
      if (channel.equals(channelBytes)) options.onLine(line);
      else if (options.userIp) options.onUserIp?.(line);
    });
  }

  /** Connects; resolves once the first subscription is up, rejects with what to check when Redis cannot be reached. */
  async start(): Promise<void> {
    this.healthTimer = setInterval(() => this.checkHealth(), this.options.healthIntervalMs ?? 5_000);
    this.healthTimer.unref();
    try {
      await Promise.all([this.subscriber.connect(), this.publisher.connect()]);
    } catch (err) {
      const reason = this.problem ?? (err as Error).message;
      await this.stop();
      const hint = /NOAUTH|WRONGPASS|invalid password|AUTH/i.test(reason) ? 'give the password in the --synapse-redis URL or RG_SYNAPSE_REDIS_PASSWORD' : "is this Synapse's Redis? check --synapse-redis";
      throw new Error(`could not connect to Synapse's Redis at ${this.where}: ${reason} (${hint})`);
    }
  }

  health(): SynapseLinkHealth {
    return {
      connected: this.subscribed,
      lastMessageAgeMs: this.lastMessageAt === null ? null : Date.now() - this.lastMessageAt,
      connects: this.connects,
      problem: this.subscribed ? null : this.problem,
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.healthTimer !== null) clearInterval(this.healthTimer);
    this.subscriber.disconnect();
    this.publisher.disconnect();
  }

  private async subscribe(): Promise<void> {
    this.options.onConnect();
    const channels = this.options.userIp ? [this.userIpChannel, this.channel] : [this.channel];
    try {
      await this.subscriber.subscribe(...channels);
    } catch (err) {
      this.problem = `SUBSCRIBE failed: ${(err as Error).message}`;
      this.subscriber.disconnect(true);
      return;
    }
    if (this.stopped) return;
    this.subscribed = true;
    this.connects++;
    this.problem = null;
    this.options.logger.info({ redis: this.where, channels }, 'subscribed to the Synapse channel; asking every process for its positions');
    await this.replicate();
  }

  /** `REPLICATE ` once the publisher is up (it can come back after the subscriber, as Synapse's own does). */
  private async replicate(): Promise<void> {
    for (let attempt = 0; attempt < 50 && !this.stopped && this.subscribed; attempt++) {
      if (this.publisher.status === 'ready') {
        try {
          await this.publisher.publish(this.channel, REPLICATE_PAYLOAD);
          return;
        } catch (err) {
          this.problem = `PUBLISH REPLICATE failed: ${(err as Error).message}`;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    if (!this.stopped && this.subscribed) {
      this.options.logger.warn({ redis: this.where }, 'could not send REPLICATE: positions are learnt from the writers\' next POSITIONs instead');
    }
  }

  private checkHealth(): void {
    if (!this.subscribed) return;
    const now = Date.now();
    if (this.pingSentAt !== null && now - this.pingSentAt > (this.options.healthTimeoutMs ?? 10_000)) {
      this.problem = 'the Synapse Redis did not answer PING in time';
      this.options.logger.warn({ redis: this.where }, 'the Synapse Redis did not answer PING: reconnecting');
      this.pingSentAt = null;
      this.subscriber.disconnect(true);
      return;
    }
    if (this.pingSentAt === null) {
      this.pingSentAt = now;
      // A subscribed connection may PING (Synapse's keep-alive does the same).
      this.subscriber.ping().then(
        () => {
          this.pingSentAt = null;
        },
        () => {},
      );
    }
  }
}
