// Our server in place of the Synapse side of the recorded sessions: in place
// of Synapse's master for m-*, and of the scripted master that Synapse's
// worker talked to for w-* (those with a `replay`). Each case replays the
// session (test/support/session-replay.ts) and asserts, for each tag the
// session shows, what our server does. Where the README keeps Synapse's
// behaviour our lines are the recorded lines; where we differ (D1-D15) the
// case's "our session" has our answers in place of the master's, and the
// assertion message names the difference.

import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { userIpInfo, type ClientActionCommand } from '../../../src/core/commands.js';
import {
  assertLines,
  CLIENT_ACTIONS,
  DROPPED,
  forwarded,
  received,
  replayMaster,
  replayWorker,
  rowsWrittenBefore,
  workerTimeline,
  type Replay,
  type ReplayConn,
  type ReplayOptions,
  type WorkerReplay,
} from '../../support/session-replay.js';
import { observed, sameLine, V1Worker, type LineEvent, type OtherEvent, type Session, type SessionEvent, type WorkerGroup } from '../../support/synapse-2017.js';
import { eventually } from '../../bindings/support/raw-peer.js';
import type { SessionCase } from './session-case.js';

interface Check<R extends Replay = Replay> {
  /** The tags this check asserts. */
  tags: readonly string[];
  run(r: R, s: Session, t: TestContext): void | Promise<void>;
}

/** One replay of the session and what to assert on it. */
interface Part {
  options?: (s: Session) => ReplayOptions;
  checks: Check[];
}

/** Tags a server case leaves to the client cases: when Synapse's worker reconnects is its own timing (ours only answers). */
const CLIENT_SIDE_TAGS: ReadonlySet<string> = new Set(['worker-backoff']);
const MAX_TOKEN = Number.MAX_SAFE_INTEGER;

// ------------------------------------------------------------ our session

type Edit = (events: SessionEvent[], s: Session) => SessionEvent[];

/** Our session: the recorded events with these edits applied in turn. */
const oursBy =
  (...list: Edit[]) =>
  (s: Session): SessionEvent[] =>
    list.reduce((events, edit) => edit(events, s), s.events);

function s2c(conn: number, t: number, line: string): LineEvent {
  return { kind: 'line', t, conn, dir: 's2c', bytes: Buffer.from(line, 'utf8'), line, noNewline: false, fromRun: false };
}

const isS2c = (e: SessionEvent): e is LineEvent => e.kind === 'line' && e.dir === 's2c';
const isClose = (e: SessionEvent, by: 'server' | 'client'): e is OtherEvent => e.kind === 'event' && e.event === 'close' && e.fields['by'] === by;
const closeBy = (e: OtherEvent, by: 'server' | 'client'): OtherEvent => ({ ...e, fields: { ...e.fields, by } });

/** Each recorded ERROR line becomes `lines`: our ERROR, or our answer where we do not refuse. */
const errorBecomes =
  (lines: (s: Session) => string[]): Edit =>
  (events, s) =>
    events.flatMap((e) => (isS2c(e) && e.line.startsWith('ERROR ') ? lines(s).map((l) => s2c(e.conn, e.t, l)) : [e]));

const ourError = (reason: string): Edit => errorBecomes(() => [`ERROR ${reason}\n`]);

/** Where the master dropped the connection without a word, ours says why first. */
const errorBeforeClose =
  (reason: string): Edit =>
  (events) =>
    events.flatMap((e) => (isClose(e, 'server') ? [s2c(e.conn, e.t, `ERROR ${reason}\n`), e] : [e]));

/** Where the master closed, ours keeps the connection: the replayer ends it there instead. */
const staysOpen: Edit = (events) => events.map((e) => (isClose(e, 'server') ? closeBy(e, 'client') : e));

/** Where the master answered the client's line, ours refuses it: every answer becomes one ERROR, then our close. */
const refused =
  (reason: string): Edit =>
  (events) => {
    const sent = events.findIndex((e) => e.kind === 'line' && e.dir === 'c2s');
    const out = events.filter((e, i) => i <= sent || !isS2c(e)).map((e) => (isClose(e, 'client') ? closeBy(e, 'server') : e));
    const first = events[sent]!;
    out.splice(sent + 1, 0, s2c(first.conn, first.t, `ERROR ${reason}\n`));
    return out;
  };

/** The recorded catch-up of `stream` (its RDATA lines through its POSITION) becomes ours from the same history. */
const ourCatchUp =
  (stream: string, after: number, extra: (s: Session) => string[] = () => []): Edit =>
  (events, s) => {
    const first = events.findIndex((e) => isS2c(e) && e.line.startsWith(`RDATA ${stream} `));
    const last = events.findIndex((e, i) => i > first && isS2c(e) && e.line.startsWith(`POSITION ${stream} `));
    const at = events[first]!;
    const lines = catchUp([...s.setup!.history, ...extra(s)], stream, after);
    return [...events.slice(0, first), ...lines.map((l) => s2c(at.conn, at.t, l)), ...events.slice(last + 1)];
  };

/** Drops recorded s2c lines our server does not send. */
const without =
  (drop: (line: string) => boolean): Edit =>
  (events) =>
    events.filter((e) => !(isS2c(e) && drop(e.line)));

/** Adds s2c lines just before the first event matching `where`. */
const insertBefore =
  (where: (e: SessionEvent) => boolean, lines: (s: Session, at: SessionEvent) => string[]): Edit =>
  (events, s) => {
    const i = events.findIndex(where);
    const at = events[i]!;
    return [...events.slice(0, i), ...lines(s, at).map((l) => s2c(at.conn, at.t, l)), ...events.slice(i)];
  };

/**
 * Our answer to `REPLICATE <stream> <after>` over writer-form lines: the
 * rows past `after` as the writer gave them (batch framing kept), then
 * `POSITION <stream> <head>`.
 */
