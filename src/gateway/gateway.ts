/**
 * The gateway process without its command line: the replication server,
 * the HTTP listener (/metrics, /healthz, /congestion), relay mode, logs of
 * what peers do (rate-limited), the last congestion cuts, and an orderly
 * stop. src/cli/serve.ts wraps it in flags, signals and a ready file.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { chooseEngine } from '../bindings/engine-choice.js';
import { HttpListener } from '../bindings/http-app.js';
import { EncoderPool } from '../workers/encoder-pool.js';
import { parseTokenSpec } from '../bindings/ws-access.js';
import { JUMP_STREAMS, type ConnectionInfo, type DisconnectReason } from '../core/hub-types.js';
import { ReplicationServer } from '../server.js';
import { CongestionLog } from './congestion-log.js';
import { healthReport, type HealthReport } from './health.js';
import { answer, gatewayRoutes } from './http-routes.js';
import { LogLimiter } from './log-limiter.js';
import { openLogStore, type LogStore } from './log-store.js';
import { GatewayMetrics } from './metrics.js';
import type { GatewayConfig } from './options.js';
import { Relay } from './relay.js';
import { StreamTimeline } from './stream-timeline.js';

export interface GatewayAddresses {
  tcp: AddressInfo;
  http: AddressInfo | null;
}

/** How often held-back log lines are reported. */
const SUPPRESSED_REPORT_MS = 10_000;

/** Disconnect reasons that are routine (info); the rest are worth a warning. */
const ROUTINE: ReadonlySet<DisconnectReason> = new Set<DisconnectReason>(['peer_closed', 'shutdown']);

