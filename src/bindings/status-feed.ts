/**
 * The read-only status feed behind the status page: a JSON snapshot of the
 * server (its ServerView) pushed to every `replication.status` WebSocket once per interval (not
 * polled). One snapshot is built per interval and per read scope, and the
 * same string goes to every socket of that scope.
 *
 *     < AUTH <token>                 only when the hub requires AUTH; PING is ignored
 *     > {"type":"hello","server":"hs","authRequired":true}
 *     > {"type":"status","streams":[{"name":"events","head":54,"rowsPerSec":120,...}],
 *        "connections":{...},"disconnects":[...]}
 *     > {"type":"error","message":"AUTH failed: ..."}     then the close
 *
 * A credential with a stream list sees only those streams and the
 * connections reading them.
 */
import { authFailed } from '../core/access-refusal.js';
import type { ServerView } from '../core/server-view.js';
import type { ConnectionInfo, DisconnectReason, SubscriptionState } from '../core/hub-types.js';
import { VERSION } from '../version.js';

export const DEFAULT_STATUS_INTERVAL_MS = 1000;
/** rows/s is averaged over this long, so a burst does not read as 0 a second later. */
export const RATE_WINDOW_MS = 10_000;
/** Samples of rows/s kept per stream for the page's sparkline (one per interval). */
export const RATE_HISTORY = 60;
const DEFAULT_MAX_LISTED_CONNECTIONS = 200;
const DEFAULT_MAX_DISCONNECTS = 50;

/** Where one status socket's messages go (the WebSocket bridge implements it). */
export interface StatusSink {
  /** False when the socket is still busy with earlier snapshots: this one is skipped. */
  send(text: string): boolean;
  end(): void;
}

export interface StatusFeedOptions {
  intervalMs?: number;
  /** Connections listed per snapshot, the most lagging first (the total is always given). */
  maxListedConnections?: number;
  /** Recent disconnects kept. */
  maxDisconnects?: number;
  clock?: () => number;
  /** How far a token is behind its stream's head (the gateway's stream timeline); without it, lagSeconds is null. */
  behind?: (stream: string, token: number, now: number) => { rows: number; seconds: number };
  /** The recent congestion cuts, oldest first (the gateway's congestion log); without it, none are shown. */
  cuts?: () => readonly CutStatus[];
}

/** A congestion cut as the gateway's congestion log keeps it (src/gateway/congestion-log.ts). */
export interface CutStatus {
  at: number;
  connection: number;
  name: string | null;
  transport: string;
  limit: string;
  stream: string | null;
  queuedCommands: number;
  queuedBytes: number;
  lastTokenSent: number | null;
}

export interface StreamStatus {
  name: string;
  head: number;
  oldest: number;
  /** Averaged over the last RATE_WINDOW_MS. */
  rowsPerSec: number;
  /** rows/s per interval, oldest first (at most RATE_HISTORY). */
  rateHistory: number[];
  rowsWritten: number;
  retainedRows: number;
  retainedBytes: number;
  liveSubscribers: number;
}

export interface ConnectionStatus {
  id: number;
  name: string | null;
  transport: string;
  remote: string;
  role: string;
  connectedAt: number;
  streams: (SubscriptionState & { lag: number; lagSeconds: number | null })[];
  queuedCommands: number;
  queuedBytes: number;
  /** The largest head - lastToken over its streams. */
  lag: number;
  /** The largest lag in seconds over its streams (null without the `behind` option). */
  lagSeconds: number | null;
}

export interface DisconnectStatus {
  at: number;
  id: number;
  name: string | null;
  transport: string;
  remote: string;
  role: string;
  reason: DisconnectReason;
  detail: string;
}

export interface StatusSnapshot {
  type: 'status';
  at: number;
  server: string;
  version: string;
  uptimeSeconds: number;
  /** The queue limits a live subscriber is cut at: queue fill is queued / limit. */
  limits: { maxQueueCommands: number; maxQueueBytes: number };
  streams: StreamStatus[];
  connections: { total: number; listed: ConnectionStatus[] };
  disconnects: DisconnectStatus[];
  /** The recent congestion cuts, newest first. */
  cuts: CutStatus[];
}

