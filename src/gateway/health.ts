/**
 * `/healthz`: healthy means the listeners are up and, in relay mode, the
 * upstream is connected. The report also tells how long ago each source
 * last gave the gateway something (writers' rows, the upstream's bytes), so
 * a source that stalled shows, not only a live process.
 */
import type { ServerView } from '../core/server-view.js';
import type { ReplicationRelay } from '../relay.js';
import { VERSION } from '../version.js';
import type { LogStore, LogStoreHealth } from './log-store.js';
import type { SynapseHealth } from './synapse-follow.js';

export interface HealthSources {
  server: ServerView;
  relay: ReplicationRelay | null;
  store: LogStore;
  /** Bound listeners (null until bound, or when off). */
  listeners: () => { tcp: { host: string; port: number } | null; http: { host: string; port: number } | null; httpEnabled: boolean };
  /** When each stream last stored rows or a POSITION (ms), from the server's `written` events. */
  lastWriteAt: ReadonlyMap<string, number>;
  serverName: () => string;
  startedAt: number;
  stopping: () => boolean;
  /** The followed Synapse deployment (--synapse-redis), when there is one. */
  synapse?: (() => SynapseHealth) | undefined;
}

export interface HealthReport {
  ok: boolean;
  status: 'ok' | 'starting' | 'upstream_down' | 'log_failing' | 'stopping';
  serverName: string;
  /** The gateway's package version. */
  version: string;
  uptimeSeconds: number;
  listeners: { tcp: { host: string; port: number } | null; http: { host: string; port: number } | null };
  connections: number;
  /** The --log store: a failing one (disk error, lost Redis link) makes the gateway unhealthy. */
  log: LogStoreHealth;
  streams: Record<string, { head: number; oldest: number; lastWriteAgeSeconds: number | null }>;
  /** Writer connections, with how long since each last sent anything (a stalled writer shows here, not just a live process). */
  writers: { connection: number; name: string | null; address: string; connectedSeconds: number; lastCommandAgeSeconds: number }[];
  upstream: {
    address: string;
    state: string;
    connected: boolean;
    serverName: string | null;
    stateSeconds: number;
    lastCommandAgeSeconds: number | null;
    lastDisconnectReason: string | null;
    queuedCommands: number;
    lagTokens: Record<string, number>;
  } | null;
  /** The Synapse link (--synapse-redis): connected, last message age, positions and gaps per (stream, instance); null without one. */
  synapse: SynapseHealth | null;
}

const age = (now: number, at: number | null | undefined): number | null =>
  at === null || at === undefined ? null : Math.max(0, Math.round(now - at) / 1000);

export function healthReport(src: HealthSources, now: number): HealthReport {
  const { server, relay } = src;
  const listeners = src.listeners();
  const streams: HealthReport['streams'] = {};
  for (const s of server.streams()) {
    const at = src.lastWriteAt.get(s.name);
    streams[s.name] = { head: s.log.head, oldest: s.log.oldest, lastWriteAgeSeconds: age(now, at) };
  }
  const writers: HealthReport['writers'] = [];
  let connections = 0;
  for (const c of server.connections()) {
    connections++;
    if (c.role !== 'writer') continue;
    writers.push({
      connection: c.id,
      name: c.name ?? null,
      address: c.remoteAddress,
      connectedSeconds: age(now, c.connectedAt) ?? 0,
      lastCommandAgeSeconds: age(now, c.lastReceivedAt) ?? 0,
    });
  }
  let upstream: HealthReport['upstream'] = null;
  if (relay !== null) {
    const lagTokens: Record<string, number> = {};
    for (const l of relay.lag()) if (l.tokens > 0) lagTokens[l.stream] = l.tokens;
    upstream = {
      address: relay.address,
      state: relay.state,
      connected: relay.connected,
      serverName: relay.upstreamServerName,
      stateSeconds: age(now, relay.stateSince) ?? 0,
      lastCommandAgeSeconds: age(now, relay.lastReceivedAt),
      lastDisconnectReason: relay.lastDisconnectReason,
      queuedCommands: relay.queuedCommands,
      lagTokens,
    };
  }
  const log = src.store.health();
  const synapse = src.synapse?.() ?? null;
  const listening = listeners.tcp !== null && (!listeners.httpEnabled || listeners.http !== null);
  const status: HealthReport['status'] = src.stopping()
    ? 'stopping'
    : !listening
      ? 'starting'
      : (relay !== null && !relay.connected) || (synapse !== null && !synapse.connected)
        ? 'upstream_down'
        : !log.ok
          ? 'log_failing'
          : 'ok';
  return {
    ok: status === 'ok',
    status,
    serverName: src.serverName(),
    version: VERSION,
    uptimeSeconds: age(now, src.startedAt) ?? 0,
    listeners: { tcp: listeners.tcp, http: listeners.http },
    connections,
    log,
    streams,
    writers,
    upstream,
    synapse,
  };
}
