/**
 * The gateway process without its command line: the replication server,
 * the HTTP listener (/metrics, /healthz, /congestion, /connections), the
 * --monitor listener (the same without stream data), relay mode, logs of
 * what peers do (rate-limited), the last congestion cuts, and an orderly
 * stop. src/cli/serve.ts wraps it in flags, signals and a ready file.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { chooseEngine } from '../bindings/engine-choice.js';
import { HttpListener } from '../bindings/http-app.js';
import { MonitorListener } from '../bindings/monitor-listener.js';
import { EncoderPool } from '../workers/encoder-pool.js';
import { JUMP_STREAMS, type ConnectionInfo, type DisconnectReason } from '../core/hub-types.js';
import type { ServerView } from '../core/server-view.js';
import { ReplicationRelay } from '../relay.js';
import { ReplicationServer, hubOf } from '../server.js';
import { CongestionLog } from './congestion-log.js';
import { connectionsPage } from './connections-report.js';
import { healthReport, type HealthReport } from './health.js';
import { answer, gatewayRoutes } from './http-routes.js';
import { loadGatewayTls, reloadListenerTls, tlsKeysNeedingRestart } from './listener-tls.js';
import { LogLimiter } from './log-limiter.js';
import { openLogStore, type LogStore } from './log-store.js';
import { GatewayMetrics } from './metrics.js';
import { OPTIONS, type GatewayConfig } from './options.js';
import { StreamTimeline } from './stream-timeline.js';
import type { SynapseFollow } from './synapse-follow.js';

export interface GatewayAddresses {
  tcp: AddressInfo;
  http: AddressInfo | null;
  /** null without --monitor. */
  monitor: AddressInfo | null;
}

/** What --monitor serves: no stream data. */
const MONITOR_PATHS = ['/metrics', '/healthz', '/connections'] as const;

/** How often held-back log lines are reported. */
const SUPPRESSED_REPORT_MS = 10_000;

/** Disconnect reasons that are routine (info); the rest are worth a warning. */
const ROUTINE: ReadonlySet<DisconnectReason> = new Set<DisconnectReason>(['peer_closed', 'shutdown']);

export class Gateway {
  readonly server: ReplicationServer;
  readonly relay: ReplicationRelay | null;
  readonly metrics: GatewayMetrics;
  /** What the reports (metrics, /healthz) read of the server. */
  private readonly view: ServerView;
  readonly cuts = new CongestionLog();
  private readonly timeline = new StreamTimeline();
  private readonly lastWriteAt = new Map<string, number>();
  private readonly limiter = new LogLimiter();
  /** Connections closed for a failed AUTH: the AUTH log lines speak for them (once per burst per host). */
  private readonly authFailedConns = new WeakSet<ConnectionInfo>();
  private readonly http: HttpListener | null;
  private readonly monitor: MonitorListener | null;
  private monitorAddress: AddressInfo | null = null;
  private readonly encoder: EncoderPool;
  private tcpAddress: AddressInfo | null = null;
  private httpAddress: AddressInfo | null = null;
  private readonly startedAt: number;
  private stopping: Promise<boolean> | null = null;
  private readonly stopRequested: Promise<void>;
  private requestStop!: () => void;
  private readonly suppressedTimer: NodeJS.Timeout;

  /** Opens the --log store (a durable one recovers its files first), then builds the gateway on it. */
  static async open(config: GatewayConfig, log: Logger, clock: () => number = Date.now): Promise<Gateway> {
    // In relay mode, ReplicationRelay anchors each empty log at 0; a writer's first row says nothing of the tokens before it.
    const spec = config.log.kind === 'redis' && config.log.password === null ? { ...config.log, password: config.redisPassword } : config.log;
    const store = await openLogStore(spec, {
      streams: config.streams,
      retentionRows: config.retentionRows,
      retentionBytes: config.retentionBytes,
      retentionAgeMs: config.retentionAgeMs,
      fsync: config.fsync,
      logger: log,
    });
    let synapse: SynapseFollow | null = null;
    try {
      synapse = await openSynapse(config, log);
      return new Gateway(config, log, store, synapse, clock);
    } catch (err) {
      await Promise.all([store.close(), synapse?.stop()]);
      throw err;
    }
  }

