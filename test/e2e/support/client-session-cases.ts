// Our ReplicationClient in place of Synapse's 2017 worker, one case per
// worker-side recording (w-*): a replaying master (test/support/recorded-master.ts)
// plays the recorded scripted master and checks our client's lines against
// the recorded worker's. Our client is configured from the worker's
// arguments (--name, --streams, --expect-server, the user syncs and commands
// it was given) and its `worker_op`s. Every case compares what our client
// handed over ('rows' and 'position' events) with what Synapse's worker
// handed its handler (`observed` rdata / position), then runs the check of
// each tag the session shows (TAG_CHECKS). Where ours deliberately differs
// from Synapse's worker, the session's TWEAKS entry says how; the case
// asserts ours.

import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { ReplicationClient, type ProtocolError, type ReplicationClientOptions } from '../../../src/index.js';
import type { BackoffOptions } from '../../../src/core/backoff.js';
import { handedOver, startRecordedMaster, type HandedOver, type PlayedConnection, type RecordedMaster } from '../../support/recorded-master.js';
import { peerArg, sessionEvents, sessionLines, V1_MAX_LINE_BYTES, type LineEvent, type Session } from '../../support/synapse-2017.js';
import type { SessionCase } from './session-case.js';

/** Synapse's worker's 5 s keep-alive and 25 s timeout (checked every 5 s), compressed this much in the keep-alive cases. */
const KEEPALIVE_SCALE = 0.05;
const KEEPALIVE = { pingIntervalMs: 5_000 * KEEPALIVE_SCALE, pingTimeoutMs: 25_000 * KEEPALIVE_SCALE, tickMs: 5_000 * KEEPALIVE_SCALE };
/** Timers fire late on a busy machine: how much later than due a keep-alive line may come. */
const TIMER_SLACK_MS = 150;
/** w-backoff's 14 s without a listener, compressed. */
const BACKOFF_SCALE = 0.1;
/** A delay is ceiling × (½ + ½ × random): with random fixed it is exact. */
const RANDOM = 0.5;
const jittered = (ceiling: number): number => Math.round(ceiling / 2 + (RANDOM * ceiling) / 2);
/** Fast reconnects for the cases (w-backoff has its own). */
const BACKOFF: BackoffOptions = { initialMs: 20, maxMs: 100, healthyAfterMs: 0, refusedMs: 200, random: () => RANDOM };
/** Our client's defaults (src/core/backoff.ts), for the options a case leaves out. */
const BACKOFF_DEFAULTS = { initialMs: 100, maxMs: 5_000, multiplier: 2, healthyAfterMs: 5_000, refusedMs: 30_000 };

const isPing = (line: string): boolean => /^PING [0-9]+\n$/.test(line);
const clock = (line: string): string => line.replace(/ [0-9]{13}\n$/, ' <ms>\n');

// ------------------------------------------------------------ the worker's arguments

interface WorkerArgs {
  name: string | undefined;
  streams: Record<string, number | 'NOW'>;
  expectServer: string | undefined;
  syncingUsers: string[];
  /** Commands given before it connected, in order, with the line ours sends for each (null: none). */
  queued: { call: (c: ReplicationClient) => void; line: string | null }[];
}

/** worker.py's flags and how many values each takes. */
const FLAG_ARITY: Record<string, number> = {
  '--connect': 1,
  '--name': 1,
  '--streams': 1,
  '--expect-server': 1,
  '--user-sync': 1,
  '--user-sync-end': 1,
  '--federation-ack': 1,
  '--remove-pusher': 3,
  '--invalidate-cache': 2,
  '--user-ip': 6,
  '--max-connections': 1,
  '--max-seconds': 1,
  '--log-level': 1,
  '--stdin': 0,
};