function catchUp(lines: readonly string[], stream: string, after: number): string[] {
  const out: string[] = [];
  let held: string[] = [];
  let head = 0;
  for (const l of lines) {
    const m = /^(RDATA|POSITION) (\S+) (\S+)/.exec(l);
    if (m === null || m[2] !== stream) continue;
    if (m[1] === 'POSITION') {
      head = Number(m[3]);
    } else if (m[3] === 'batch') {
      held.push(l);
    } else {
      head = Number(m[3]);
      if (head > after) out.push(...held, l);
      held = [];
    }
  }
  return [...out, `POSITION ${stream} ${head}\n`];
}

/** What JSON.parse says of `text`: our "bad JSON" ERRORs quote it. */
function jsonError(text: string): string {
  try {
    JSON.parse(text);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`${text} is JSON`);
}

const badToken = (text: string, command: string, alternative = ''): string =>
  `bad token '${text}' in ${command}: expected an integer from 0 to ${MAX_TOKEN}${alternative}`;

// ------------------------------------------------------------ checks

const conn1 = (r: Replay): ReplayConn => r.conns.get(1)!;
const notPing = (l: string): boolean => !l.startsWith('PING ');
const tokenOf = (line: string): number => Number(/^(?:RDATA|POSITION) \S+ (\d+)/.exec(line)?.[1] ?? NaN);
const label = (tags: readonly string[], message: string): string => `${tags.join(', ')}: ${message}`;

/** Our server ended `c` where our session has it end it (by the server), and only there. */
function assertEnd(c: ReplayConn, message: string): void {
  const ourClose = c.sessionEnd === 'server';
  assert.equal(c.endedBy, ourClose ? 'server' : 'replayer', `${message}: conn ${c.conn} ${ourClose ? 'is closed by our server' : 'stays open until the client ends it'}`);
}

/**
 * Our lines on every connection are our session's (where nothing was
 * edited: the recording's), and each connection ends as it ends there.
 * `canon` puts both lists in a form without the order that does not matter.
 */
function wire(tags: readonly string[], message: string, canon: (lines: string[]) => string[] = (l) => l): Check {
  return {
    tags,
    run(r, s) {
      for (const c of r.conns.values()) {
        assertLines(s, canon(received(c)), canon(c.expected), `${label(tags, message)} (conn ${c.conn})`);
        assertEnd(c, label(tags, message));
      }
    },
  };
}

const KEPT = 'kept as Synapse had it: our lines are the recorded lines';

/** Runs of consecutive POSITION lines sorted: their order is not specified (D15). */
function positionsAsSet(lines: string[]): string[] {
  const out: string[] = [];
  let run: string[] = [];
  for (const l of [...lines, '']) {
    if (l.startsWith('POSITION ')) {
      run.push(l);
      continue;
    }
    out.push(...run.sort());
    run = [];
    if (l !== '') out.push(l);
  }
  return out;
}

/** Each stream's lines in order, streams by name: answers to REPLICATEs of different streams may interleave in any order. */
function perStream(lines: string[]): string[] {
  const streamOf = (l: string): string => /^(?:RDATA|POSITION) (\S+) /.exec(l)?.[1] ?? '';
  const names = [...new Set(lines.map(streamOf))].sort();
  return names.flatMap((n) => lines.filter((l) => streamOf(l) === n));
}

/** A refused line is passed on to no writer, and reported as no client action. */
const nothingPassedOn: Check = {
  tags: ['error-close'],
  run(r) {
    assert.deepEqual(r.commands, [], 'error-close: a refused line is no client action');
    assert.deepEqual(forwarded(r), [], 'error-close: a refused line reaches no writer');
  },
};

/** The error sessions: our ERROR (our wording, D13) where the master sent its own, then our close. */
function errorCase(tags: readonly string[], reason: string): Part {
  return {
    options: (s) => ({ events: oursBy(ourError(reason))(s) }),
    checks: [wire(tags, `ERROR then the close, as Synapse${tags.includes('error-texts') ? `; D13: in our wording (ERROR ${reason})` : ''}`), nothingPassedOn],
  };
}

/**
 * The client actions a session's client sent, as our server passes them to
 * writers: each line verbatim (the recording's varying values by pattern),
 * but USER_SYNC folded over connections, as the hub tells writers of
 * presence: a user's `start` when no connection had it syncing, its `end`
 * (as sent, or `USER_SYNC <user> end <now>` when a connection ends) when the
 * last connection that had it stops (ours tells writers, as Synapse's master
 * cleared them).
 */
function expectedForwards(events: readonly SessionEvent[]): (string | RegExp)[] {
  const out: (string | RegExp)[] = [];
  const syncing = new Map<number, Set<string>>();
  const connections = new Map<string, number>();
  const stopped = (u: string): boolean => {
    const n = connections.get(u) ?? 0;
    if (n <= 1) connections.delete(u);
    else connections.set(u, n - 1);
    return n === 1;
  };
  const ends = (c: number): void => {
    for (const u of syncing.get(c) ?? []) {
      if (stopped(u)) out.push(new RegExp(`^USER_SYNC ${u.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} end \\d+\\n$`));
    }
    syncing.delete(c);
  };
  for (const e of events) {
    if (e.kind === 'event' && e.event === 'close') ends(e.conn);
    if (e.kind !== 'line' || e.dir !== 'c2s' || !CLIENT_ACTIONS.includes(e.line.split(' ', 1)[0]!)) continue;
    const m = /^USER_SYNC (\S+) (start|end) /.exec(e.line);
    if (m === null) {
      out.push(e.line);
      continue;
    }
    const users = syncing.get(e.conn) ?? new Set<string>();
    syncing.set(e.conn, users);
    const user = m[1]!;
    if (m[2] === 'start') {
      if (users.has(user)) continue;
      users.add(user);
      const n = connections.get(user) ?? 0;
      connections.set(user, n + 1);
      if (n === 0) out.push(e.line);
    } else if (users.delete(user) && stopped(user)) {
      out.push(e.line);
    }
  }
  for (const c of [...syncing.keys()]) ends(c);
  return out;
}

function forwardedVerbatim(tags: readonly string[], events: (s: Session) => readonly SessionEvent[]): Check {
  return {
    tags,
    run(r, s) {
      const want = expectedForwards(events(s));
      const got = forwarded(r);
      const same = got.length === want.length && want.every((w, i) => (typeof w === 'string' ? sameLine(s, 'c2s', w, got[i]!) : w.test(got[i]!)));
      assert.ok(same, `${label(tags, 'the client actions reach the writer verbatim (USER_SYNC folded over connections), in order')}\n  expected: ${JSON.stringify(want.map(String))}\n  got:      ${JSON.stringify(got)}`);
    },
  };
}

