/**
 * `GET /connections[?offset=&limit=&sort=]`: every open connection as JSON
 * (the shape of nats-server's /connz), a page at a time. Lag comes from the
 * stream timeline, as the lag metrics do (subscriptionLags is the one
 * place both read it). The Synapse link is SynapseFollow.health(), as in
 * /healthz.
 */
import type { ConnectionInfo, ConnectionRole } from '../core/hub-types.js';
import type { Behind, StreamTimeline } from './stream-timeline.js';
import type { SynapseHealth } from './synapse-follow.js';

export const CONNECTIONS_DEFAULT_LIMIT = 100;
export const CONNECTIONS_MAX_LIMIT = 1000;
export const CONNECTIONS_SORTS = ['id', 'lag', 'queued'] as const;
export type ConnectionsSort = (typeof CONNECTIONS_SORTS)[number];

export interface ConnectionsQuery {
  offset: number;
  limit: number;
  sort: ConnectionsSort;
}

export interface SubscriptionLag {
  stream: string;
  /** The writer instance of a followed Synapse pair; null for a declared stream. */
  instance: string | null;
  /** The last token sent on the stream. */
  token: number;
  catchingUp: boolean;
  lagRows: number;
  lagSeconds: number;
}

export interface ConnectionReport {
  id: number;
  /** Its NAME, null before one. */
  name: string | null;
  address: string;
  transport: string;
  role: ConnectionRole;
  /** ISO 8601. */
  connectedSince: string;
  connectedSeconds: number;
  streams: SubscriptionLag[];
  /** The largest of its streams' lags (0 without streams). */
  lagRows: number;
  lagSeconds: number;
  queuedCommands: number;
  queuedBytes: number;
  bytesIn: number;
  bytesOut: number;
}

export interface ConnectionsPage extends ConnectionsQuery {
  /** Open connections in all, not only on this page. */
  total: number;
  connections: ConnectionReport[];
  /** The Synapse link (--synapse-redis), the same report /healthz gives; null without one. */
  synapse: SynapseHealth | null;
}

/** A bad query string: the route answers 400 with the message. */
export class ConnectionsQueryError extends Error {
  override readonly name = 'ConnectionsQueryError';
  readonly code = 'BAD_CONNECTIONS_QUERY';
}

const UNTRACKED: Behind = { rows: 0, seconds: 0 };

/** How far each subscription of `conn` is behind its stream's head. Writers follow nothing: none. */
export function subscriptionLags(conn: ConnectionInfo, timeline: StreamTimeline, now: number): SubscriptionLag[] {
  if (conn.role === 'writer') return [];
  return conn.subscriptions().map((sub) => {
    // The timeline follows declared streams; a followed pair's lag is not tracked.
    const behind = sub.instance === null ? timeline.behind(sub.stream, sub.lastToken, now) : UNTRACKED;
    return { stream: sub.stream, instance: sub.instance, token: sub.lastToken, catchingUp: sub.catchingUp, lagRows: behind.rows, lagSeconds: behind.seconds };
  });
}

/** Parses `offset=&limit=&sort=` (the text after `?`, '' for none); anything else is a ConnectionsQueryError. */
export function parseConnectionsQuery(query: string): ConnectionsQuery {
  const out: ConnectionsQuery = { offset: 0, limit: CONNECTIONS_DEFAULT_LIMIT, sort: 'id' };
  for (const [key, value] of new URLSearchParams(query)) {
    switch (key) {
      case 'offset':
        out.offset = wholeNumber(key, value, 0, Number.MAX_SAFE_INTEGER);
        break;
      case 'limit':
        out.limit = wholeNumber(key, value, 1, CONNECTIONS_MAX_LIMIT);
        break;
      case 'sort':
        if (!(CONNECTIONS_SORTS as readonly string[]).includes(value)) {
          throw new ConnectionsQueryError(`sort=${value} is not one of ${CONNECTIONS_SORTS.join(', ')}`);
        }
        out.sort = value as ConnectionsSort;
        break;
      default:
        throw new ConnectionsQueryError(`unknown parameter ${key}: /connections takes offset, limit and sort`);
    }
  }
  return out;
}

function wholeNumber(key: string, value: string, min: number, max: number): number {
  const n = /^\d{1,16}$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) throw new ConnectionsQueryError(`${key}=${value} is not a whole number from ${min} to ${max}`);
  return n;
}

/** One page of `connections`, sorted by `query.sort` (lag and queued: largest first; ties by id). */
export function connectionsPage(
  connections: Iterable<ConnectionInfo>,
  timeline: StreamTimeline,
  query: ConnectionsQuery,
  now: number,
  synapse: SynapseHealth | null = null,
): ConnectionsPage {
  const all: ConnectionReport[] = [];
  for (const c of connections) {
    const streams = subscriptionLags(c, timeline, now);
    let lagRows = 0;
    let lagSeconds = 0;
    for (const s of streams) {
      lagRows = Math.max(lagRows, s.lagRows);
      lagSeconds = Math.max(lagSeconds, s.lagSeconds);
    }
    all.push({
      id: c.id,
      name: c.name ?? null,
      address: c.remoteAddress,
      transport: c.transportKind,
      role: c.role,
      connectedSince: new Date(c.connectedAt).toISOString(),
      connectedSeconds: Math.max(0, Math.round(now - c.connectedAt) / 1000),
      streams,
      lagRows,
      lagSeconds,
      queuedCommands: c.queuedCommands,
      queuedBytes: c.queuedBytes,
      bytesIn: c.bytesIn,
      bytesOut: c.bytesOut,
    });
  }
  all.sort(ORDER[query.sort]);
  return { ...query, total: all.length, connections: all.slice(query.offset, query.offset + query.limit), synapse };
}

type Order = (a: ConnectionReport, b: ConnectionReport) => number;
const byId: Order = (a, b) => a.id - b.id;
const ORDER: Record<ConnectionsSort, Order> = {
  id: byId,
  lag: (a, b) => b.lagRows - a.lagRows || b.lagSeconds - a.lagSeconds || byId(a, b),
  queued: (a, b) => b.queuedBytes - a.queuedBytes || b.queuedCommands - a.queuedCommands || byId(a, b),
};