export class Gateway {
  readonly server: ReplicationServer;
  readonly relay: Relay | null;
  readonly metrics: GatewayMetrics;
  readonly cuts = new CongestionLog();
  private readonly timeline = new StreamTimeline();
  private readonly lastWriteAt = new Map<string, number>();
  private readonly limiter = new LogLimiter();
  private readonly http: HttpListener | null;
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
    const store = await openLogStore(config.log, {
      streams: config.streams,
      retentionRows: config.retentionRows,
      retentionBytes: config.retentionBytes,
      retentionAgeMs: config.retentionAgeMs,
      fsync: config.fsync,
      logger: log,
      // A relay's first REPLICATE of each stream is from 0, so what it stores is
      // complete from 0 (until a refused catch-up restarts the log at NOW); a
      // writer's first row says nothing of the tokens before it.
      ...(config.upstream !== null ? { startToken: 0 } : {}),
    });
    try {
      return new Gateway(config, log, store, clock);
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  private constructor(
    private readonly config: GatewayConfig,
    private readonly log: Logger,
    private readonly store: LogStore,
    private readonly clock: () => number,
  ) {
    // Before anything starts: --ws-engine uws where it cannot run throws EngineUnavailableError.
    const engine = config.http === null ? null : chooseEngine(config.wsEngine);
    this.startedAt = clock();
    this.stopRequested = new Promise((resolve) => (this.requestStop = resolve));
    this.encoder = new EncoderPool(config.encodeThreads === null ? {} : { threads: config.encodeThreads });
    this.server = new ReplicationServer({
      encoder: this.encoder,
      serverName: config.serverName ?? config.upstreamName ?? 'localhost',
      streams: config.streams.map((name) => ({ name, tooOld: JUMP_STREAMS.includes(name) ? 'jump' : 'error' })),
      ...(config.writerToken !== null ? { writerToken: config.writerToken } : {}),
      // `T` or `T:events,typing` (a token limited to those streams).
      ...(config.subscriberToken !== null ? { credentials: [parseTokenSpec(config.subscriberToken)] } : {}),
      createLog: (stream) => store.createLog(stream),
      maxQueueCommands: config.maxQueueCommands,
      maxQueueBytes: config.maxQueueBytes,
      maxLineBytes: config.maxLineBytes,
      maxConnections: config.maxConnections,
      clock,
      onSent: (chunks, transportKind) => this.metrics.sent(chunks, transportKind),
    });
    this.relay =
      config.upstream === null
        ? null
        : new Relay(this.server, {
            upstream: config.upstream,
            upstreamName: config.upstreamName,
            upstreamToken: config.upstreamToken,
            queueCommands: config.upstreamQueueCommands,
            maxLineBytes: config.maxLineBytes,
            streams: config.streams,
            logger: log.child({ component: 'relay' }),
          });
    this.metrics = new GatewayMetrics({
      server: this.server,
      relay: this.relay,
      store,
      timeline: this.timeline,
      serverName: () => this.serverName,
      clock,
    });
    const routes = gatewayRoutes({
      metricsText: () => this.metrics.text(),
      metricsContentType: this.metrics.contentType,
      health: () => this.health(),
      congestion: () => this.cuts.list(),
    });
    this.http =
      engine === null
        ? null
        : new HttpListener(this.server, {
            engine,
            fallback: (method, path) => answer(routes, method, path),
            allowOrigins: config.allowOrigins ?? [],
            transcoder: this.encoder,
          });
    this.wireEvents();
    this.suppressedTimer = setInterval(() => this.reportSuppressed(), SUPPRESSED_REPORT_MS);
    this.suppressedTimer.unref();
  }

  /** The name sent in SERVER. */
  get serverName(): string {
    return this.server.hub.options.serverName;
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
    if (this.relay !== null) {
      this.relay.start();
      this.log.info({ upstream: this.relay.address }, 'waiting for the upstream before listening');
      const name = await Promise.race([this.relay.ready, this.stopRequested.then(() => null)]);
      if (name === null || this.stopping !== null) return null;
      if (this.config.serverName === null && this.config.upstreamName === null) this.server.setServerName(name);
    }
    if (this.stopping !== null) return null;
    this.tcpAddress = await this.server.listen({ host: this.config.listen.host, port: this.config.listen.port });
    return { tcp: this.tcpAddress, http: this.httpAddress };
  }

  health(): HealthReport {
    return healthReport(
      {
        server: this.server,
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
      this.log.info({ connections: this.server.hub.connectionCount }, 'shutting down');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
        timer.unref();
      });
      const closed = Promise.all([
        // The server waits for publishes still encoding; only then may the pool go.
        this.server.close().then(() => Promise.all([this.encoder.close(), this.store.close()])),
        this.relay?.close(),
        this.http?.close(),
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
    const { server, metrics, relay } = this;
    server.on('connection', (conn) => {
      metrics.connectionOpened(conn.transportKind);
      if (this.allow('connect')) {
        this.log.info({ conn: conn.id, address: conn.remoteAddress, transport: conn.transportKind }, 'connection opened');
      }
    });
    server.on('disconnect', (conn, reason, detail) => {
      metrics.disconnected(reason);
      if (reason === 'slow_consumer') return; // logged with its details as a cut
      const category = reason === 'protocol_error' ? 'protocol_error' : 'disconnect';
      if (!this.allow(category)) return;
      const fields = { ...describe(conn, this.clock()), reason, detail };
      if (reason === 'protocol_error') this.log.warn(fields, 'protocol error: connection closed');
      else if (ROUTINE.has(reason)) this.log.info(fields, 'connection closed');
      else this.log.warn(fields, 'connection closed');
    });
    server.on('slowConsumer', (conn, details) => {
      metrics.slowConsumer(details);
      const cut = this.cuts.record(conn, details, this.clock());
      if (this.allow('slow_consumer')) {
        const { at: _at, connection, ...fields } = cut;
        this.log.warn({ conn: connection, ...fields }, 'slow consumer cut: ERROR Failed to keep up');
      }
    });
    server.on('command', (cmd, conn) => {
      relay?.forward(cmd);
      if (this.log.isLevelEnabled('debug')) this.log.debug({ conn: conn.id, command: cmd.name }, 'client command');
    });
    server.on('presence', (change) => relay?.presence(change));
    server.on('remoteError', (conn, message) => {
      if (this.allow('remote_error')) this.log.warn({ ...describe(conn, this.clock()), message }, 'client sent ERROR');
    });
    server.on('tokenAhead', (conn, stream, token, head) => {
      metrics.tokenAhead();
      if (this.allow('token_ahead')) {
        this.log.warn({ ...describe(conn, this.clock()), stream, token, head }, 'REPLICATE token ahead of the stream: answered with POSITION at the head');
      }
    });
    server.on('written', (stream, rows, head) => {
      const now = this.clock();
      this.timeline.written(stream, rows, head, now);
      this.lastWriteAt.set(stream, now);
    });
  }

  private allow(category: string): boolean {
    return this.limiter.allow(category, this.clock());
  }

  private reportSuppressed(): void {
    const suppressed = this.limiter.takeSuppressed();
    if (Object.keys(suppressed).length > 0) this.log.warn({ suppressed }, 'log lines suppressed by the rate limit');
  }
}

function describe(conn: ConnectionInfo, now: number): Record<string, unknown> {
  return {
    conn: conn.id,
    name: conn.name ?? null,
    address: conn.remoteAddress,
    transport: conn.transportKind,
    role: conn.role,
    seconds: Math.max(0, Math.round(now - conn.connectedAt) / 1000),
  };
}