/** A client action as Synapse's master parsed it (the `args` of its `recv` entries). */
function synapseArgs(cmd: ClientActionCommand): Record<string, unknown> {
  switch (cmd.name) {
    case 'USER_SYNC':
      return { user_id: cmd.userId, is_syncing: cmd.state === 'start', last_sync_ms: cmd.lastSyncMs };
    case 'FEDERATION_ACK':
      return { token: cmd.token };
    case 'REMOVE_PUSHER':
      return { app_id: cmd.appId, push_key: cmd.pushKey, user_id: cmd.userId };
    case 'INVALIDATE_CACHE':
      return { cache_func: cmd.cacheFunc, keys: JSON.parse(cmd.keysJson) };
    case 'USER_IP': {
      const i = userIpInfo(cmd);
      return { user_id: cmd.userId, access_token: i.accessToken, ip: i.ip, user_agent: i.userAgent, device_id: i.deviceId, last_seen: i.lastSeen };
    }
  }
}

/** Our 'command' events carry what Synapse's master made of each action (observed `recv`), no more, no less. */
const parsedAsSynapse = (tags: readonly string[]): Check => ({
  tags,
  run(r, s) {
    const want = observed(s, 'recv')
      .filter((o) => CLIENT_ACTIONS.includes(o['cmd'] as string))
      .map((o) => ({ cmd: o['cmd'], args: o['args'] }));
    assert.deepEqual(
      r.commands.map((c) => ({ cmd: c.name, args: synapseArgs(c) })),
      want,
      label(tags, "our server reports each client action ('command' event) with the values Synapse's master parsed from it"),
    );
  },
});

/** Our 'presence' events are Synapse's presence updates for the USER_SYNCs, then one end per user still syncing at the close. */
function assertPresence(r: Replay, s: Session, tags: readonly string[], endsAtClose: number): void {
  const rows = observed(s, 'presence.update_external_syncs_row').map((o) => ({ userId: o['user_id'], syncing: o['is_syncing'], lastSyncMs: o['sync_time_msec'] }));
  const ours = r.presence.map((p) => ({ userId: p.userId, syncing: p.syncing, lastSyncMs: p.lastSyncMs }));
  assert.deepEqual(ours.slice(0, rows.length), rows, label(tags, "our 'presence' events are the master's presence updates"));
  assert.equal(ours.length - rows.length, endsAtClose, label(tags, 'at the close ours ends each user still syncing, once'));
  assert.ok(ours.slice(rows.length).every((p) => !p.syncing), label(tags, 'at the close ours only ends users'));
}

/** The client actions reach the writer verbatim; our events report them as Synapse's master parsed them and updated presence. */
function clientCommands(tags: readonly string[], endsAtClose: number): Check[] {
  return [
    forwardedVerbatim(tags, (s) => s.events),
    parsedAsSynapse(tags),
    { tags, run: (r, s) => assertPresence(r, s, tags, endsAtClose) },
  ];
}

/** REPLICATE ALL NOW gets one POSITION per stream served. */
const onePositionPerStream: Check = {
  tags: ['replicate-all'],
  run(r, s) {
    const positions = received(conn1(r)).filter((l) => l.startsWith('POSITION '));
    assert.deepEqual(positions.map((l) => l.split(' ')[1]).sort(), [...s.peer.streams_served!].sort(), 'replicate-all: one POSITION per stream served');
  },
};

// ------------------------------------------------------------ keep-alive

/** Keep-alive sessions run 25 times faster: our timings and the recorded times are both divided by it. */
const SCALE = 25;
const KEEPALIVE = { pingIntervalMs: 5_000 / SCALE, pingTimeoutMs: 25_000 / SCALE, sweepIntervalMs: 1_000 / SCALE, maxStallMs: 30_000 / SCALE };
/** How late a sweep may fire on a busy test machine. */
const TIMER_SLACK_MS = 150;

/** Our PINGs (their payload is our clock) come every pingIntervalMs, one sweep late at most: none is skipped. */
function assertPingCadence(c: ReplayConn, message: string): void {
  const stamps = c.peer.lines.filter((l) => l.startsWith('PING ')).map((l) => Number(l.slice(5)));
  assert.ok(stamps.length >= 3, `${message}: several PINGs (${stamps.length})`);
  for (let i = 1; i < stamps.length; i++) {
    const gap = stamps[i]! - stamps[i - 1]!;
    assert.ok(
      gap >= KEEPALIVE.pingIntervalMs && gap <= KEEPALIVE.pingIntervalMs + KEEPALIVE.sweepIntervalMs + TIMER_SLACK_MS,
      `${message}: PING ${i} came ${gap} ms after the one before (interval ${KEEPALIVE.pingIntervalMs} ms, sweep ${KEEPALIVE.sweepIntervalMs} ms: never skipped, unlike Synapse's 5 s loop)`,
    );
  }
}

/** The recorded master's lines have the same shape: the greeting, PINGs 5 s (or 10 s, one skipped) apart, and `last`. */
function assertRecordedShape(s: Session, last: RegExp | null): void {
  const lines = s.events.filter(isS2c).map((e) => e.line);
  assert.match(lines[0]!, /^SERVER /);
  const pings = lines.slice(1, last === null ? undefined : -1);
  assert.ok(pings.every((l) => /^PING \d+\n$/.test(l)), `${s.name}: the recorded master sent only PINGs after its greeting`);
  const times = s.events.filter((e): e is LineEvent => isS2c(e) && e.line.startsWith('PING ')).map((e) => e.t);
  // Within half a second of a multiple of 5 s.
  for (let i = 2; i < times.length; i++) assert.ok(Math.abs(((times[i]! - times[i - 1]!) % 5_000) - 2_500) > 2_000, `${s.name}: recorded PINGs are 5 s apart (or 10 s)`);
  if (last !== null) assert.match(lines.at(-1)!, last);
}