  private constructor(
    private config: GatewayConfig,
    private readonly log: Logger,
    private readonly store: LogStore,
    /** The followed Synapse deployment (--synapse-redis), or null. */
    readonly synapse: SynapseFollow | null,
    private readonly clock: () => number,
  ) {
    // Before anything starts: --ws-engine uws where it cannot run throws EngineUnavailableError, a bad TLS file TlsFilesError.
    const tls = loadGatewayTls(config);
    const engine = config.http === null ? null : chooseEngine(config.wsEngine, { clientCertificates: tls.http !== null && tls.http.ca !== null });
    this.startedAt = clock();
    this.stopRequested = new Promise((resolve) => (this.requestStop = resolve));
    this.encoder = new EncoderPool(config.encodeThreads === null ? {} : { threads: config.encodeThreads });
    this.server = new ReplicationServer({
      encoder: this.encoder,
      serverName: config.serverName ?? config.upstreamName ?? 'localhost',
      streams: config.streams.map((name) => ({ name, tooOld: JUMP_STREAMS.includes(name) ? 'jump' : 'error' })),
      credentials: [...config.writerToken, ...config.subscriberToken],
      createLog: (stream) => store.createLog(stream),
      generation: store.health().generation?.id ?? null,
      maxQueueCommands: config.maxQueueCommands,
      maxQueueBytes: config.maxQueueBytes,
      maxStallMs: config.maxStallMs,
      maxLineBytes: config.maxLineBytes,
      maxConnections: config.maxConnections,
      maxConnectionsPerAddress: config.maxConnectionsPerAddress,
      maxPartialLineBytes: config.maxPartialLineBytes,
      lineTimeoutMs: config.lineTimeoutMs,
      clock,
      ...(tls.tcp !== null ? { tls: tls.tcp } : {}),
    });
    this.view = hubOf(this.server);
    synapse?.serveTo(hubOf(this.server).followed());
    this.relay =
      config.upstream === null
        ? null
        : new ReplicationRelay(this.server, {
            host: config.upstream.host,
            port: config.upstream.port,
            ...(config.upstreamName !== null ? { serverName: config.upstreamName } : {}),
            ...(config.upstreamToken !== null ? { auth: config.upstreamToken } : {}),
            ...(tls.upstream !== undefined ? { tls: tls.upstream } : {}),
            // Without a name of its own, the gateway is known by its upstream's.
            adoptServerName: config.serverName === null && config.upstreamName === null,
            maxQueuedCommands: config.upstreamQueueCommands,
            maxLineBytes: config.maxLineBytes,
            logger: log.child({ component: 'relay' }),
            clock,
          });
    this.metrics = new GatewayMetrics({
      server: this.view,
      relay: this.relay,
      store,
      timeline: this.timeline,
      synapse,
      serverName: () => this.serverName,
      clock,
    });
    const routes = gatewayRoutes({
      metricsText: () => this.metrics.text(),
      metricsContentType: this.metrics.contentType,
      health: () => this.health(),
      congestion: () => this.cuts.list(),
      connections: (query) => connectionsPage(this.view.connections(), this.timeline, query, this.clock(), this.synapse?.health() ?? null),
    });
    this.http =
      engine === null
        ? null
        : new HttpListener(this.server, {
            engine,
            fallback: (method, path, query) => answer(routes, method, path, query),
            allowOrigins: config.allowOrigins ?? [],
            authCookie: config.authCookie,
            status: { behind: (stream, token, now) => this.timeline.behind(stream, token, now), cuts: () => this.cuts.list(), clock },
            transcoder: this.encoder,
            ...(tls.http !== null ? { tls: tls.http } : {}),
            insecure: config.insecure,
            anonymousRead: config.anonymousRead,
          });
    this.monitor = config.monitor === null ? null : new MonitorListener(MONITOR_PATHS, (method, path, query) => answer(routes, method, path, query));
    this.wireEvents();
    this.suppressedTimer = setInterval(() => this.reportSuppressed(), SUPPRESSED_REPORT_MS);
    this.suppressedTimer.unref();
  }

  /** The settings in effect (a reload changes only the live ones). */
  get settings(): Readonly<GatewayConfig> {
    return this.config;
  }

  /**
   * Takes the live settings of `next` (options.ts marks them: tokens, queue
   * and connection limits, log level, shutdown timeout, TLS files) and says
   * which changed settings need a restart instead; those keep their running
   * values. The TLS listeners read their certificate files again.
   */
  reload(next: GatewayConfig): { applied: string[]; needsRestart: string[] } {
    const applied: string[] = [];
    const needsRestart: string[] = [];
    const merged: Record<string, unknown> = { ...this.config };
    const tlsRestart = new Set(tlsKeysNeedingRestart(this.config, next));
    for (const o of OPTIONS) {
      if (o.key === 'config' || JSON.stringify(next[o.key]) === JSON.stringify(this.config[o.key])) continue;
      if (o.live && !tlsRestart.has(o.key)) {
        merged[o.key] = next[o.key];
        applied.push(o.flag);
      } else {
        needsRestart.push(o.flag);
      }
    }
    const config = merged as unknown as GatewayConfig;
    this.server.reconfigure({
      credentials: [...config.writerToken, ...config.subscriberToken],
      maxQueueCommands: config.maxQueueCommands,
      maxQueueBytes: config.maxQueueBytes,
      maxStallMs: config.maxStallMs,
      maxConnections: config.maxConnections,
      maxConnectionsPerAddress: config.maxConnectionsPerAddress,
      maxPartialLineBytes: config.maxPartialLineBytes,
      lineTimeoutMs: config.lineTimeoutMs,
    });
    this.log.level = config.logLevel;
    this.config = config;
    reloadListenerTls(config, this.server, this.http, this.log);
    return { applied, needsRestart };
  }