export class StatusFeed {
  readonly intervalMs: number;
  private readonly maxListed: number;
  private readonly maxDisconnects: number;
  private readonly clock: () => number;
  private readonly startedAt: number;
  private readonly behind: NonNullable<StatusFeedOptions['behind']> | null;
  private readonly cuts: () => readonly CutStatus[];
  private readonly sessions = new Set<StatusSession>();
  private readonly disconnects: DisconnectStatus[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** (time, rowsWritten per stream) of the samples within RATE_WINDOW_MS, oldest first, for rows/s. */
  private samples: { at: number; rows: Map<string, number> }[] = [];
  private rates = new Map<string, number>();
  private rateHistory = new Map<string, number[]>();

  constructor(
    readonly server: ServerView,
    options: StatusFeedOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? DEFAULT_STATUS_INTERVAL_MS;
    this.maxListed = options.maxListedConnections ?? DEFAULT_MAX_LISTED_CONNECTIONS;
    this.maxDisconnects = options.maxDisconnects ?? DEFAULT_MAX_DISCONNECTS;
    this.clock = options.clock ?? Date.now;
    this.startedAt = this.clock();
    this.behind = options.behind ?? null;
    this.cuts = options.cuts ?? (() => []);
    this.sample(this.startedAt);
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** A new status socket; `cookieSecret`: the token its upgrade's auth cookie carried, taken as its AUTH. */
  accept(sink: StatusSink, cookieSecret?: string): StatusSession {
    const session = new StatusSession(this, sink);
    this.sessions.add(session);
    const required = this.server.limits.requireAuth;
    const byCookie = required && cookieSecret !== undefined ? this.server.limits.credentials.lookup(cookieSecret) : null;
    // Authenticated by its cookie: the page is told no AUTH is needed.
    const authRequired = required && byCookie === null;
    session.sendJson({ type: 'hello', server: this.server.serverName, authRequired, intervalMs: this.intervalMs });
    if (!required) session.authorize(null);
    else if (byCookie !== null) session.authorize(byCookie.readable);
    else if (cookieSecret !== undefined) session.refuse(AUTH_FAILED_TEXT);
    this.timer ??= setInterval(() => this.publish(), this.intervalMs);
    this.timer.unref();
    return session;
  }

  /** For the hub's `closed` event (ReplicationServer's 'disconnect'). */
  recordDisconnect(conn: ConnectionInfo, reason: DisconnectReason, detail: string): void {
    this.disconnects.unshift({
      at: this.clock(),
      id: conn.id,
      name: conn.name ?? null,
      transport: conn.transportKind,
      remote: conn.remoteAddress,
      role: conn.role,
      reason,
      detail,
    });
    if (this.disconnects.length > this.maxDisconnects) this.disconnects.length = this.maxDisconnects;
  }

  /** The server now, seen through a read scope (null: everything). */
  snapshot(scope: ReadonlySet<string> | null = null): StatusSnapshot {
    const server = this.server;
    const streams: StreamStatus[] = [];
    const heads = new Map<string, number>();
    for (const s of server.streams()) {
      const head = s.log.head;
      heads.set(s.name, head);
      if (scope !== null && !scope.has(s.name)) continue;
      streams.push({
        name: s.name,
        head,
        oldest: s.log.oldest,
        rowsPerSec: this.rates.get(s.name) ?? 0,
        rateHistory: this.rateHistory.get(s.name) ?? [],
        rowsWritten: s.rowsWritten,
        retainedRows: s.log.retainedRows,
        retainedBytes: s.log.retainedBytes,
        liveSubscribers: s.liveSubscribers,
      });
    }
    const all: ConnectionStatus[] = [];
    const now = this.clock();
    const behind = this.behind;
    for (const c of server.connections()) {
      // A connection being closed (a cut one waiting for its socket) is no longer live.
      if (!c.open) continue;
      const subs = c
        .subscriptions()
        .filter((s) => scope === null || scope.has(s.stream))
        .map((s) => ({
          ...s,
          // Heads and the timeline are the declared streams'; a followed pair's lag is not tracked.
          lag: s.instance === null ? Math.max(0, (heads.get(s.stream) ?? s.lastToken) - s.lastToken) : 0,
          lagSeconds: behind === null || s.instance !== null ? null : behind(s.stream, s.lastToken, now).seconds,
        }));
      if (scope !== null && subs.length === 0) continue;
      all.push({
        id: c.id,
        name: c.name ?? null,
        transport: c.transportKind,
        remote: scope === null ? c.remoteAddress : '',
        role: c.role,
        connectedAt: c.connectedAt,
        streams: subs,
        queuedCommands: c.queuedCommands,
        queuedBytes: c.queuedBytes,
        lag: subs.reduce((m, s) => Math.max(m, s.lag), 0),
        lagSeconds: behind === null ? null : subs.reduce((m, s) => Math.max(m, s.lagSeconds ?? 0), 0),
      });
    }
    all.sort((a, b) => b.lag - a.lag || b.queuedBytes - a.queuedBytes || a.id - b.id);
    return {
      type: 'status',
      at: now,
      server: server.serverName,
      version: VERSION,
      uptimeSeconds: Math.max(0, Math.round((now - this.startedAt) / 1000)),
      limits: { maxQueueCommands: server.limits.maxQueueCommands, maxQueueBytes: server.limits.maxQueueBytes },
      streams,
      connections: { total: all.length, listed: all.length > this.maxListed ? all.slice(0, this.maxListed) : all },
      disconnects: scope === null ? this.disconnects : [],
      cuts: scope === null ? [...this.cuts()].reverse().slice(0, this.maxDisconnects) : [],
    };
  }

  /** Stops the timer and closes every status socket. */
  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const s of [...this.sessions]) s.end();
  }