const pingTimeout: Part = {
  options: () => ({ server: KEEPALIVE, timeScale: SCALE }),
  checks: [
    {
      tags: ['keepalive', 'ping-timeout'],
      run(r, s, t) {
        assertRecordedShape(s, /^ERROR ping timeout\n$/);
        const c = conn1(r);
        const lines = c.peer.lines;
        assert.equal(lines[0], `SERVER ${s.peer.server_name}`);
        assert.ok(lines.slice(1, -1).every((l) => /^PING \d+$/.test(l)), `keepalive: only PINGs after the greeting: ${JSON.stringify(lines)}`);
        assert.equal(lines.at(-1), 'ERROR ping timeout', 'ping-timeout: the exact ERROR, as Synapse, then the close');
        assert.equal(c.endedBy, 'server', 'ping-timeout: our server closes the connection');
        assertPingCadence(c, 'keepalive');
        // Armed by the client's PING (its last line): timed out a timeout after it, one sweep late at most.
        const after = r.startedAt + c.times.at(-1)! - c.info.lastReceivedAt;
        const recorded = s.events.find((e) => isS2c(e) && e.line.startsWith('ERROR'))!.t - s.events.find((e) => e.kind === 'line' && e.dir === 'c2s')!.t;
        t.diagnostic(`timed out ${after} ms after the client's PING (Synapse: ${recorded} ms, ${recorded / SCALE} at this scale); PINGs: ${c.peer.lines.length - 2}`);
        assert.ok(
          after >= KEEPALIVE.pingTimeoutMs && after <= KEEPALIVE.pingTimeoutMs + KEEPALIVE.sweepIntervalMs + TIMER_SLACK_MS,
          `ping-timeout: ours timed out ${after} ms after the client's PING (timeout ${KEEPALIVE.pingTimeoutMs} ms); Synapse's 5 s loop took ${recorded / SCALE} ms at this scale (25-30 s)`,
        );
      },
    },
  ],
};

const idleNoPing: Part = {
  options: () => ({ server: KEEPALIVE, timeScale: SCALE }),
  checks: [
    {
      tags: ['keepalive', 'no-timeout-without-ping'],
      run(r, s) {
        assertRecordedShape(s, null);
        const c = conn1(r);
        assert.equal(c.peer.lines[0], `SERVER ${s.peer.server_name}`);
        assert.ok(c.peer.lines.slice(1).every((l) => /^PING \d+$/.test(l)), `keepalive: only PINGs after the greeting: ${JSON.stringify(c.peer.lines)}`);
        assertPingCadence(c, 'keepalive');
        const lived = c.times.at(-1)!;
        assert.ok(lived > KEEPALIVE.pingTimeoutMs, `no-timeout-without-ping: the session outlived the timeout (${lived} ms)`);
        assert.equal(c.endedBy, 'replayer', 'no-timeout-without-ping: a client that never PINGs is never timed out');
      },
    },
  ],
};

// ------------------------------------------------------------ congestion (D6, D7)

/** Queue limits small enough for a client that stops reading to cross them quickly (Synapse: 10,000 commands). */
const CONGESTION = { ...KEEPALIVE, maxQueueCommands: 1_000, maxQueueBytes: 256 * 1024 };

/** Every writer-form line the session's master wrote. */
function rowsOf(s: Session): string[] {
  return rowsWrittenBefore(s.events, Infinity);
}

/** The client reconnects and resumes from the last token it has: the rest, each row once, then POSITION at the head. */
async function assertResumes(r: Replay, s: Session, from: number, message: string): Promise<void> {
  const written = rowsOf(s);
  const stream = /^RDATA (\S+) /.exec(written[0]!)![1]!;
  const p = await r.fixture.peer();
  p.send(`REPLICATE ${stream} ${from}`);
  const head = tokenOf(written.at(-1)!);
  await p.line(`POSITION ${stream} ${head}`, 0, 20_000);
  const rows = p.lines.filter((l) => l.startsWith('RDATA ')).map((l) => `${l}\n`);
  assertLines(s, rows, written.slice(from), `${message}: resumed from ${from}, it gets every later row once`);
}

/** Before the client reads again: our server has cut it, and (never-reads) given up on the close it could not flush. */
const untilCut =
  (aborted: boolean) =>
  async (step: { kind: string }, r: Replay): Promise<void> => {
    if (step.kind !== 'resume') return;
    const c = conn1(r);
    const what = `D7: our server to cut the client that stopped reading (it had read ${c.peer.receivedBytes} bytes; limits ${JSON.stringify(CONGESTION)})`;
    await eventually(() => r.slowConsumers.length > 0, what, 10_000);
    if (aborted) {
      // A close that cannot flush to a client that does not read is aborted after pingTimeoutMs (Synapse: 25-30 s).
      await eventually(() => !r.fixture.server.connections().includes(c.info), 'congestion-commands-only: our server to abort the close it cannot flush', KEEPALIVE.pingTimeoutMs + 2_000);
    }
  };