  /** The name sent in SERVER. */
  get serverName(): string {
    return this.view.serverName;
  }

  /**
   * Binds the HTTP listener, then (in relay mode, once the upstream has been
   * followed to its current tokens, so no subscriber sees a relay that is
   * behind) the replication listener. Null when stop() came first.
   */
  async start(): Promise<GatewayAddresses | null> {
    if (this.http !== null && this.config.http !== null) {
      const { name, reason } = this.http.engine;
      this.log.info({ wsEngine: name, reason }, `HTTP and WebSocket engine: ${name}`);
      this.httpAddress = await this.http.listen(this.config.http.host, this.config.http.port);
    }
    if (this.monitor !== null && this.config.monitor !== null) {
      this.monitorAddress = await this.monitor.listen(this.config.monitor.host, this.config.monitor.port);
    }
    if (this.relay !== null) {
      this.relay.start();
      this.log.info({ upstream: this.relay.address }, 'waiting for the upstream before listening');
      const name = await Promise.race([this.relay.ready, this.stopRequested.then(() => null)]);
      if (name === null || this.stopping !== null) return null;
    }
    if (this.synapse !== null) {
      this.log.info({ redis: this.synapse.link.where }, 'following a Synapse deployment on its Redis');
      await this.synapse.start();
    }
    if (this.stopping !== null) return null;
    this.tcpAddress = await this.server.listen({ host: this.config.listen.host, port: this.config.listen.port });
    return { tcp: this.tcpAddress, http: this.httpAddress, monitor: this.monitorAddress };
  }

  health(): HealthReport {
    return healthReport(
      {
        server: this.view,
        relay: this.relay,
        store: this.store,
        listeners: () => ({
          tcp: this.tcpAddress && { host: this.tcpAddress.address, port: this.tcpAddress.port },
          http: this.httpAddress && { host: this.httpAddress.address, port: this.httpAddress.port },
          httpEnabled: this.http !== null,
        }),
        lastWriteAt: this.lastWriteAt,
        serverName: () => this.serverName,
        startedAt: this.startedAt,
        stopping: () => this.stopping !== null,
        synapse: this.synapse === null ? undefined : () => this.synapse!.health(),
      },
      this.clock(),
    );
  }