function workerArgs(s: Session): WorkerArgs {
  const out: WorkerArgs = { name: peerArg(s, '--name') ?? undefined, streams: {}, expectServer: peerArg(s, '--expect-server') ?? undefined, syncingUsers: [], queued: [] };
  const args = s.peer.args;
  for (let i = 0; i < args.length; ) {
    const flag = args[i]!;
    const arity = FLAG_ARITY[flag];
    if (arity === undefined) throw new Error(`${s.name}: worker.py flag ${flag} has no meaning here yet`);
    const v = args.slice(i + 1, i + 1 + arity);
    i += 1 + arity;
    switch (flag) {
      case '--streams':
        for (const spec of v[0]!.split(',')) {
          const [stream, token] = spec.split(':') as [string, string];
          out.streams[stream] = token === 'NOW' ? 'NOW' : Number(token);
        }
        break;
      case '--user-sync':
        out.syncingUsers.push(v[0]!);
        break;
      case '--user-sync-end':
        // Ours does not queue USER_SYNC while disconnected: every connect announces who is syncing then.
        out.queued.push({ call: (c) => c.userSync(v[0]!, false), line: null });
        break;
      case '--federation-ack':
        out.queued.push({ call: (c) => c.federationAck(Number(v[0])), line: `FEDERATION_ACK ${v[0]}\n` });
        break;
      case '--remove-pusher':
        out.queued.push({ call: (c) => c.removePusher(v[0]!, v[1]!, v[2]!), line: `REMOVE_PUSHER ${v.join(' ')}\n` });
        break;
      case '--invalidate-cache': {
        const keys = JSON.parse(v[1]!) as unknown[];
        out.queued.push({ call: (c) => c.invalidateCache(v[0]!, keys), line: `INVALIDATE_CACHE ${v[0]} ${JSON.stringify(keys)}\n` });
        break;
      }
      case '--user-ip': {
        const [user, token, ip, agent, device, seen] = v as [string, string, string, string, string, string];
        out.queued.push({
          call: (c) => c.userIp(user, token, ip, agent, device, Number(seen)),
          line: `USER_IP ${user} ${JSON.stringify([token, ip, agent, device, Number(seen)])}\n`,
        });
        break;
      }
    }
  }
  return out;
}

/** A command given to worker.py on stdin while connected (`worker_op`), for our client. */
function applyOp(c: ReplicationClient, op: Record<string, unknown>): Promise<void> | void {
  const str = (k: string): string => op[k] as string;
  switch (op['op']) {
    case 'user_sync':
      return c.userSync(str('user_id'), op['syncing'] === true);
    case 'federation_ack':
      return c.federationAck(op['token'] as number);
    case 'remove_pusher':
      return c.removePusher(str('app_id'), str('push_key'), str('user_id'));
    case 'invalidate_cache':
      return c.invalidateCache(str('cache_func'), op['keys'] as unknown[]);
    case 'user_ip':
      return c.userIp(str('user_id'), str('access_token'), str('ip'), str('user_agent'), op['device_id'] as string | null, op['last_seen'] as number);
    case 'quit':
      return c.close();
    default:
      throw new Error(`worker_op ${String(op['op'])} has no meaning here yet`);
  }
}

/** ujson (Synapse's worker) writes `/` as `\/` and non-ASCII as `\uXXXX`; ours writes JSON.stringify's form of the same value. */
function ourJson(line: string): string {
  const m = /^((?:INVALIDATE_CACHE|USER_IP) \S+) (.*)\n$/.exec(line);
  return m === null ? line : `${m[1]} ${JSON.stringify(JSON.parse(m[2]!))}\n`;
}

// ------------------------------------------------------------ one run

interface Run {
  s: Session;
  m: RecordedMaster;
  args: WorkerArgs;
  backoff: Required<Omit<BackoffOptions, 'random'>>;
  keepAlive: { pingIntervalMs: number; pingTimeoutMs: number; tickMs: number };
  got: HandedOver[];
  /** For each of `got`, the connection it came on. */
  gotOn: number[];
  errors: ProtocolError[];
  /** Our client's 'disconnected' events: a connection lost, or an attempt refused. */
  drops: { at: number; reason: string; retryInMs: number }[];
  /** Its 'connected' events (SERVER with the expected name). */
  greeted: number[];
  syncs: string[];
}

interface Tweaks {
  timeScale?: number;
  client?: Partial<ReplicationClientOptions>;
  /** Our line in place of a recorded one (after ourJson), where ours deliberately differs. */
  expected?: (l: LineEvent) => string | null;
  extra?: (line: string, conn: number) => boolean;
  optional?: (l: LineEvent) => boolean;
  /** What our client hands over, from what Synapse's worker handed over, where it deliberately differs. */
  handedOver?: (theirs: HandedOver[], s: Session) => HandedOver[];
  /** Close our client once this holds, and expect only the first `plays` recorded connections. */
  endWhen?: (r: Run) => boolean;
  plays?: number;
}