/** Slow readers: the rows written before the client stops reading have all arrived when it stops; after it, our edit expects nothing. */
function slowReader(aborted: boolean): Part {
  const stop = (e: SessionEvent): boolean => e.kind === 'event' && e.event === 'note' && /stops reading/.test(String(e.fields['text']));
  return {
    options: (s) => ({
      server: CONGESTION,
      timeScale: SCALE,
      before: untilCut(aborted),
      events: oursBy(
        // Synapse's generator waited for the subscriber (--wait-subscribers): the rows start after its POSITION.
        (events) => {
          const rows = events.findIndex((e) => e.kind === 'event' && e.event === 'rows_written');
          const position = events.findIndex((e) => isS2c(e) && e.line.startsWith('POSITION '));
          if (rows > position) return events;
          const out = events.filter((_, i) => i !== rows);
          out.splice(position, 0, events[rows]!);
          return out;
        },
        without((l) => l.startsWith('RDATA ') || l.startsWith('ERROR ')),
        insertBefore(stop, (session, at) => rowsWrittenBefore(session.events, at.t)),
      )(s),
    }),
    checks: [
      {
        tags: ['congestion-commands-only', 'failed-to-keep-up'],
        async run(r, s, t) {
          const c = conn1(r);
          const cut = r.slowConsumers[0]!;
          t.diagnostic(`${s.name}: cut at ${JSON.stringify(cut)} after ${c.peer.lines.length} lines`);
          assert.equal(r.slowConsumers.length, 1, 'D7: cut once');
          // Past the queue limits ours reads a slow client's rows from the log; one that stopped reading is cut by the stall limit.
          assert.equal(cut.limit, 'stall', `D7: cut by the stall limit (${JSON.stringify(cut)}), not by Synapse's command count`);
          assert.equal(c.disconnect?.reason, 'slow_consumer');
          const lines = c.peer.lines.filter((l) => !l.startsWith('PING ')).map((l) => `${l}\n`);
          assert.deepEqual(lines.slice(0, 2), [`SERVER ${s.peer.server_name}\n`, 'POSITION events 0\n']);
          const rows = lines.slice(2).filter((l) => l.startsWith('RDATA '));
          const before = c.expected.filter((l) => l.startsWith('RDATA ')).length;
          assert.ok(rows.length >= before, `D7: the client has at least the ${before} rows written before it stopped reading (${rows.length})`);
          assertLines(s, rows, rowsOf(s).slice(0, rows.length), 'D7: its rows are the first ones written, in order, none lost or repeated');
          if (aborted) {
            // The ERROR goes after what the socket holds: it arrives only if the kernel took those bytes before ours aborted the close.
            const rest = lines.slice(2 + rows.length);
            assert.ok(rest.length === 0 || (rest.length === 1 && rest[0] === 'ERROR Failed to keep up\n'), `failed-to-keep-up: after its rows, at most the ERROR: ${JSON.stringify(rest)}`);
          } else {
            assert.deepEqual(lines.slice(2 + rows.length), ['ERROR Failed to keep up\n'], 'failed-to-keep-up: the exact ERROR is its last line before EOF');
            assert.equal(c.peer.closedBy, 'eof', 'failed-to-keep-up: then EOF');
          }
          await assertResumes(r, s, rows.length === 0 ? 0 : tokenOf(rows.at(-1)!), 'D7: ours lets a cut client resume (Synapse: 10,001 rows behind, D5 refused it)');
        },
      },
    ],
  };
}

// ------------------------------------------------------------ D2

/** Both places our POSITION can take around a batch written while the catch-up runs: after the rows before it, or at the end. */
const liveBatchDuringCatchUp: Part = {
  // The batch is written just after the REPLICATE, so it lands before, during or after our catch-up: each way, every row once.
  options: (s) => ({ events: oursBy(without((l) => l.startsWith('RDATA receipts 21 ')), ourCatchUp('receipts', 0, rowsOf))(s) }),
  checks: [
    {
      tags: ['live-batch-lost-in-catchup', 'catchup-unbatched'],
      run(r, s) {
        const c = conn1(r);
        const got = received(c);
        const rows = got.filter((l) => l.startsWith('RDATA '));
        assertLines(s, rows, c.expected.filter((l) => l.startsWith('RDATA ')), 'D2: every row of the live batch once, D1: catch-up batch-framed like the live batch');
        const positions = got.filter((l) => l.startsWith('POSITION '));
        assert.equal(positions.length, 1, `D2: one POSITION: ${JSON.stringify(positions)}`);
        const at = got.indexOf(positions[0]!);
        const lastRow = got.slice(0, at).filter((l) => l.startsWith('RDATA ')).at(-1)!;
        assert.equal(tokenOf(positions[0]!), tokenOf(lastRow), 'D2: the POSITION is the token of the rows before it (the switch to live loses and repeats nothing)');
        assertLines(s, got.slice(0, 2), c.expected.slice(0, 2), 'greeting');
        assertEnd(c, 'D2');
      },
    },
  ],
};

// ------------------------------------------------------------ master cases

/** A part replayed with our session: the recording with `edits` applied. */
function edited(edits: Edit[], checks: Check[], server?: ReplayOptions['server']): Part {
  return { options: (s) => ({ ...(server !== undefined ? { server } : {}), events: oursBy(...edits)(s) }), checks };
}

const D8 = 'D8: ERROR <reason>, then the close, instead of a silent drop';
const D12 = 'D12: digits only: ERROR, then the close';
const NO_LIMIT = "D5: no row-count limit: every row, then POSITION, and the connection stays (no 'fallen behined' ERROR, so no text to word)";
const REFUSED_TOKEN = (text: string): Edit => refused(badToken(text, 'REPLICATE', ' or NOW'));