  /**
   * `ERROR server shutting down` to every connection, flush, close the
   * listeners and the upstream. Resolves true when all closed in time, false
   * when `timeoutMs` ran out first (the caller exits anyway).
   */
  stop(timeoutMs: number): Promise<boolean> {
    this.stopping ??= (async () => {
      this.requestStop();
      this.log.info({ connections: this.view.connectionCount }, 'shutting down');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
        timer.unref();
      });
      const closed = Promise.all([
        // The server waits for publishes still encoding; only then may the pool go.
        this.server.close().then(() => Promise.all([this.encoder.close(), this.store.close()])),
        this.relay?.close(),
        this.synapse?.stop(),
        this.http?.close(),
        this.monitor?.close(),
      ]).then(() => true);
      const clean = await Promise.race([closed, timedOut]);
      clearTimeout(timer);
      clearInterval(this.suppressedTimer);
      this.reportSuppressed();
      if (clean) this.log.info('stopped');
      else this.log.warn({ timeoutMs }, 'stopped before every connection had closed (shutdown timeout)');
      return clean;
    })();
    return this.stopping;
  }

  // ---------------------------------------------------------------- events

  private wireEvents(): void {
    const { server, metrics } = this;
    server.on('connection', (conn) => {
      metrics.connectionOpened(conn.transportKind);
      if (this.allow('connect', 'info')) {
        this.log.info({ conn: conn.id, address: conn.remoteAddress, transport: conn.transportKind }, 'connection opened');
      }
    });
    server.on('disconnect', (conn, reason, detail) => {
      metrics.disconnected(conn, reason);
      if (reason === 'slow_consumer') return; // logged with its details as a cut
      if (this.authFailedConns.has(conn)) return; // logged once per burst as a failed AUTH
      // Routine closes share one bucket; each kind of trouble has its own, so a crowd of
      // ordinary disconnects never hides a failed AUTH or a ping timeout.
      const routine = ROUTINE.has(reason);
      if (!this.allow(routine ? 'disconnect' : reason, routine ? 'info' : 'warn')) return;
      const fields = { ...describe(conn, this.clock()), reason, detail };
      if (reason === 'protocol_error') this.log.warn(fields, 'protocol error: connection closed');
      else if (routine) this.log.info(fields, 'connection closed');
      else this.log.warn(fields, 'connection closed');
    });
    server.on('slowConsumer', (conn, details) => {
      metrics.slowConsumer(details);
      const cut = this.cuts.record(conn, details, this.clock());
      if (this.allow('slow_consumer', 'warn')) {
        const { at: _at, connection, name, ...fields } = cut;
        this.log.warn({ conn: connection, peerName: name, ...fields }, 'slow consumer cut: ERROR Failed to keep up');
      }
    });
    // The relay hears subscribers' commands from the hub, as a writer does.
    server.on('command', (cmd, conn) => {
      if (this.log.isLevelEnabled('debug')) this.log.debug({ conn: conn.id, command: cmd.name }, 'client command');
    });
    server.on('authFailed', (conn, failure) => {
      this.authFailedConns.add(conn);
      // One line when a host's burst begins, one when it crosses the limit; the rest are counted only.
      const { host, failures, limit, windowMs, refusedForMs } = failure;
      if (refusedForMs > 0 || (failures !== 1 && failures !== limit) || !this.allow('auth_failed', 'warn')) return;
      const fields = { ...describe(conn, this.clock()), host, failures, windowMs };
      if (failures === limit) {
        this.log.warn({ ...fields, refusedForMs: windowMs }, `${failures} failed AUTHs from ${host}: every AUTH from it is refused until its window is over`);
      } else {
        this.log.warn(fields, `AUTH failed from ${host}: the token matches no configured credential`);
      }
    });
    server.on('remoteError', (conn, message) => {
      if (this.allow('remote_error', 'warn')) this.log.warn({ ...describe(conn, this.clock()), message }, 'client sent ERROR');
    });
    server.on('tokenAhead', (conn, stream, token, head) => {
      metrics.tokenAhead();
      if (this.allow('token_ahead', 'warn')) {
        this.log.warn({ ...describe(conn, this.clock()), stream, token, head }, 'REPLICATE token ahead of the stream: answered with POSITION at the head');
      }
    });
    server.on('tlsError', (message, address) => {
      if (this.allow('tls_error', 'warn')) this.log.warn({ address, err: message }, 'TLS handshake failed: connection closed');
    });
    server.on('written', (stream, rows, head) => {
      const now = this.clock();
      this.timeline.written(stream, rows, head, now);
      this.lastWriteAt.set(stream, now);
    });
  }

  /** A line not logged at this level is not counted against its bucket. */
  private allow(category: string, level: 'info' | 'warn'): boolean {
    return this.log.isLevelEnabled(level) && this.limiter.allow(category, this.clock());
  }

  private reportSuppressed(): void {
    const suppressed = this.limiter.takeSuppressed();
    if (Object.keys(suppressed).length > 0) this.log.warn({ suppressed }, 'log lines suppressed by the rate limit');
  }
}

/**
 * --synapse-redis: the follower, its history opened (a file log's pairs read
 * back), not yet connected. Loaded only here: ioredis takes a noticeable part
 * of a second to import, which a gateway without it need not pay.
 */
async function openSynapse(config: GatewayConfig, log: Logger): Promise<SynapseFollow | null> {
  if (config.synapseRedis === null || config.synapseServerName === null) return null;
  const { SynapseFollow } = await import('./synapse-follow.js');
  const redis = config.synapseRedis.password === null ? { ...config.synapseRedis, password: config.synapseRedisPassword } : config.synapseRedis;
  return SynapseFollow.open({
    redis,
    serverName: config.synapseServerName,
    userIp: config.synapseUserIp,
    replicationUrls: config.synapseReplicationUrls ?? {},
    replicationSecret: config.synapseReplicationSecret,
    log: config.log,
    retentionRows: config.retentionRows,
    retentionBytes: config.retentionBytes,
    retentionAgeMs: config.retentionAgeMs,
    fsync: config.fsync,
    logger: log,
  });
}

function describe(conn: ConnectionInfo, now: number): Record<string, unknown> {
  return {
    conn: conn.id,
    // `name` is the logger's own (pino): the peer's NAME has its own key.
    peerName: conn.name ?? null,
    address: conn.remoteAddress,
    transport: conn.transportKind,
    role: conn.role,
    seconds: Math.max(0, Math.round(now - conn.connectedAt) / 1000),
  };
}
