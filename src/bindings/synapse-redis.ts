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
 * The subscriber speaks RESP2 itself (./resp-reader.ts): at one push per
 * row, a general client's per-reply objects were a third of the gateway's
 * CPU in bench W9. The publisher, which sends one PUBLISH per connection,
 * is ioredis.
 *
 * Reconnects back off (src/core/backoff.ts); a PING every healthIntervalMs
 * checks the subscriber, and one unanswered for healthTimeoutMs drops it.
 */
import net from 'node:net';
import tls from 'node:tls';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Backoff } from '../core/backoff.js';
import { describeSynapseRedis, type SynapseRedisSpec } from '../core/synapse-redis-url.js';
import { RespReader, type RespReply } from './resp-reader.js';

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

export const REPLICATE_PAYLOAD = 'REPLICATE ';
const FOLLOWER_CONNECTION_NAME = 'replication-gateway-follower';

const MESSAGE = Buffer.from('message');
const SUBSCRIBE = Buffer.from('subscribe');
const PONG = Buffer.from('pong');
const PING_COMMAND = command(['PING']);

/** Both connections name the host for SNI (tls.connect sends none unless told), never an IP address. */
function tlsOptions(host: string): tls.ConnectionOptions {
  return net.isIP(host) === 0 ? { servername: host } : {};
}

/** A command as RESP2 writes it: an array of bulk strings. */
function command(words: string[]): Buffer {
  return Buffer.from(`*${words.length}\r\n` + words.map((w) => `$${Buffer.byteLength(w)}\r\n${w}\r\n`).join(''), 'utf8');
}