const MASTER: Record<string, Part[]> = {
  'm-greeting': [{ checks: [wire(['greeting'], KEPT)] }],
  'm-replicate-now-live': [{ checks: [wire(['replicate-now', 'live-rows', 'live-batch'], KEPT)] }],
  'm-catchup-from-token': [{ checks: [wire(['catchup', 'live-rows'], KEPT)] }],
  'm-catchup-at-head': [{ checks: [wire(['catchup'], KEPT)] }],
  'm-second-replicate': [{ checks: [wire(['catchup', 'resubscribe'], KEPT)] }],
  'm-token-lowercase-now': [{ checks: [wire(['replicate-now'], KEPT)] }],
  'm-blank-lines': [{ checks: [wire(['blank-lines'], KEPT)] }],
  'm-token-ahead': [
    {
      checks: [
        wire(['token-ahead', 'live-rows'], KEPT),
        {
          tags: ['token-ahead'],
          run: (r) => assert.deepEqual(r.tokensAhead, [{ stream: 'events', token: 99999999, head: 20 }], "token-ahead: reported ('tokenAhead')"),
        },
      ],
    },
  ],
  'm-client-error-stays-open': [
    {
      checks: [
        wire(['client-error-logged'], KEPT),
        {
          tags: ['client-error-logged'],
          run: (r) => assert.deepEqual(r.remoteErrors, ['client says something went wrong'], "client-error-logged: reported ('remoteError'), the connection stays"),
        },
      ],
    },
  ],
  'm-catchup-9999-rows': [{ checks: [wire(['catchup', 'catchup-row-limit'], `${KEPT} (D5 boundary: 9,999 rows, under Synapse's limit)`)] }],
  'm-catchup-10000-rows': [edited([errorBecomes((s) => catchUp(s.setup!.history, 'events', 50)), staysOpen], [wire(['catchup-row-limit', 'error-texts'], NO_LIMIT)])],
  'm-catchup-over-limit': [edited([errorBecomes((s) => catchUp(s.setup!.history, 'events', 0)), staysOpen], [wire(['catchup-row-limit', 'error-texts'], NO_LIMIT)])],
  'm-catchup-unbatched-then-live-batch': [
    edited([ourCatchUp('caches', 2)], [wire(['catchup-unbatched', 'live-batch'], 'D1: catch-up keeps batch framing (the same rows and tokens, batch-framed); live-batch: kept')]),
  ],
  'm-live-batch-during-catchup': [liveBatchDuringCatchUp],
  'm-duplicate-at-switch': [
    edited([without((l) => l.startsWith('RDATA events 21 '))], [wire(['duplicate-at-switch'], 'D3: nothing at or below the POSITION token after it (Synapse sent row 21 after POSITION events 21)')]),
  ],
  'm-account-data-order': [
    edited(
      [ourCatchUp('account_data', 0), ourCatchUp('tag_account_data', 0)],
      [
        wire(['catchup-order-account-data'], 'D4: catch-up in token order, then one POSITION'),
        {
          tags: ['catchup-order-account-data'],
          run(r, s) {
            const sorted = (l: string[]): string[] => l.filter(notPing).sort();
            assert.deepEqual(sorted(received(conn1(r))), sorted(s.events.filter(isS2c).map((e) => e.line)), 'D4: the same lines as Synapse sent, only in token order');
          },
        },
      ],
    ),
  ],
  'm-catchup-unlimited-overflow': [
    edited(
      [without((l) => l.startsWith('RDATA typing ')), errorBecomes((s) => catchUp(s.setup!.history, 'typing', 0)), staysOpen],
      [
        wire(['catchup-overflows-queue', 'congestion-commands-only'], 'D6: paced catch-up, no cut: all 12,000 rows, then POSITION, however small the queue'),
        {
          tags: ['catchup-overflows-queue', 'congestion-commands-only'],
          run: (r) => assert.deepEqual(r.slowConsumers, [], 'D6, D7: a catch-up never trips the congestion limits'),
        },
      ],
      CONGESTION,
    ),
  ],
  'm-slow-reader': [slowReader(false)],
  'm-slow-reader-never-reads': [slowReader(true)],
  'm-long-row': [{ checks: [wire(['line-limit-16k'], `${KEPT}: D10: we send rows of any length as written (keep rows for v1 workers under 16 KiB)`)] }],
  'm-line-16384': [{ checks: [wire(['line-limit-16k'], `${KEPT}: a 16,384-byte line is accepted`)] }],
  'm-line-16385': [
    edited([staysOpen], [wire(['line-limit-16k'], 'D10: longer lines are accepted (up to our 1 MiB): the connection stays')]),
    edited(
      [errorBeforeClose('line too long: over the limit of 16384 bytes')],
      [wire(['line-limit-16k', 'silent-drop'], "D8: with Synapse's limit of 16,384 bytes, ours says ERROR, then closes")],
      { maxLineBytes: 16_384 },
    ),
  ],
  'm-no-space-ping': [edited([staysOpen], [wire(['ping-without-argument', 'silent-drop'], 'D9: PING without an argument is accepted: no drop at all, so no D8 ERROR')])],
  'm-no-space-word': [edited([errorBeforeClose("unknown command: 'HELLO'")], [wire(['silent-drop'], D8)])],
  'm-invalid-utf8': [edited([errorBeforeClose('line is not valid UTF-8')], [wire(['silent-drop'], D8)])],
  'm-percent-in-bad-line': [edited([errorBeforeClose(`bad JSON in INVALIDATE_CACHE: ${jsonError('100%')}`)], [wire(['silent-drop'], `${D8} (the '%' quoted)`), nothingPassedOn])],
  'm-crlf-now': [
    edited(
      [errorBecomes(() => ['POSITION events 20\n']), staysOpen],
      [wire(['crlf-kept', 'error-texts', 'error-close'], 'D11: the CR is stripped, so NOW works: POSITION, no ERROR (nothing to word) and no close')],
    ),
  ],
  'm-crlf-numeric': [{ checks: [wire(['crlf-kept', 'lenient-tokens', 'catchup'], `${KEPT}: D11: the CR is stripped before the token is read (D12: no leniency needed)`)] }],
  'm-token-plus-sign': [edited([REFUSED_TOKEN('+18')], [wire(['lenient-tokens'], D12)])],
  'm-token-negative': [edited([REFUSED_TOKEN('-5')], [wire(['lenient-tokens', 'catchup'], `${D12}, so no catch-up`)])],
  'm-token-extra-space': [edited([REFUSED_TOKEN(' 18')], [wire(['lenient-tokens'], D12)])],
  'm-token-underscore': [edited([REFUSED_TOKEN('1_8')], [wire(['lenient-tokens', 'py3-only'], `${D12} (py3-only: as Synapse on Python 2 refused it)`)])],
  'm-replicate-all-token': [
    edited([refused("REPLICATE ALL takes NOW, not '18'")], [wire(['lenient-tokens', 'replicate-all', 'all-order'], 'D12: ALL only with NOW: ERROR, then the close, and no POSITION (so no order)')]),
  ],
  'm-replicate-all-now': [
    { checks: [wire(['replicate-all', 'all-order', 'live-batch'], `${KEPT}, except D15: the POSITIONs compared as a set`, positionsAsSet), onePositionPerStream] },
  ],
  'm-worker-style-connect': [
    {
      checks: [
        wire(['catchup', 'replicate-now', 'cross-stream-order'], `${KEPT}, each stream's lines in order (cross-stream-order: answers need not come in the order asked)`, perStream),
        ...clientCommands(['client-commands'], 1),
      ],
    },
  ],
  'm-client-commands': [
    {
      checks: [
        wire(['client-commands'], `${KEPT}: no answer on the wire`),
        ...clientCommands(['client-commands'], 0),
        { tags: ['name-with-spaces'], run: (r) => assert.equal(conn1(r).info.name, 'my worker', 'name-with-spaces: the name is everything after the first space') },
        {
          tags: ['presence-clear-twice'],
          run(r, s) {
            assert.equal(observed(s, 'presence.update_external_syncs_clear').length, 2, "the recorded master's presence clean-up ran twice");
            assertPresence(r, s, ['presence-clear-twice'], 0);
            assert.equal(conn1(r).disconnect?.reason, 'peer_closed', 'presence-clear-twice: ours closes the connection once, with no clean-up to repeat (nobody syncing)');
          },
        },
      ],
    },
  ],
  'm-remove-pusher': [{ checks: [wire(['client-commands'], `${KEPT}: the pushers row the backend wrote for REMOVE_PUSHER comes live`), ...clientCommands(['client-commands'], 0)] }],
  'm-worker-escapes-and-spaces': [
    {
      checks: [
        wire(['client-commands'], KEPT),
        ...clientCommands(['client-commands', 'unescaped-arguments'], 0),
        {
          tags: ['unescaped-arguments'],
          run(r) {
            assert.deepEqual(
              r.commands.find((c) => c.name === 'REMOVE_PUSHER'),
              { name: 'REMOVE_PUSHER', appId: 'm.http', pushKey: 'k', userId: 'e y @carol:example.com' },
              'unescaped-arguments: v1 has no escaping; ours splits at the same spaces as Synapse and passes the line on unchanged',
            );
          },
        },
      ],
    },
  ],
  'm-unknown-command': [errorCase(['error-close'], "unknown command: 'FOO'")],
  'm-bad-then-good-same-write': [errorCase(['error-close'], "unknown command: 'FOO'")],
  'm-rdata-from-client': [errorCase(['wrong-direction', 'error-close'], 'RDATA may not be sent by a client (AUTH as a writer first)')],
  'm-position-from-client': [errorCase(['wrong-direction', 'error-close'], 'POSITION may not be sent by a client (AUTH as a writer first)')],
  'm-server-from-client': [errorCase(['wrong-direction', 'error-close'], 'SERVER may not be sent by a client')],
  'm-sync-from-client': [errorCase(['wrong-direction', 'error-close'], 'SYNC may not be sent by a client')],
  'm-unknown-stream': [errorCase(['unknown-stream', 'error-texts', 'error-close'], 'unknown stream: nosuch')],
  'm-federation-not-served': [errorCase(['unknown-stream', 'error-texts', 'error-close'], 'unknown stream: federation')],
  'm-bad-token': [errorCase(['error-texts', 'error-close'], badToken('abc', 'REPLICATE', ' or NOW'))],
  'm-no-token': [errorCase(['error-texts', 'error-close'], 'missing arguments for REPLICATE: expected REPLICATE <stream|ALL> <token|NOW>')],
  'm-two-spaces-after-command': [errorCase(['error-texts', 'error-close'], 'missing arguments for REPLICATE: expected REPLICATE <stream|ALL> <token|NOW>')],
  'm-user-sync-stop': [errorCase(['error-texts', 'error-close'], "bad state 'stop' in USER_SYNC: expected start or end")],
  'm-user-sync-bad-ts': [errorCase(['error-texts', 'error-close'], badToken('soon', 'USER_SYNC'))],
  'm-federation-ack-bad': [errorCase(['error-texts', 'error-close'], badToken('abc', 'FEDERATION_ACK'))],
  'm-user-ip-wrong-arity': [errorCase(['error-texts', 'error-close'], 'bad JSON in USER_IP: expected [access_token, ip, user_agent, device_id, last_seen]')],
  'm-sigterm': [
    edited(
      [errorBeforeClose('server shutting down')],
      [
        wire(['shutdown-no-error'], 'D14: ERROR server shutting down reaches the client before EOF'),
        { tags: ['shutdown-no-error'], run: (r) => assert.equal(conn1(r).disconnect?.reason, 'shutdown') },
      ],
    ),
  ],
  'm-abort-reconnect': [
    edited(
      [errorBeforeClose(DROPPED)],
      [
        wire(['abort', 'resume'], `${KEPT}, except that ours says why it drops the connections (ERROR ${DROPPED}, as D8); the reconnection resumes`),
        {
          tags: ['resume'],
          run(r, s) {
            const worker = new V1Worker();
            for (const l of received(conn1(r))) worker.feed(l);
            const again = s.events.find((e): e is LineEvent => e.kind === 'line' && e.conn === 2 && e.line.startsWith('REPLICATE '))!;
            assert.equal(`REPLICATE events ${worker.tokens['events']}\n`, again.line, 'resume: the client resumes from the last token our server gave it, as the recorded client did');
          },
        },
      ],
    ),
  ],
  'm-ping-timeout': [pingTimeout],
  'm-idle-no-ping': [idleNoPing],
};