/** The rdata and position entries of `observed`: the groups Synapse's worker handed its handler. */
function theirGroups(s: Session): HandedOver[] {
  return s.observed
    .filter((o) => o['type'] === 'rdata' || o['type'] === 'position')
    .map((o) => ({ type: o['type'], stream: o['stream'], token: o['token'], rows: o['rows'] }) as HandedOver);
}

/** A recorded PING after the master's first line is a keep-alive: its timing is the worker's 5 s loop, not its content. */
function keepAlivePing(s: Session, l: LineEvent): boolean {
  const first = sessionLines(s, { dir: 's2c', conn: l.conn })[0];
  return isPing(l.line) && first !== undefined && l.t > first.t;
}

async function runCase(t: TestContext, s: Session, tw: Tweaks): Promise<Run> {
  const args = workerArgs(s);
  const m = await startRecordedMaster(t, s, {
    timeScale: tw.timeScale ?? 0,
    expected: (l) => tw.expected?.(l) ?? ourJson(l.line),
    optional: (l) => keepAlivePing(s, l) || (tw.optional?.(l) ?? false),
    // Our keep-alive PINGs come on our own clock.
    extra: (line, conn) => isPing(line) || (tw.extra?.(line, conn) ?? false),
  });
  const options: ReplicationClientOptions = {
    port: m.port,
    name: args.name,
    serverName: args.expectServer,
    streams: args.streams,
    syncingUsers: args.syncingUsers,
    backoff: BACKOFF,
    // Synapse's worker kept reconnecting after a wrong SERVER, and the recordings hold those tries; ours stops
    // by default (test/client.test.ts, m-greeting) and is told here to keep trying, to be compared try by try.
    onRefused: 'retry',
    ...tw.client,
  };
  const c = new ReplicationClient(options);
  t.after(() => c.close());
  const { random: _, ...backoff } = options.backoff ?? {};
  const r: Run = {
    s,
    m,
    args,
    backoff: { ...BACKOFF_DEFAULTS, ...backoff },
    keepAlive: { pingIntervalMs: options.pingIntervalMs ?? 5_000, pingTimeoutMs: options.pingTimeoutMs ?? 25_000, tickMs: options.tickMs ?? 1_000 },
    got: handedOver(c),
    gotOn: [],
    errors: [],
    drops: [],
    greeted: [],
    syncs: [],
  };
  // Registered after handedOver's listeners, so gotOn[i] is the connection of got[i].
  c.on('rows', () => r.gotOn.push(m.played.length));
  c.on('position', () => r.gotOn.push(m.played.length));
  c.on('error', (e: ProtocolError) => r.errors.push(e));
  c.on('disconnected', (reason: string, retryInMs: number) => r.drops.push({ at: Date.now(), reason, retryInMs }));
  c.on('connected', () => r.greeted.push(Date.now()));
  c.on('sync', (data: string) => r.syncs.push(data));
  for (const q of args.queued) q.call(c);
  c.start();
  for (const op of sessionEvents(s, 'worker_op')) {
    // As recorded: once the lines before the op, both ways, have gone over.
    const before = s.events.slice(0, s.events.indexOf(op)).filter((e): e is LineEvent => e.kind === 'line' && e.conn === op.conn);
    const s2c = before.filter((l) => l.dir === 's2c').length;
    const c2s = before.filter((l) => l.dir === 'c2s' && !keepAlivePing(s, l)).length;
    await m.until(() => {
      const p = m.played[op.conn - 1];
      return p !== undefined && sentLines(p).length >= s2c && matchedLines(p).length >= c2s;
    }, `the lines before worker_op ${JSON.stringify(op.fields['op'])}`);
    await applyOp(c, op.fields['op'] as Record<string, unknown>);
  }
  if (tw.endWhen !== undefined) {
    await m.until(() => tw.endWhen!(r), 'the end of the case');
    await c.close();
  }
  await (tw.plays !== undefined ? m.settled(tw.plays) : m.finished());
  assert.deepEqual(r.got, (tw.handedOver ?? ((g) => g))(theirGroups(s), s), `${s.name}: what our client handed over`);
  return r;
}

