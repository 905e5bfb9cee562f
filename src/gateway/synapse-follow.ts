/**
 * `serve --synapse-redis`: the follower of a current Synapse deployment put
 * together (the Redis link, the core follower, the per-pair history) and
 * what /healthz says of it. The history opens before the link starts, so a
 * file log's pairs are known to the follower before the first POSITION.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import { SynapseRedisLink, type SynapseLinkHealth } from '../bindings/synapse-redis.js';
import type { SynapseRedisSpec } from '../core/synapse-redis-url.js';
import { fetchStreamUpdates } from '../bindings/synapse-http.js';
import { SynapseFollower } from '../core/synapse-follower.js';
import type { FollowedStreams } from '../core/followed-streams.js';
import type { LogSpec, FsyncPolicy } from './log-store.js';
import { SynapseHistory, filePairLogs, memoryPairLogs, type SynapseHistoryStats } from './synapse-history.js';

export interface SynapseFollowOptions {
  redis: SynapseRedisSpec;
  serverName: string;
  userIp: boolean;
  /** Each instance's replication listener, for gap-fill. */
  replicationUrls: Record<string, string>;
  replicationSecret: string | null;
  log: LogSpec;
  retentionRows: number;
  retentionBytes: number;
  retentionAgeMs: number | null;
  fsync: FsyncPolicy;
  logger: Logger;
}

export interface SynapseHealth extends SynapseLinkHealth {
  redis: string;
  serverName: string;
  pairs: { stream: string; instance: string; token: number | null; generation: number; gaps: { afterToken: number; uptoToken: number }[] }[];
  stats: SynapseHistoryStats & { userIpLines: number };
}

export class SynapseFollow {
  private userIpLines = 0;

  private constructor(
    readonly history: SynapseHistory,
    readonly follower: SynapseFollower,
    readonly link: SynapseRedisLink,
    private readonly serverName: string,
  ) {}

  static async open(options: SynapseFollowOptions): Promise<SynapseFollow> {
    const logger = options.logger.child({ component: 'synapse' });
    const source =
      options.log.kind === 'file'
        ? filePairLogs(options.log.dir, {
            retentionRows: options.retentionRows,
            retentionBytes: options.retentionBytes,
            retentionAgeMs: options.retentionAgeMs,
            fsync: options.fsync,
          })
        : memoryPairLogs({ retentionRows: options.retentionRows, retentionBytes: options.retentionBytes });
    const endpoints = new Map(Object.entries(options.replicationUrls).map(([instance, url]) => [instance, { base: new URL(url), secret: options.replicationSecret }]));
    const history = new SynapseHistory(source, logger, (instance) => {
      const endpoint = endpoints.get(instance);
      return endpoint === undefined ? null : (stream, from, upto) => fetchStreamUpdates(endpoint, stream, from, upto);
    });
    const follower = new SynapseFollower(history);
    for (const pair of await history.load()) {
      if (pair.log !== null) follower.known(pair.stream, pair.instance, pair.log.head);
    }
    let follow: SynapseFollow | null = null;
    const link = new SynapseRedisLink({
      spec: options.redis,
      serverName: options.serverName,
      userIp: options.userIp,
      logger,
      onConnect: () => follower.connected(),
      onLine: (line) => follower.line(line),
      // Counted only: USER_IP carries access tokens.
      onUserIp: () => {
        if (follow !== null) follow.userIpLines++;
      },
    });
    follow = new SynapseFollow(history, follower, link, options.serverName);
    if (options.log.kind === 'file') logger.info({ dir: path.join(options.log.dir, 'synapse') }, 'Synapse history kept in the file log');
    return follow;
  }

  /**
   * Serves the history through `followed` (the hub's): every pair's log,
   * those read back from the file log now, each new one and each next
   * generation (a reset) as it opens.
   */
  serveTo(followed: FollowedStreams): void {
    this.history.onPairLog((pair, log) => followed.pairLog(pair.stream, pair.instance, log));
    for (const pair of this.history.all()) if (pair.log !== null) followed.pairLog(pair.stream, pair.instance, pair.log);
  }

  start(): Promise<void> {
    return this.link.start();
  }

  async stop(): Promise<void> {
    await this.link.stop();
    await this.history.close();
  }

  health(): SynapseHealth {
    const status = new Map(this.follower.status().map((s) => [`${s.stream}\u0000${s.instance}`, s]));
    return {
      redis: this.link.where,
      serverName: this.serverName,
      ...this.link.health(),
      pairs: this.history.all().map((p) => ({
        stream: p.stream,
        instance: p.instance,
        token: status.get(`${p.stream}\u0000${p.instance}`)?.token ?? p.log?.head ?? null,
        generation: p.generation,
        gaps: p.gaps.map((g) => ({ afterToken: g.afterToken, uptoToken: g.uptoToken })),
      })),
      stats: { ...this.history.stats(), userIpLines: this.userIpLines },
    };
  }
}
