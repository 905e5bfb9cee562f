/**
 * The gateway's Prometheus series (prom-client, own registry). Hot paths
 * only add to plain numbers here; prom-client objects are filled at scrape
 * time, in each metric's collect(). Every series is listed with its meaning
 * in docs/operations.md.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { subscriptionKey, type ConnectionInfo, type DisconnectReason, type SlowConsumerDetails } from '../core/hub-types.js';
import type { ServerView } from '../core/server-view.js';
import type { ReplicationRelay } from '../relay.js';
import type { LogStore } from './log-store.js';
import { METRIC_PREFIX as PREFIX, perStreamGauge, scrapedCounter } from './metric-series.js';
import { registerRelayMetrics } from './relay-metrics.js';
import { registerSynapseMetrics } from './synapse-metrics.js';
import type { SynapseFollow } from './synapse-follow.js';
import { subscriptionLags } from './connections-report.js';
import type { StreamTimeline } from './stream-timeline.js';
import { VERSION } from '../version.js';

/** Per-subscriber (and per-connection) series past this many are left out (the most lagging or queued are kept): bounded cardinality. */
export const MAX_SUBSCRIBER_SERIES = 1000;

export interface MetricsSources {
  server: ServerView;
  relay: ReplicationRelay | null;
  /** The --log store: its health (links to Redis) and counters (file log). */
  store: LogStore;
  timeline: StreamTimeline;
  /** The followed Synapse deployment (--synapse-redis), when there is one. */
  synapse?: SynapseFollow | null;
  serverName: () => string;
  clock?: () => number;
}

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly clock: () => number;
  /** Bytes received and sent by connections already closed, by transport; open ones are read at scrape time. */
  private readonly closedBytesIn = new Map<string, number>();
  private readonly closedBytesOut = new Map<string, number>();
  private readonly closedCounted = new WeakSet<ConnectionInfo>();
  private readonly connectionsOpened: Counter<'transport'>;
  private readonly disconnects: Counter<'reason'>;
  private readonly slowConsumerCuts: Counter<'limit'>;
  private readonly tokensAhead: Counter;

  constructor(private readonly sources: MetricsSources) {
    this.clock = sources.clock ?? Date.now;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const self = this;
    const { server } = sources;

    new Gauge({
      name: `${PREFIX}info`,
      help: 'Always 1; labels say which gateway this is',
      labelNames: ['server_name', 'mode', 'version'],
      registers,
      collect() {
        this.reset();
        this.set({ server_name: sources.serverName(), mode: sources.relay === null ? 'standalone' : 'relay', version: VERSION }, 1);
      },
    });

    new Gauge({
      name: `${PREFIX}connections`,
      help: 'Open connections by transport and role',
      labelNames: ['transport', 'role'],
      registers,
      collect() {
        this.reset();
        const counts = new Map<string, { transport: string; role: string; n: number }>();
        for (const c of server.connections()) {
          const key = `${c.transportKind}\0${c.role}`;
          const e = counts.get(key);
          if (e === undefined) counts.set(key, { transport: c.transportKind, role: c.role, n: 1 });
          else e.n++;
        }
        for (const { transport, role, n } of counts.values()) this.set({ transport, role }, n);
      },
    });
    this.connectionsOpened = new Counter({
      name: `${PREFIX}connections_opened_total`,
      help: 'Connections accepted, by transport',
      labelNames: ['transport'],
      registers,
    });
    this.disconnects = new Counter({
      name: `${PREFIX}disconnects_total`,
      help: 'Connections closed, by reason (peer_closed, slow_consumer, ping_timeout, protocol_error, shutdown, ...)',
      labelNames: ['reason'],
      registers,
    });
    this.slowConsumerCuts = new Counter({
      name: `${PREFIX}slow_consumer_cuts_total`,
      help: "Subscribers cut with 'ERROR Failed to keep up', by the limit crossed (commands, bytes, stall)",
      labelNames: ['limit'],
      registers,
    });
    this.tokensAhead = new Counter({
      name: `${PREFIX}tokens_ahead_total`,
      help: 'REPLICATE tokens ahead of the stream head, answered with POSITION at the head',
      registers,
    });
    new Counter({
      name: `${PREFIX}commands_in_total`,
      help: 'Commands received from connections, by name',
      labelNames: ['command'],
      registers,
      collect() {
        // The hub counts per line in plain numbers; the metric reads them.
        this.reset();
        for (const [command, n] of Object.entries(server.commandsIn)) if (n > 0) this.inc({ command }, n);
      },
    });
    new Counter({
      name: `${PREFIX}commands_out_total`,
      help: 'Commands written to connections, by name',
      labelNames: ['command'],
      registers,
      collect() {
        this.reset();
        for (const [command, n] of Object.entries(server.commandsOut)) if (n > 0) this.inc({ command }, n);
      },
    });
    new Counter({
      name: `${PREFIX}sent_bytes_total`,
      help: 'Bytes written to connections, by transport',
      labelNames: ['transport'],
      registers,
      collect() {
        this.reset();
        for (const [transport, n] of self.bytesByTransport(self.closedBytesOut, (c) => c.bytesOut)) this.inc({ transport }, n);
      },
    });
    new Counter({
      name: `${PREFIX}received_bytes_total`,
      help: 'Bytes of command lines received from connections, by transport',
      labelNames: ['transport'],
      registers,
      collect() {
        this.reset();
        for (const [transport, n] of self.bytesByTransport(self.closedBytesIn, (c) => c.bytesIn)) this.inc({ transport }, n);
      },
    });

    const queueGauge = (name: string, help: string, pick: (c: { queuedCommands: number; queuedBytes: number }) => number, max: boolean): void => {
      new Gauge({
        name: `${PREFIX}${name}`,
        help,
        registers,
        collect() {
          let v = 0;
          for (const c of server.connections()) v = max ? Math.max(v, pick(c)) : v + pick(c);
          this.set(v);
        },
      });
    };
    queueGauge('outbound_queue_commands', 'Commands queued for all connections now', (c) => c.queuedCommands, false);
    queueGauge('outbound_queue_commands_max', 'Commands queued for the most backed-up connection now', (c) => c.queuedCommands, true);
    queueGauge('outbound_queue_bytes', 'Bytes queued for all connections now', (c) => c.queuedBytes, false);
    queueGauge('outbound_queue_bytes_max', 'Bytes queued for the most backed-up connection now', (c) => c.queuedBytes, true);

    // Per-connection queues: the most backed-up, computed once per scrape, shared by both series.
    let queueScrape: { at: number; rows: ConnectionInfo[] } | null = null;
    const queues = (): ConnectionInfo[] => {
      const now = self.clock();
      if (queueScrape === null || queueScrape.at !== now) queueScrape = { at: now, rows: mostQueued(server.connections()) };
      return queueScrape.rows;
    };
    const connectionGauge = (name: string, help: string, pick: (c: ConnectionInfo) => number): void => {
      new Gauge({
        name: `${PREFIX}${name}`,
        help,
        labelNames: ['connection', 'name', 'transport'],
        registers,
        collect() {
          this.reset();
          for (const c of queues()) this.set({ connection: String(c.id), name: c.name ?? '', transport: c.transportKind }, pick(c));
        },
      });
    };
    connectionGauge('connection_queued_commands', `Commands queued for each connection now (the ${MAX_SUBSCRIBER_SERIES} most backed-up)`, (c) => c.queuedCommands);
    connectionGauge('connection_queued_bytes', `Bytes queued for each connection now (the ${MAX_SUBSCRIBER_SERIES} most backed-up)`, (c) => c.queuedBytes);

    const perStream = (name: string, help: string, value: (s: ReturnType<typeof streamsOf>[number]) => number): void =>
      perStreamGauge(this.registry, name, help, () => streamsOf(server).map((s) => [s.name, value(s)] as const));
    perStream('stream_head_token', 'Current token of each stream', (s) => s.head);
    perStream('stream_oldest_token', 'Oldest token a catch-up can start from', (s) => s.oldest);
    perStream('stream_retained_rows', 'Rows held in each stream\'s log', (s) => s.retainedRows);
    perStream('stream_retained_bytes', 'Bytes held in each stream\'s log', (s) => s.retainedBytes);
    new Counter({
      name: `${PREFIX}stream_rows_written_total`,
      help: 'Rows stored in each stream since start',
      labelNames: ['stream'],
      registers,
      collect() {
        this.reset();
        for (const s of streamsOf(server)) this.inc({ stream: s.name }, s.rowsWritten);
      },
    });
    new Gauge({
      name: `${PREFIX}catchups_in_progress`,
      help: 'Subscriptions still catching up from the log, by stream',
      labelNames: ['stream'],
      registers,
      collect() {
        this.reset();
        for (const [stream, v] of subscriptionsPerStream(server, (sub) => sub.catchingUp)) this.set({ stream }, v);
      },
    });
    new Gauge({
      name: `${PREFIX}stream_subscribers`,
      help: 'Subscriptions to each stream (catching up or live)',
      labelNames: ['stream'],
      registers,
      collect() {
        this.reset();
        for (const [stream, v] of subscriptionsPerStream(server, () => true)) this.set({ stream }, v);
      },
    });
    new Gauge({
      name: `${PREFIX}syncing_users`,
      help: 'Users syncing on any connection (USER_SYNC start without end)',
      registers,
      collect() {
        this.set(server.syncingUsers().length);
      },
    });

    // Per-subscriber lag: computed once per scrape, shared by both series.
    let lagScrape: { at: number; rows: SubscriberLag[] } | null = null;
    const lags = (): SubscriberLag[] => {
      const now = self.clock();
      if (lagScrape === null || lagScrape.at !== now) lagScrape = { at: now, rows: self.subscriberLags(now) };
      return lagScrape.rows;
    };
    const lagLabels = ['connection', 'name', 'stream'] as const;
    new Gauge({
      name: `${PREFIX}subscriber_lag_rows`,
      help: `Rows each subscription is behind its stream's head (the ${MAX_SUBSCRIBER_SERIES} most lagging)`,
      labelNames: lagLabels,
      registers,
      collect() {
        this.reset();
        for (const l of lags()) this.set(l.labels, l.rows);
      },
    });
    new Gauge({
      name: `${PREFIX}subscriber_lag_seconds`,
      help: `How long the oldest row a subscription lacks has been stored (the ${MAX_SUBSCRIBER_SERIES} most lagging)`,
      labelNames: lagLabels,
      registers,
      collect() {
        this.reset();
        for (const l of lags()) this.set(l.labels, l.seconds);
      },
    });

    // The reasons and limits an operator alerts on exist from the start, at 0.
    for (const reason of ['peer_closed', 'slow_consumer', 'ping_timeout', 'protocol_error', 'shutdown'] as const) {
      this.disconnects.inc({ reason }, 0);
    }
    for (const limit of ['commands', 'bytes', 'stall'] as const) this.slowConsumerCuts.inc({ limit }, 0);

    if (sources.relay !== null) registerRelayMetrics(sources.relay, this.registry, this.clock);
    if (sources.synapse) registerSynapseMetrics(sources.synapse, this.registry);
    registerStoreMetrics(sources.store, this.registry);
  }

  connectionOpened(transport: string): void {
    this.connectionsOpened.inc({ transport });
  }

  /** Bytes by transport: those of closed connections (`closed`) plus `pick` of each open one. */
  private bytesByTransport(closed: ReadonlyMap<string, number>, pick: (c: ConnectionInfo) => number): Map<string, number> {
    const bytes = new Map(closed);
    for (const c of this.sources.server.connections()) {
      if (!this.closedCounted.has(c)) bytes.set(c.transportKind, (bytes.get(c.transportKind) ?? 0) + pick(c));
    }
    return bytes;
  }

  /** A connection closed (the server's disconnect event): it sends and receives nothing more, so its byte counts are final. */
  disconnected(conn: ConnectionInfo, reason: DisconnectReason): void {
    this.disconnects.inc({ reason });
    this.closedBytesIn.set(conn.transportKind, (this.closedBytesIn.get(conn.transportKind) ?? 0) + conn.bytesIn);
    this.closedBytesOut.set(conn.transportKind, (this.closedBytesOut.get(conn.transportKind) ?? 0) + conn.bytesOut);
    this.closedCounted.add(conn);
  }

  slowConsumer(details: SlowConsumerDetails): void {
    this.slowConsumerCuts.inc({ limit: details.limit });
  }

  tokenAhead(): void {
    this.tokensAhead.inc();
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  // ---------------------------------------------------------------- internals

  private subscriberLags(now: number): SubscriberLag[] {
    const { server, timeline } = this.sources;
    const out: SubscriberLag[] = [];
    for (const c of server.connections()) {
      for (const sub of subscriptionLags(c, timeline, now)) {
        out.push({ labels: { connection: String(c.id), name: c.name ?? '', stream: subscriptionKey(sub) }, rows: sub.lagRows, seconds: sub.lagSeconds });
      }
    }
    if (out.length > MAX_SUBSCRIBER_SERIES) {
      out.sort((a, b) => b.rows - a.rows || b.seconds - a.seconds);
      out.length = MAX_SUBSCRIBER_SERIES;
    }
    return out;
  }
}