const sentLines = (p: PlayedConnection): string[] => p.writes.flatMap((w) => w.lines);
/** The lines our client sent on a connection that stood for recorded ones. */
const matchedLines = (p: PlayedConnection): string[] => p.lines.filter((l) => typeof l.matched === 'object').map((l) => l.line);
const recordedConnections = (r: Run): PlayedConnection[] => r.m.played.filter((p) => p.recorded);

// ------------------------------------------------------------ per session

const rdata = (stream: string, token: number, rows: unknown[]): HandedOver => ({ type: 'rdata', stream, token, rows });
/** The row of a recorded RDATA line. */
const rowOf = (l: LineEvent): unknown => JSON.parse(l.line.split(' ').slice(3).join(' '));
/** Ours in place of one recorded line of connection `conn`. */
const instead =
  (conn: number, recorded: string | RegExp, ours: string) =>
  (l: LineEvent): string | null =>
    l.conn === conn && (typeof recorded === 'string' ? l.line === recorded : recorded.test(l.line)) ? ours : null;

const TWEAKS: Record<string, Tweaks> = {
  'w-connect': {
    // Not queued by ours (see --user-sync-end in workerArgs).
    optional: (l) => l.line.startsWith('USER_SYNC @bob:example.com end '),
  },
  'w-batch-across-position': {
    // A POSITION inside a batch run ends the run for our client: the held row is dropped, not joined to the next token.
    handedOver: (theirs) => theirs.map((g) => (g.type === 'rdata' && g.token === 32 ? { ...g, rows: g.rows.slice(-1) } : g)),
  },
  'w-unbatched-catchup-cut': {
    // A lone numbered row keeps its token open (more rows of it may follow): ours resumes from 3, not 4, so a
    // Synapse master sends token 4 again and ours skips the row it already handed over: nothing is lost.
    expected: instead(2, 'REPLICATE caches 4\n', 'REPLICATE caches 3\n'),
  },
  'w-resume-tokens': {
    // events 4 came as a lone numbered row: ours resumes from 3 (as in w-unbatched-catchup-cut).
    expected: instead(2, 'REPLICATE events 4\n', 'REPLICATE events 3\n'),
  },
  'w-keepalive-silence': { timeScale: KEEPALIVE_SCALE, client: KEEPALIVE },
  'w-no-ping-from-master': { timeScale: KEEPALIVE_SCALE, client: KEEPALIVE },
  'w-backoff': {
    timeScale: BACKOFF_SCALE,
    // Our initial delay and factor (100 ms, × 2) and the 5 s cap compressed like the recording. A connection
    // counts as healthy 20 ms after SERVER (ours: 5 s), so that the recorded ones (up 50 ms) reset the delay
    // as every successful connect did for Twisted.
    client: { backoff: { maxMs: 5_000 * BACKOFF_SCALE, healthyAfterMs: 20, random: () => RANDOM } },
  },
  'w-long-lines': {
    // D10: ours takes the 16,385-byte line and stays connected; Synapse's worker dropped the connection and met it again.
    endWhen: (r) => r.got.some((g) => g.type === 'rdata' && g.token === 12),
    plays: 1,
    handedOver: (theirs, s) => [...theirs, rdata('events', 12, [rowOf(sessionLines(s, { dir: 's2c' }).find((l) => l.line.startsWith('RDATA events 12 '))!)])],
  },
  'w-unusable-rows': {
    // Ours knows no stream schemas: a row with the wrong field count is handed over, for its caller to judge.
    handedOver: (theirs) => [theirs[0]!, rdata('events', 11, [['$11:example.com']]), ...theirs.slice(1)],
  },
  // D13: our own wording for what we refuse.
  'w-client-command-from-server': { expected: instead(1, /^ERROR /, 'ERROR USER_SYNC may not be sent by a server\n') },
  'w-bad-token-from-master': { expected: instead(1, /^ERROR /, "ERROR bad token 'abc' in RDATA: expected an integer from 0 to 9007199254740991 or batch\n") },
  'w-bad-json-from-master': {
    // Ours parses row JSON only when the caller asks (row()): the row is handed over as it came, its row() throws
    // BAD_JSON, and the connection stays. Synapse's worker refused the line (ERROR, close) and reconnected.
    optional: (l) => l.line.startsWith('ERROR '),
    endWhen: (r) => r.got.some((g) => g.type === 'rdata'),
    plays: 1,
    handedOver: (theirs) => [theirs[0]!, rdata('events', 11, [{ notJson: '[not json' }])],
  },
  'w-no-space-from-master': {
    // D8: ours says why before it closes; Synapse's worker dropped the connection without a word.
    extra: (line, conn) => conn === 1 && line === 'ERROR missing arguments for POSITION: expected POSITION <stream> <token>\n',
  },
};