// ------------------------------------------------------------ worker cases

/** The worker's groups as `observed` lists them (server, rdata, position), per connection. */
function observedGroups(s: Session): Map<number, WorkerGroup[]> {
  const out = new Map<number, WorkerGroup[]>();
  let current: WorkerGroup[] = [];
  for (const o of s.observed) {
    const type = o['type'];
    if (type === 'connected') out.set(o['connection'] as number, (current = []));
    else if (type === 'server') current.push({ type, name: o['name'] as string });
    else if (type === 'rdata' || type === 'position') current.push({ type, stream: o['stream'] as string, token: o['token'] as number, rows: o['rows'] as [] });
  }
  return out;
}

/** Groups of one channel (a stream's rows and positions, or the server names): streams are independent. */
function channels(groups: readonly WorkerGroup[]): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  for (const g of groups) {
    if (g.type === 'error' || g.type === 'sync') continue;
    const key = g.type === 'server' ? 'SERVER' : g.stream;
    (out[key] ??= []).push(g);
  }
  return out;
}

/** The recorded scripted master's RDATA lines on a connection, less a batch the connection ended inside (our server sends a batch once its numbered row is written). */
function recordedRows(s: Session, c: number): string[] {
  const rows = s.events.filter((e): e is LineEvent => isS2c(e) && e.conn === c && e.line.startsWith('RDATA ')).map((e) => e.line);
  const complete = new Map<string, number>();
  rows.forEach((l, i) => {
    if (!l.split(' ', 3)[2]!.startsWith('batch')) complete.set(l.split(' ', 2)[1]!, i);
  });
  return rows.filter((l, i) => i <= (complete.get(l.split(' ', 2)[1]!) ?? -1));
}