/** The connections with the most bytes queued (then commands), at most MAX_SUBSCRIBER_SERIES. */
function mostQueued(connections: Iterable<ConnectionInfo>): ConnectionInfo[] {
  const all = [...connections];
  if (all.length > MAX_SUBSCRIBER_SERIES) {
    all.sort((a, b) => b.queuedBytes - a.queuedBytes || b.queuedCommands - a.queuedCommands);
    all.length = MAX_SUBSCRIBER_SERIES;
  }
  return all;
}

interface SubscriberLag {
  labels: { connection: string; name: string; stream: string };
  rows: number;
  seconds: number;
}

function streamsOf(server: ServerView): { name: string; head: number; oldest: number; retainedRows: number; retainedBytes: number; rowsWritten: number }[] {
  return [...server.streams()].map((s) => ({
    name: s.name,
    head: s.log.head,
    oldest: s.log.oldest,
    retainedRows: s.log.retainedRows,
    retainedBytes: s.log.retainedBytes,
    rowsWritten: s.rowsWritten,
  }));
}

/** The --log store's series, read from its counters at scrape time. */
function registerStoreMetrics(store: LogStore, registry: Registry): void {
  const registers = [registry];
  const counter = (name: string, help: string, read: (s: ReturnType<LogStore['stats']>) => number): void =>
    scrapedCounter(registry, name, help, () => read(store.stats()));
  new Gauge({
    name: `${PREFIX}log_store_up`,
    help: 'Whether the --log store works (1) or not (0), by kind',
    labelNames: ['kind'],
    registers,
    collect() {
      this.reset();
      const health = store.health();
      this.set({ kind: health.kind }, health.ok ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}log_store_link_up`,
    help: 'Whether each connection of the --log store (Redis: commands, reader) is up (1) or not (0)',
    labelNames: ['link'],
    registers,
    collect() {
      this.reset();
      for (const [link, up] of Object.entries(store.health().links)) this.set({ link }, up ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}log_generation_info`,
    help: 'Always 1 for a durable store; the label is its generation id (a new id: its streams started over)',
    labelNames: ['generation'],
    registers,
    collect() {
      this.reset();
      const g = store.health().generation;
      if (g !== undefined) this.set({ generation: g.id }, 1);
    },
  });
  counter('log_generations_created_total', 'Generations this process created (the log directory was new, wiped or replaced)', (s) => s.generationsCreated);
  counter('log_append_errors_total', 'Appends the store could not write (ENOSPC, EIO): the writer got ERROR', (s) => s.appendErrors);
  counter('log_fsyncs_total', 'fsyncs of file log segments', (s) => s.fsyncs);
  counter('log_fsync_seconds_total', 'Time spent in those fsyncs', (s) => s.fsyncSeconds);
  new Gauge({
    name: `${PREFIX}log_fsync_max_seconds`,
    help: 'The longest fsync since start',
    registers,
    collect() {
      this.set(store.stats().fsyncMaxSeconds);
    },
  });
  counter('log_torn_tails_cut_total', 'Torn last lines (a crash mid-write) cut when the file log opened', (s) => s.tornTailsCut);
  counter('log_corrupt_segments_total', 'Segments found corrupt when the file log opened (catch-up does not pass them)', (s) => s.corruptSegments);
  counter('log_segments_deleted_total', 'Segment files deleted by retention', (s) => s.segmentsDeleted);
}

/** Subscriptions that `counts` picks, per declared stream (0 for a stream with none). */
function subscriptionsPerStream(server: ServerView, counts: (sub: { catchingUp: boolean }) => boolean): Map<string, number> {
  const n = new Map<string, number>();
  for (const s of streamsOf(server)) n.set(s.name, 0);
  for (const c of server.connections()) {
    for (const sub of c.subscriptions()) {
      if (!counts(sub)) continue;
      const key = subscriptionKey(sub);
      n.set(key, (n.get(key) ?? 0) + 1);
    }
  }
  return n;
}