// ------------------------------------------------------------ per tag

/** Where ours resumes a stream: the last token handed over, except that a lone numbered row keeps its token open. */
function resumeFrom(start: number | 'NOW', groups: HandedOver[]): number | 'NOW' {
  let closed = start;
  let open: number | null = null;
  for (const g of groups) {
    if (g.type === 'position' || g.rows.length > 1) {
      closed = g.token;
      open = null;
    } else if (g.token !== open) {
      if (open !== null) closed = open;
      open = g.token;
    }
  }
  return closed;
}

/** What ours handed over on connections before `n`. */
const handedBefore = (r: Run, n: number): HandedOver[] => r.got.filter((_, i) => r.gotOn[i]! < n);

/** Our opening on connection `n`: NAME, PING, a REPLICATE per stream from where it stands, a USER_SYNC start per syncing user. */
function opening(r: Run, n: number): string[] {
  const before = handedBefore(r, n);
  return [
    ...(r.args.name !== undefined ? [`NAME ${r.args.name}\n`] : []),
    'PING <ms>\n',
    ...Object.entries(r.args.streams).map(([stream, start]) => `REPLICATE ${stream} ${resumeFrom(start, before.filter((g) => g.stream === stream))}\n`),
    ...r.args.syncingUsers.map((u) => `USER_SYNC ${u} start <ms>\n`),
  ];
}

const linesOn = (p: PlayedConnection): string[] => p.lines.map((l) => clock(l.line));

function checkKeepAlivePings(r: Run, p: PlayedConnection): void {
  // Ours PINGs whenever it has sent nothing for an interval (checked every tick); the recorded worker's PINGs
  // came 5 or 10 s apart, its 5 s loop skipping one now and then.
  const pings = p.lines.slice(1).filter((l) => isPing(l.line));
  const end = p.closedAt!;
  const { pingIntervalMs, tickMs } = r.keepAlive;
  assert.ok(pings.length >= Math.floor((end - p.acceptedAt) / (pingIntervalMs + tickMs)) - 1, `${pings.length} keep-alive PINGs in ${end - p.acceptedAt} ms`);
  for (let i = 1; i < pings.length; i++) {
    const gap = pings[i]!.at - pings[i - 1]!.at;
    // Measured where the master read them: a PING read late makes the next gap look short by as much (the
    // rule's exact boundaries are test/core/keep-alive.test.ts's).
    assert.ok(gap >= pingIntervalMs - TIMER_SLACK_MS && gap <= pingIntervalMs + tickMs + TIMER_SLACK_MS, `PINGs ${gap} ms apart (interval ${pingIntervalMs}, tick ${tickMs})`);
  }
}

function checkTokenBelowAsked(r: Run): void {
  // POSITION below the token asked for (the master is behind): ours takes it and resumes from it.
  const [stream, start] = Object.entries(r.args.streams)[0]!;
  const first = r.got.find((g) => g.stream === stream)!;
  assert.equal(first.type, 'position');
  assert.ok(typeof start === 'number' && first.token < start, `POSITION ${first.token} below the asked ${start}`);
  assert.ok(matchedLines(r.m.played[1]!).includes(`REPLICATE ${stream} ${first.token}\n`), 'resumed from the lower token');
}

function checkLongLine(r: Run): void {
  const long = sessionLines(r.s, { dir: 's2c' }).filter((l) => l.bytes.length - 1 > V1_MAX_LINE_BYTES);
  assert.ok(long.length > 0, 'the session sends a line over 16 KiB');
  const token = Number(long[0]!.line.split(' ')[2]);
  assert.ok(r.got.some((g) => g.type === 'rdata' && g.token === token), `the ${long[0]!.bytes.length - 1}-byte RDATA ${token} was handed over`);
  assert.equal(r.errors.length, 0);
  assert.equal(r.m.played.length, 1, 'no drop, so no reconnect');
}