const WORKER: Check<WorkerReplay>[] = [
  {
    tags: [
      'worker-connect',
      'worker-no-wait-for-server',
      'worker-batch-grouping',
      'worker-batch-dropped-on-reconnect',
      'worker-position',
      'worker-position-moves-back',
      'worker-16k-drop',
      'worker-wrong-remote',
      'token-ahead',
    ],
    run(r, s) {
      const want = observedGroups(s);
      assert.deepEqual([...r.groupsByConn.keys()], [...want.keys()], 'one connection per recorded connection');
      for (const [c, groups] of r.groupsByConn) {
        assert.deepEqual(
          channels(groups),
          channels(want.get(c)!),
          `the worker fed with our bytes hands over, on conn ${c}, the groups Synapse's worker handed over (server name, rdata and position per stream, in order)`,
        );
      }
    },
  },
  {
    tags: ['worker-batch-grouping', 'worker-batch-dropped-on-reconnect', 'worker-16k-drop', 'line-limit-16k'],
    run(r, s) {
      for (const c of r.conns.values()) {
        const ours = received(c).filter((l) => l.startsWith('RDATA '));
        const want = recordedRows(s, c.conn);
        const stream = (l: string): string => l.split(' ', 2)[1]!;
        for (const name of new Set([...ours, ...want].map(stream))) {
          assertLines(
            s,
            ours.filter((l) => stream(l) === name),
            want.filter((l) => stream(l) === name),
            `conn ${c.conn}, ${name}: our RDATA lines are the scripted master's, byte for byte (a batch it was cut inside excepted: ours sends a batch whole)`,
          );
        }
      }
    },
  },
  {
    tags: ['worker-resume-tokens', 'worker-batch-dropped-on-reconnect', 'worker-position', 'worker-position-moves-back', 'worker-16k-drop'],
    run(r) {
      assert.equal(r.resumes.length, r.conns.size - 1, 'a resume at each reconnection');
      for (const { conn, recorded, ours } of r.resumes) {
        assert.deepEqual(ours, recorded, `conn ${conn}: fed with our bytes the worker resumes from the tokens Synapse's worker resumed from`);
      }
    },
  },
  forwardedVerbatim(['worker-connect', 'worker-commands'], workerTimeline),
  {
    tags: ['worker-wrong-remote'],
    run(r) {
      for (const e of r.errorsSent) {
        if (e.line === 'ERROR Wrong remote\n') assert.equal(e.dropped, 'Wrong remote', `conn ${e.conn}: the worker saw our SERVER name as the wrong remote, as Synapse's did`);
      }
      assert.deepEqual(
        r.remoteErrors,
        r.errorsSent.map((e) => e.line.slice('ERROR '.length, -1)),
        "worker-wrong-remote: our server logs the worker's ERROR ('remoteError') and keeps the connection until the worker closes it",
      );
      for (const c of r.conns.values()) assert.equal(c.endedBy, 'replayer', `conn ${c.conn}: our server never ends a worker's connection here`);
    },
  },
  {
    tags: ['token-ahead'],
    run(r, s) {
      const want: { stream: string; token: number; head: number }[] = [];
      for (const e of workerTimeline(s)) {
        const m = e.kind === 'line' && e.dir === 'c2s' ? /^REPLICATE (\S+) (\d+)\n$/.exec(e.line) : null;
        if (m === null) continue;
        const live = s.replay!.live.filter((l) => l.t < e.t).flatMap((l) => l.lines);
        const head = tokenOf(catchUp([...s.replay!.history, ...live], m[1]!, 0).at(-1)!);
        if (Number(m[2]) > head) want.push({ stream: m[1]!, token: Number(m[2]), head });
      }
      assert.deepEqual(r.tokensAhead, want, "token-ahead: each token ahead of our head is answered with POSITION at the head, and reported ('tokenAhead')");
    },
  },
];

// ------------------------------------------------------------ cases

function tagsOf(checks: readonly { tags: readonly string[] }[]): Set<string> {
  return new Set(checks.flatMap((c) => c.tags));
}

const MASTER_TAGS = new Map(Object.entries(MASTER).map(([name, parts]) => [name, tagsOf(parts.flatMap((p) => p.checks))]));

/** Every tag a server case asserts. */
export const SERVER_TAGS: ReadonlySet<string> = new Set([...[...MASTER_TAGS.values()].flatMap((t) => [...t]), ...tagsOf(WORKER)]);

/** The session's tags this case does not assert (and does not leave to the client cases). */
function unasserted(s: Session, tags: ReadonlySet<string>): string[] {
  return s.shows.filter((tag) => !tags.has(tag) && !CLIENT_SIDE_TAGS.has(tag));
}

export function serverCase(s: Session): SessionCase | null {
  if (s.side === 'master') {
    const parts = MASTER[s.name];
    return {
      title: "our server in place of Synapse's master",
      timeoutMs: 30_000,
      async run(t) {
        assert.ok(parts !== undefined, `${s.name}: no server case says what our server does in this session`);
        assert.deepEqual(unasserted(s, MASTER_TAGS.get(s.name)!), [], `${s.name}: tags the case does not assert`);
        for (const part of parts) {
          const r = await replayMaster(t, s, part.options?.(s) ?? {});
          for (const check of part.checks) await check.run(r, s, t);
        }
      },
    };
  }
  if (s.replay === null) return null;
  return {
    title: "our server in place of the scripted master, fed to a v1 worker",
    async run(t) {
      assert.deepEqual(unasserted(s, tagsOf(WORKER)), [], `${s.name}: tags the case does not assert`);
      const r = await replayWorker(t, s);
      for (const check of WORKER) await check.run(r, s, t);
    },
  };
}