  /** One round: rates, then one snapshot per scope to every authorized socket. */
  publish(): void {
    this.sample(this.clock());
    const texts = new Map<string, string>();
    for (const session of this.sessions) {
      if (!session.authorized) continue;
      const key = session.scopeKey;
      let text = texts.get(key);
      if (text === undefined) texts.set(key, (text = JSON.stringify(this.snapshot(session.scope))));
      session.sendText(text);
    }
  }

  /** Sends the current snapshot to one socket now (it just authorized). */
  sendNow(session: StatusSession): void {
    session.sendText(JSON.stringify(this.snapshot(session.scope)));
  }

  forget(session: StatusSession): void {
    this.sessions.delete(session);
    if (this.sessions.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** Once per interval: rows/s over the window (from its oldest sample) and over the last interval (the sparkline). */
  private sample(now: number): void {
    const rows = new Map<string, number>();
    for (const s of this.server.streams()) rows.set(s.name, s.rowsWritten);
    const last = this.samples.at(-1);
    if (last !== undefined && now > last.at) {
      // Keep one sample at or before the window's start, so the window is covered whole.
      while (this.samples.length > 1 && now - this.samples[1]!.at >= RATE_WINDOW_MS) this.samples.shift();
      const first = this.samples[0]!;
      for (const [name, n] of rows) {
        this.rates.set(name, rateOf(n - (first.rows.get(name) ?? n), now - first.at));
        let history = this.rateHistory.get(name);
        if (history === undefined) this.rateHistory.set(name, (history = []));
        history.push(rateOf(n - (last.rows.get(name) ?? n), now - last.at));
        if (history.length > RATE_HISTORY) history.shift();
      }
    }
    this.samples.push({ at: now, rows });
  }
}

function rateOf(rows: number, ms: number): number {
  return ms > 0 ? Math.round((rows * 1000) / ms) : 0;
}

/** As the replication sockets say it (src/core/access-refusal.ts). */
const AUTH_FAILED_TEXT = authFailed().message;

/** One status socket: waits for AUTH when the hub requires it, then receives snapshots. */
export class StatusSession {
  authorized = false;
  scope: ReadonlySet<string> | null = null;
  scopeKey = '*';
  private done = false;

  constructor(
    private readonly feed: StatusFeed,
    private readonly sink: StatusSink,
  ) {}

  /** Text from the socket: lines of `AUTH <token>` or `PING <data>`. */
  receive(text: string): void {
    for (const raw of text.split('\n')) {
      if (this.done) return;
      const line = raw.replace(/\r$/, '').trim();
      if (line === '') continue;
      const space = line.indexOf(' ');
      const name = space === -1 ? line : line.slice(0, space);
      if (name === 'PING') continue;
      if (name !== 'AUTH') {
        this.refuse('the status feed is read-only: send AUTH <token> or PING');
        return;
      }
      const secret = space === -1 ? '' : line.slice(space + 1);
      const access = this.feed.server.limits.credentials.lookup(secret);
      if (access === null) {
        this.refuse(AUTH_FAILED_TEXT);
        return;
      }
      this.authorize(access.readable);
    }
  }

  authorize(scope: ReadonlySet<string> | null): void {
    this.scope = scope;
    this.scopeKey = scope === null ? '*' : [...scope].sort().join(',');
    this.authorized = true;
    this.feed.sendNow(this);
  }

  /** `{"type":"error"}` and the close. */
  refuse(message: string): void {
    if (this.done) return;
    this.sendJson({ type: 'error', message });
    this.end();
  }

  sendJson(value: unknown): void {
    this.sendText(JSON.stringify(value));
  }

  sendText(text: string): void {
    if (!this.done) this.sink.send(text);
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    this.feed.forget(this);
    this.sink.end();
  }

  /** The socket closed. */
  closed(): void {
    this.done = true;
    this.feed.forget(this);
  }
}