export class SynapseRedisLink {
  private readonly publisher: Redis;
  private readonly channel: string;
  private readonly channelBytes: Buffer;
  private readonly userIpChannel: string;
  private readonly channels: string[];
  private readonly backoff: Backoff;
  private readonly reader: RespReader;
  private socket: net.Socket | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  /** What each reply still to come answers, in order, until the subscription is up. */
  private steps: string[] = [];
  /** A message came in the chunk being read. */
  private heard = false;
  /** Tells start() how the first connection went: null once subscribed, else why not. */
  private firstSettled: ((why: string | null) => void) | null = null;
  /** What ended the subscriber's last connection; the publisher's last error. */
  private subscriberProblem: string | null = null;
  private publisherProblem: string | null = null;
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
    this.channelBytes = Buffer.from(this.channel, 'utf8');
    this.userIpChannel = `${options.serverName}/USER_IP`;
    this.channels = options.userIp ? [this.userIpChannel, this.channel] : [this.channel];
    this.backoff = options.backoff ?? new Backoff({ initialMs: 100, maxMs: 5_000 });
    this.reader = new RespReader((reply) => this.reply(reply));
    this.publisher = new Redis({
      ...('path' in spec.address ? { path: spec.address.path } : { host: spec.address.host, port: spec.address.port }),
      ...(spec.tls && !('path' in spec.address) ? { tls: tlsOptions(spec.address.host) } : {}),
      ...(spec.username !== null ? { username: spec.username } : {}),
      ...(spec.password !== null ? { password: spec.password } : {}),
      db: spec.db,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: options.healthTimeoutMs ?? 10_000,
      retryStrategy: () => this.retryDelay(),
      connectionName: 'replication-gateway-replicate',
    });
    this.publisher.on('error', (err: Error) => {
      this.problem = err.message;
      this.publisherProblem = err.message;
    });
  }

  /** Connects; resolves once the first subscription is up, rejects with what to check when Redis cannot be reached. */
  async start(): Promise<void> {
    this.healthTimer = setInterval(() => this.checkHealth(), this.options.healthIntervalMs ?? 5_000);
    this.healthTimer.unref();
    const subscribed = new Promise<string | null>((resolve) => {
      this.firstSettled = (why) => {
        this.firstSettled = null;
        resolve(why);
      };
    });
    this.connect();
    // Both connect at once; the subscriber's refusal (WRONGPASS, NOAUTH) is the one told, whichever fails first.
    const published = this.publisher.connect().then(
      () => null,
      (err: Error) => this.publisherProblem ?? err.message,
    );
    const reason = (await subscribed) ?? (await published);
    if (reason === null) return;
    await this.stop();
    const hint = /NOAUTH|WRONGPASS|invalid password|AUTH/i.test(reason) ? 'give the password in the --synapse-redis URL or RG_SYNAPSE_REDIS_PASSWORD' : "is this Synapse's Redis? check --synapse-redis";
    throw new Error(`could not connect to Synapse's Redis at ${this.where}: ${reason} (${hint})`);
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
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.socket?.destroy();
    this.publisher.disconnect();
  }

  /** One subscriber connection: AUTH when there is a password, a name, SUBSCRIBE; then pushes until it closes. */
  private connect(): void {
    const { spec } = this.options;
    const address = spec.address;
    const socket =
      'path' in address
        ? net.connect({ path: address.path })
        : spec.tls
          ? tls.connect({ host: address.host, port: address.port, ...tlsOptions(address.host) })
          : net.connect({ host: address.host, port: address.port });
    this.socket = socket;
    this.reader.reset();
    this.steps = [];
    this.subscriberProblem = null;
    socket.setNoDelay(true);
    // Until subscribed; a subscribed connection is quiet when Synapse is, and PINGs check it then.
    const timeoutMs = this.options.healthTimeoutMs ?? 10_000;
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no subscription within ${timeoutMs} ms`)));
    socket.once(spec.tls && !('path' in address) ? 'secureConnect' : 'connect', () => {
      const commands: Buffer[] = [];
      // Pub/sub channels are the same in every database: no SELECT.
      if (spec.password !== null) {
        commands.push(command(spec.username !== null ? ['AUTH', spec.username, spec.password] : ['AUTH', spec.password]));
        this.steps.push('AUTH');
      }
      commands.push(command(['CLIENT', 'SETNAME', FOLLOWER_CONNECTION_NAME]));
      this.steps.push('CLIENT SETNAME');
      commands.push(command(['SUBSCRIBE', ...this.channels]));
      for (let i = 0; i < this.channels.length; i++) this.steps.push('SUBSCRIBE');
      this.options.onConnect();
      socket.write(Buffer.concat(commands));
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        this.reader.feed(chunk);
      } catch (err) {
        socket.destroy(new Error(`not a Redis reply: ${(err as Error).message}`));
        return;
      }
      // Once per chunk: its messages came together.
      if (this.heard) {
        this.heard = false;
        this.lastMessageAt = Date.now();
      }
    });
    socket.on('error', (err: Error) => this.subscriberFailed(err.message));
    socket.on('close', () => this.closed(socket));
  }

  private reply(r: RespReply): void {
    if (r.type === 0x2a && r.count === 3 && r.is(0, MESSAGE)) {
      this.message(r);
      return;
    }
    const step = this.steps.shift();
    if (r.type === 0x2d) {
      // A refused name matters to no one but an operator reading CLIENT LIST.
      if (step === 'CLIENT SETNAME') return;
      this.subscriberFailed(`${step ?? 'Redis'} failed: ${r.text(0)}`);
      this.socket?.destroy();
      return;
    }
    if (step === undefined) {
      if (r.type === 0x2a && r.count === 2 && r.is(0, PONG)) this.pingSentAt = null;
    } else if (step === 'SUBSCRIBE' && r.is(0, SUBSCRIBE) && this.steps.length === 0) {
      this.subscribedNow();
    }
  }

  private message(r: RespReply): void {
    const start = r.starts[2]!;
    const end = r.ends[2]!;
    if (start < 0) return;
    // A copy: the payload is a view of the socket's chunk, which the log should not keep.
    const line = Buffer.allocUnsafe(end - start + 1);
    r.buf.copy(line, 0, start, end);
    line[end - start] = 0x0a;
    this.heard = true;
    // Without USER_IP the main channel is the only one subscribed.
    if (!this.options.userIp || r.is(1, this.channelBytes)) this.options.onLine(line);
    else this.options.onUserIp?.(line);
  }

  private subscribedNow(): void {
    if (this.stopped) return;
    this.socket?.setTimeout(0);
    this.backoff.reset();
    this.subscribed = true;
    this.connects++;
    this.problem = null;
    this.subscriberProblem = null;
    this.firstSettled?.(null);
    this.options.logger.info({ redis: this.where, channels: this.channels }, 'subscribed to the Synapse channel; asking every process for its positions');
    void this.replicate();
  }

  private subscriberFailed(why: string): void {
    this.problem = why;
    this.subscriberProblem = why;
  }

  private closed(socket: net.Socket): void {
    if (this.socket !== socket) return;
    this.socket = null;
    if (this.subscribed) this.options.logger.warn({ redis: this.where }, 'lost the Synapse Redis subscription: reconnecting; what is published meanwhile is a gap');
    this.subscribed = false;
    this.pingSentAt = null;
    if (this.firstSettled !== null) {
      this.firstSettled(this.subscriberProblem ?? 'the connection closed before the subscription');
      return;
    }
    if (this.stopped) return;
    const delay = this.retryDelay();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.stopped) this.connect();
    }, delay);
  }

  /** The wait before the next connection attempt, the subscriber's or the publisher's (one back-off for both). */
  private retryDelay(): number {
    return this.backoff.next({ now: Date.now(), openedAtMs: null, serverSeen: false, refused: false });
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
      this.subscriberFailed('the Synapse Redis did not answer PING in time');
      this.options.logger.warn({ redis: this.where }, 'the Synapse Redis did not answer PING: reconnecting');
      this.pingSentAt = null;
      this.socket?.destroy();
      return;
    }
    if (this.pingSentAt === null) {
      this.pingSentAt = now;
      // A subscribed connection may PING (Synapse's keep-alive does the same); its answer is a `pong` push.
      this.socket?.write(PING_COMMAND);
    }
  }
}