/** Tag → what our client does for it, asserted on a run of a session that shows the tag. */
const TAG_CHECKS: Record<string, (r: Run) => void> = {
  'worker-connect': (r) => {
    // From the arguments alone: the opening, then the commands given before the connection, once.
    const queued = r.args.queued.flatMap((q) => (q.line === null ? [] : [q.line]));
    const [first, ...later] = recordedConnections(r);
    assert.deepEqual(linesOn(first!), [...opening(r, 1), ...queued], 'connection 1: the opening, then the queued commands');
    for (const p of later) {
      assert.deepEqual(linesOn(p).slice(0, opening(r, p.n).length), opening(r, p.n), `connection ${p.n}: the opening`);
      assert.ok(!p.lines.some((l) => queued.includes(l.line)), `connection ${p.n}: queued commands are not sent again`);
    }
  },
  'worker-no-wait-for-server': (r) => {
    // The master sends SERVER only after these lines, as recorded: a client waiting for SERVER would never get it.
    for (const p of recordedConnections(r)) {
      const opened = p.lines.slice(0, opening(r, p.n).length);
      assert.ok(opened.every((l) => l.sentBefore === 0), `connection ${p.n}: the opening went out before any line from the master`);
    }
  },
  'worker-resume-tokens': (r) => {
    for (const p of recordedConnections(r).slice(1)) {
      const replicate = matchedLines(p).filter((l) => l.startsWith('REPLICATE '));
      assert.deepEqual(replicate, opening(r, p.n).filter((l) => l.startsWith('REPLICATE ')), `connection ${p.n}: resumed from the tokens handed over`);
    }
  },
  'worker-backoff': (r) => {
    // Ours: the initial delay after a healthy connection (SERVER seen, up healthyAfterMs), doubling after each
    // failed try up to the cap, the wrong-remote delay after a wrong SERVER; and no try before its delay.
    // Twisted's (w-backoff): 1 s × e, capped at 5 s, 12% normal jitter, reset on every successful connect.
    // Ours: 100 ms × 2, capped at 5 s, between half and all of the delay, reset only after 5 s up.
    const { initialMs, maxMs, multiplier, healthyAfterMs, refusedMs } = r.backoff;
    const accepted = [...r.m.played];
    let prev: number | null = null;
    for (const [i, d] of r.drops.entries()) {
      const p = d.reason === 'ECONNREFUSED' ? undefined : accepted.shift();
      const wrongRemote = p?.lines.some((l) => l.line === 'ERROR Wrong remote\n') ?? false;
      const healthy = p !== undefined && r.greeted.some((at) => at >= p.acceptedAt && at <= d.at) && d.at - p.acceptedAt >= healthyAfterMs;
      const expected: number = wrongRemote ? jittered(refusedMs) : healthy || prev === null ? jittered(initialMs) : Math.min(jittered(maxMs), prev * multiplier);
      const what = p === undefined ? 'a refused try' : `connection ${p.n}${wrongRemote ? ' (wrong remote)' : healthy ? ' (healthy)' : ''}`;
      assert.equal(d.retryInMs, expected, `the delay after ${what}`);
      prev = d.retryInMs;
      const next = Math.min(r.drops[i + 1]?.reason === 'ECONNREFUSED' ? r.drops[i + 1]!.at : Infinity, accepted[0]?.acceptedAt ?? Infinity);
      if (next !== Infinity) assert.ok(next - d.at >= d.retryInMs - 2, `tried again ${next - d.at} ms after ${what}, due in ${d.retryInMs}`);
    }
    if (sessionEvents(r.s, 'listener_closed').length > 0) {
      assert.ok(r.drops.filter((d) => d.reason === 'ECONNREFUSED' && d.retryInMs === jittered(maxMs)).length >= 2, 'refused tries reached the cap');
    }
  },
  'worker-batch-grouping': (r) => {
    // `batch` rows are held per stream and handed over with their numbered row, as one group.
    const groups = (g: HandedOver[]): HandedOver[] => g.filter((x) => x.rows.length > 1);
    assert.ok(groups(r.got).length > 0);
    assert.deepEqual(groups(r.got), groups(theirGroups(r.s)));
  },
  'worker-batch-survives-position': (r) => {
    const theirs = theirGroups(r.s).find((g) => g.type === 'rdata')!;
    const ours = r.got.find((g) => g.type === 'rdata')!;
    assert.equal(theirs.rows.length, 2);
    assert.deepEqual(ours.rows, theirs.rows.slice(-1), 'ours drops the row held across the POSITION');
  },
  'worker-batch-dropped-on-reconnect': (r) => {
    // Cut inside a batch: nothing of it handed over on connection 1; resumed from the old token, it comes whole.
    assert.ok(handedBefore(r, 2).every((g) => g.type === 'position'));
    const batch = r.got.filter((g) => g.type === 'rdata');
    assert.equal(batch.length, 1);
    assert.equal(batch[0]!.rows.length, 3);
  },
  'worker-unbatched-catchup-loss': (r) => {
    // Cut after the first row of a token: Synapse's worker resumed from that token, past the rest of it; ours
    // resumes from before it, so the master sends the token again.
    const cut = handedBefore(r, 2).at(-1)!;
    const asked = (lines: string[]): number => Number(lines.find((l) => l.startsWith(`REPLICATE ${cut.stream} `))!.split(' ')[2]);
    assert.equal(asked(sessionLines(r.s, { dir: 'c2s', conn: 2 }).map((l) => l.line)), cut.token);
    assert.ok(asked(matchedLines(r.m.played[1]!)) < cut.token, 'ours asks for the cut token again');
  },
  'catchup-unbatched': (r) => {
    // Each numbered catch-up line is handed over on its own, as by Synapse's worker.
    const rows = handedBefore(r, 2).filter((g) => g.type === 'rdata');
    assert.ok(rows.length > 1 && rows.every((g) => g.rows.length === 1));
    assert.ok(rows.some((g, i) => i > 0 && g.token === rows[i - 1]!.token), 'two lines with one token');
  },
  'worker-position': (r) => {
    const positions = (g: HandedOver[]): HandedOver[] => g.filter((x) => x.type === 'position');
    assert.ok(positions(r.got).length > 0);
    assert.deepEqual(positions(r.got), positions(theirGroups(r.s)));
  },
  'worker-position-moves-back': checkTokenBelowAsked,
  'token-ahead': checkTokenBelowAsked,
  'worker-error-logged': (r) => {
    // ERROR from the master: reported as an 'error' event, nothing closed, later rows handed over.
    const error = sessionLines(r.s, { dir: 's2c' }).find((l) => l.line.startsWith('ERROR '))!;
    assert.deepEqual(r.errors.map((e) => [e.code, e.message]), [['REMOTE_ERROR', error.line.slice('ERROR '.length, -1)]]);
    assert.equal(r.m.played[0]!.closedBy, 'server');
    const after = sessionLines(r.s, { dir: 's2c' }).filter((l) => l.t > error.t && l.line.startsWith('RDATA '));
    assert.ok(after.length > 0);
    for (const l of after) assert.ok(r.got.some((g) => g.type === 'rdata' && g.token === Number(l.line.split(' ')[2])), `${l.line.trim()} handed over`);
  },
  'worker-wrong-remote': (r) => {
    for (const p of recordedConnections(r)) {
      assert.equal(p.lines.at(-1)!.line, 'ERROR Wrong remote\n', `connection ${p.n}`);
      assert.equal(p.closedBy, 'client');
    }
    assert.deepEqual(r.got, [], 'the POSITION after the SERVER line is not handled');
    assert.equal(r.greeted.length, 0);
    assert.ok(r.errors.length >= recordedConnections(r).length && r.errors.every((e) => e.code === 'WRONG_REMOTE'));
  },
  'worker-ping-timeout': (r) => {
    // Armed by the master's PING; the timeout is checked every tick, so it fires 25-30 s (scaled) after the
    // master's last line, as Synapse's worker's did (29.5 s here).
    const p = r.m.played[0]!;
    const error = p.lines.find((l) => l.line === 'ERROR ping timeout\n');
    assert.ok(error !== undefined, 'ERROR ping timeout sent');
    const silence = error.at - p.writes.at(-1)!.at;
    const { pingTimeoutMs, tickMs } = r.keepAlive;
    assert.ok(silence >= pingTimeoutMs && silence <= pingTimeoutMs + tickMs + TIMER_SLACK_MS, `timed out after ${silence} ms of silence`);
    const recorded = sessionLines(r.s, { conn: 1 });
    const theirs = (recorded.find((l) => l.line === 'ERROR ping timeout\n')!.t - recorded.filter((l) => l.dir === 's2c').at(-1)!.t) * KEEPALIVE_SCALE;
    assert.ok(theirs >= pingTimeoutMs && theirs <= pingTimeoutMs + tickMs, `Synapse's worker's, scaled: ${theirs} ms`);
    assert.equal(p.closedBy, 'client');
    assert.ok(r.errors.some((e) => e.code === 'PING_TIMEOUT'));
    checkKeepAlivePings(r, p);
  },
  keepalive: (r) => checkKeepAlivePings(r, r.m.played[0]!),
  'worker-no-timeout-without-ping': (r) => {
    // The master never PINGs: ours never times out, however long the silence; the master closed it.
    const p = r.m.played[0]!;
    assert.equal(p.closedBy, 'server');
    assert.ok(p.closedAt! - p.writes.at(-1)!.at > r.keepAlive.pingTimeoutMs, 'silent for longer than the timeout');
    assert.deepEqual(r.errors, []);
  },
  'worker-16k-drop': checkLongLine,
  'line-limit-16k': checkLongLine,
  'worker-unusable-rows-ignored': (r) => {
    // A row of a stream ours does not follow is ignored; the connection stays; SYNC goes to 'sync'.
    assert.ok(!r.got.some((g) => g.stream === 'nosuch'));
    assert.deepEqual(r.syncs, ['marker-1']);
    assert.equal(r.m.played[0]!.closedBy, 'server');
    assert.deepEqual(r.errors, []);
  },
  'worker-wrong-direction': (r) => checkRefused(r, 'WRONG_DIRECTION'),
  'worker-parse-error': (r) => {
    // What ours parses on arrival (command, stream, token) it refuses with ERROR and a close. Row JSON it parses
    // only when its caller asks: that row is handed over (w-bad-json-from-master in TWEAKS), the connection stays.
    const refused = sessionLines(r.s, { dir: 's2c', conn: 1 }).at(-1)!;
    if (!/^RDATA \S+ ([0-9]+|batch) /.test(refused.line)) return checkRefused(r, 'BAD_TOKEN');
    assert.deepEqual(r.errors, []);
    assert.equal(r.m.played.length, 1, 'the connection stayed');
  },
  'worker-silent-drop': (r) => checkRefused(r, 'MISSING_ARGUMENTS'),
  'worker-server-optional': (r) => {
    // Without SERVER, rows and positions are handed over all the same; ours then never emits 'connected'.
    assert.ok(r.got.length > 0);
    assert.equal(r.greeted.length, 0);
  },
  'worker-commands': (r) => {
    // Commands while connected go out at once, in order, as Synapse's worker sent them (JSON as JSON.stringify
    // writes it; the push key's spaces unescaped, as Synapse's).
    const recorded = sessionLines(r.s, { dir: 'c2s', conn: 1 }).slice(opening(r, 1).length).map((l) => clock(ourJson(l.line)));
    assert.deepEqual(linesOn(r.m.played[0]!).slice(opening(r, 1).length), recorded);
    assert.ok(recorded.some((l) => /^REMOVE_PUSHER \S+ \S+ \S+ \S+/.test(l)), 'a push key with spaces');
  },
};

/** Ours answers what it cannot take from the master with ERROR <reason> and a close, then resumes. */
function checkRefused(r: Run, code: string): void {
  const p = r.m.played[0]!;
  assert.match(p.lines.at(-1)!.line, /^ERROR /);
  assert.equal(p.closedBy, 'client');
  assert.deepEqual(r.errors.map((e) => e.code), [code]);
  assert.ok(r.m.played.length >= 2, 'reconnected');
}

export const CLIENT_TAGS: ReadonlySet<string> = new Set(Object.keys(TAG_CHECKS));

export function clientCase(s: Session): SessionCase | null {
  if (s.side !== 'worker') return null;
  return {
    title: "our client in place of Synapse's worker",
    run: async (t) => {
      const r = await runCase(t, s, TWEAKS[s.name] ?? {});
      for (const tag of s.shows) TAG_CHECKS[tag]?.(r);
    },
  };
}
