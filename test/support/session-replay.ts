// Replays the client side of a recorded Synapse 2017 session
// (./synapse-2017.ts) against our ReplicationServer over real sockets on
// 127.0.0.1, so that our server stands in for the Synapse side:
//
//   - master side (m-*): our server in place of Synapse's master, loaded with
//     `setup.history` through a writer connection;
//   - worker side (w-*, with `replay`): our server in place of the scripted
//     master, loaded with `replay.history`, its bytes fed to a V1Worker.
//
// Recorded times are compressed, not waited (unless `timeScale` asks for
// them, divided), but the order is kept: before each step the replayer waits
// until our server has answered what the recording shows answered so far,
// and fails saying what it expected and what it got. Everything it starts is
// stopped with t.after.
//
//   const r = await replayMaster(t, s, { events: ourEvents });   // then assert on r.conns, forwarded(r)...
//   const w = await replayWorker(t, s);                          // then assert on w.worker, w.groupsByConn...

import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { ClientActionCommand } from '../../src/core/commands.js';
import { JUMP_STREAMS, SYNAPSE_STREAMS, type ConnectionInfo, type DisconnectReason, type PresenceChange, type SlowConsumerDetails } from '../../src/core/hub-types.js';
import { hubOf, type ReplicationServerOptions } from '../../src/server.js';
import { MemoryStreamLog } from '../../src/core/stream-log.js';
import { eventually, startServer, type Fixture, type RawPeer } from '../bindings/support/raw-peer.js';
import { sameLine, V1Worker, peerArg, type LineEvent, type OtherEvent, type Session, type SessionEvent, type WorkerGroup } from './synapse-2017.js';

const WRITER_TOKEN = 'session-replay-writer';
/** What our server says to the connections it drops where the recording's master got SIGUSR2 (it aborted them). */
export const DROPPED = 'connection dropped by the operator';
/** The command names of the client actions, which our server passes on to writers. */
export const CLIENT_ACTIONS: readonly string[] = ['USER_SYNC', 'FEDERATION_ACK', 'REMOVE_PUSHER', 'INVALIDATE_CACHE', 'USER_IP'];
const DEFAULT_WAIT_MS = 5_000;
/** Quiet time before the replayer ends a connection, so that a line our server should not have sent shows up. */
const SETTLE_MS = 25;

export type Step =
  | { kind: 'connect'; t: number; conn: number }
  | { kind: 'send'; t: number; conn: number; bytes: Buffer; lines: LineEvent[] }
  | { kind: 'write'; t: number; lines: string[]; backend: boolean }
  | { kind: 'signal'; t: number; signal: string }
  | { kind: 'close'; t: number; conn: number; by: 'server' | 'client' }
  | { kind: 'pause' | 'resume'; t: number; conn: number }
  | { kind: 'expect'; t: number; conn: number; line: LineEvent };

export interface ReplayOptions {
  /** Server options over the session's name and streams (keep-alive timings, queue limits). */
  server?: ReplicationServerOptions;
  /** Master side: our session, i.e. the recorded events with our server's answers in place of the master's (default: as recorded). */
  events?: SessionEvent[];
  /** Recorded ms per real ms: each step then waits for its recorded time, divided (keep-alive sessions). */
  timeScale?: number;
  /** Runs before a step, after the wait for what came before it. */
  before?: (step: Step, r: Replay) => Promise<void>;
}

export interface ReplayConn {
  readonly conn: number;
  readonly peer: RawPeer;
  /** Our server's side of it. */
  readonly info: ConnectionInfo;
  /** When each of peer.lines arrived, in ms since the replay began. */
  readonly times: number[];
  /** Master side: the s2c lines our session has for it, LF included. */
  readonly expected: string[];
  /** Who ends it in the session played: the server, the client, or nobody (the replayer ends it after the last step). */
  sessionEnd: 'server' | 'client' | null;
  /** Who ended it: our server (before the replayer would have), or the replayer. */
  endedBy: 'server' | 'replayer' | null;
  /** Our server's disconnect event for it. */
  disconnect: { reason: DisconnectReason; detail: string } | null;
  paused: boolean;
}

export interface Replay {
  readonly fixture: Fixture;
  readonly writer: RawPeer;
  readonly conns: Map<number, ReplayConn>;
  readonly commands: ClientActionCommand[];
  readonly presence: PresenceChange[];
  readonly remoteErrors: string[];
  readonly tokensAhead: { stream: string; token: number; head: number }[];
  readonly slowConsumers: SlowConsumerDetails[];
  /** Date.now() when the first step ran. */
  readonly startedAt: number;
}

export interface WorkerReplay extends Replay {
  /** The v1 worker fed with everything our server sent, connectionLost() between connections. */
  readonly worker: V1Worker;
  /** Its groups, per connection. */
  readonly groupsByConn: Map<number, WorkerGroup[]>;
  /** At each reconnection: the tokens the recorded REPLICATE lines ask from, and the worker's tokens then. */
  readonly resumes: { conn: number; recorded: Record<string, number>; ours: Record<string, number | undefined> }[];
  /** Each ERROR the recorded worker sent, with why the worker model dropped our connection by then. */
  readonly errorsSent: { conn: number; line: string; dropped: string | null }[];
}

/** The lines a peer received, LF included (as the recordings give them). */
export function received(c: ReplayConn): string[] {
  return c.peer.lines.map((l) => `${l}\n`);
}

/** Client-action lines our server passed to the writer, LF included. */
export function forwarded(r: Replay): string[] {
  return r.writer.lines.filter((l) => CLIENT_ACTIONS.includes(l.split(' ', 1)[0]!)).map((l) => `${l}\n`);
}

/**
 * How many client-action lines the writer should have by now: every action
 * but USER_SYNC, which writers hear folded over connections (a user's first
 * start, its last end), as the presence events so far say.
 */
function writerActions(r: Replay): number {
  let n = r.commands.filter((c) => c.name !== 'USER_SYNC').length;
  const connections = new Map<string, number>();
  for (const p of r.presence) {
    const before = connections.get(p.userId) ?? 0;
    const after = p.syncing ? before + 1 : Math.max(0, before - 1);
    if ((before === 0) !== (after === 0)) n++;
    if (after === 0) connections.delete(p.userId);
    else connections.set(p.userId, after);
  }
  return n;
}

/** The tokens each stream reaches through writer-form lines (`RDATA s T`, `POSITION s T`). */
function headsOf(lines: readonly string[], into: Map<string, number>): Map<string, number> {
  for (const l of lines) {
    const m = /^(?:RDATA (\S+) (\d+) |POSITION (\S+) (\d+)\n)/.exec(l);
    if (m) into.set(m[1] ?? m[3]!, Number(m[2] ?? m[4]));
  }
  return into;
}

/** When each line of a rows_written event was written: all at `t`, or at `rate_per_s` from `t`. */
function schedule(e: OtherEvent): { due: number; line: string }[] {
  const lines = e.fields['lines'] as string[];
  const rate = e.fields['rate_per_s'] as number | undefined;
  return lines.map((line, i) => ({ due: rate === undefined ? e.t : e.t + (i * 1000) / rate, line }));
}

/** The writer-form lines of `events` written before recorded time `t` (rate-paced ones by their own time). */
export function rowsWrittenBefore(events: readonly SessionEvent[], t: number): string[] {
  return events
    .filter((e): e is OtherEvent => e.kind === 'event' && e.event === 'rows_written')
    .flatMap((e) => schedule(e).filter((x) => x.due < t).map((x) => x.line));
}

/** What to do with a note: the slow-reader sessions stop and resume reading. */
function noteStep(e: OtherEvent): 'pause' | 'resume' | null {
  const text = String(e.fields['text'] ?? '');
  if (/stops reading/.test(text)) return 'pause';
  if (/resumes reading/.test(text)) return 'resume';
  return null;
}

/**
 * The steps of a session: one `send` per recorded write (master side: its
 * `write` group; worker side: the worker's lines of one instant), writes of
 * rows at their place (a rate-paced one in parts, each written before the
 * step it precedes), and the s2c lines as expectations.
 */
function planSteps(events: readonly SessionEvent[]): Step[] {
  const steps: Step[] = [];
  let pending: { due: number; line: string }[] = [];
  const flushDue = (before: number, t: number): void => {
    const due = pending.filter((p) => p.due < before);
    if (due.length === 0) return;
    pending = pending.filter((p) => p.due >= before);
    steps.push({ kind: 'write', t, lines: due.map((p) => p.line), backend: false });
  };
  const makesStep = (e: SessionEvent): boolean =>
    e.kind === 'line' ? e.dir === 'c2s' : ['connect', 'accept', 'close', 'signal', 'rows_written'].includes(e.event) || (e.event === 'note' && noteStep(e) !== null);
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    if (e.kind === 'line' && e.dir === 's2c') {
      steps.push({ kind: 'expect', t: e.t, conn: e.conn, line: e });
      continue;
    }
    if (!makesStep(e)) continue;
    flushDue(e.t, e.t);
    if (e.kind === 'line') {
      const group = [e];
      for (let n = events[i + 1]; n?.kind === 'line' && n.dir === 'c2s' && n.conn === e.conn && (e.write !== undefined ? n.write === e.write : n.t === e.t); n = events[i + 1]) {
        group.push(n);
        i++;
      }
      steps.push({ kind: 'send', t: e.t, conn: e.conn, bytes: Buffer.concat(group.map((l) => l.bytes)), lines: group });
      continue;
    }
    switch (e.event) {
      case 'connect':
      case 'accept':
        steps.push({ kind: 'connect', t: e.t, conn: e.conn });
        break;
      case 'close':
        steps.push({ kind: 'close', t: e.t, conn: e.conn, by: e.fields['by'] === 'client' ? 'client' : 'server' });
        break;
      case 'signal':
        steps.push({ kind: 'signal', t: e.t, signal: String(e.fields['signal']) });
        break;
      case 'note':
        steps.push({ kind: noteStep(e)!, t: e.t, conn: e.conn });
        break;
      case 'rows_written': {
        if (e.fields['rate_per_s'] === undefined) {
          steps.push({ kind: 'write', t: e.t, lines: e.fields['lines'] as string[], backend: e.fields['by'] === 'backend' });
          break;
        }
        // The part due before the next step goes now; the rest before the steps it precedes.
        pending.push(...schedule(e));
        const next = events.slice(i + 1).find(makesStep);
        flushDue(next?.t ?? Infinity, e.t);
        break;
      }
    }
  }
  flushDue(Infinity, Infinity);
  return steps;
}

/**
 * The worker side's events with `replay.live` merged in: each live write
 * goes before the first line at or after its time, and after a close or
 * accept at the same time (the recordings write "while the worker is away"
 * at the instant of the close).
 */
export function workerTimeline(s: Session): SessionEvent[] {
  const out: SessionEvent[] = [];
  const live = [...(s.replay?.live ?? [])];
  for (const e of s.events) {
    while (live.length > 0 && (e.t > live[0]!.t || (e.t === live[0]!.t && e.kind === 'line'))) {
      const l = live.shift()!;
      out.push({ kind: 'event', t: l.t, conn: e.conn, event: 'rows_written', fields: { by: 'master', lines: l.lines } });
    }
    out.push(e);
  }
  for (const l of live) out.push({ kind: 'event', t: l.t, conn: 0, event: 'rows_written', fields: { by: 'master', lines: l.lines } });
  return out;
}

/** Waits on a peer, failing with `describe()` (what was expected and what came) rather than a bare timeout. */
async function waitOn(peer: RawPeer, check: () => boolean, describe: () => string, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
  try {
    await peer.until(check, 'it', timeoutMs);
  } catch {
    throw new Error(`timed out after ${timeoutMs} ms: ${describe()}`);
  }
}

function tail(lines: readonly string[], n = 6): string {
  const cut = lines.slice(-n).map((l) => (l.length > 160 ? `${l.slice(0, 160)}...` : l));
  return `${lines.length} lines${lines.length > n ? `, the last ${n}` : ''}: ${JSON.stringify(cut)}`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How the replayer knows a connection has answered what the recording shows so far. */
interface Sync {
  /** Whether a recorded `close by server` is our server's to do (master side), or the replayer's (the scripted master's, worker side). */
  readonly serverCloses: boolean;
  /** Called for each expectation, in order. */
  expect(c: ReplayConn, line: LineEvent): void;
  /** Whether `c` has answered what the recording shows so far. */
  ready(c: ReplayConn): boolean;
  describe(c: ReplayConn): string;
  /** The replayer ended `c`. */
  ended(c: ReplayConn): void;
}

class Replayer implements Replay {
  readonly conns = new Map<number, ReplayConn>();
  readonly commands: ClientActionCommand[] = [];
  readonly presence: PresenceChange[] = [];
  readonly remoteErrors: string[] = [];
  readonly tokensAhead: { stream: string; token: number; head: number }[] = [];
  readonly slowConsumers: SlowConsumerDetails[] = [];
  startedAt = 0;
  private readonly infos: ConnectionInfo[] = [];
  private readonly disconnects = new Map<ConnectionInfo, { reason: DisconnectReason; detail: string }>();
  private readonly heads = new Map<string, number>();
  /** Client-action lines sent so far (a backend write answers them, so it waits for the writer to have them). */
  private actionsSent = 0;

  private constructor(
    readonly fixture: Fixture,
    readonly writer: RawPeer,
    private readonly sync: Sync,
    private readonly options: ReplayOptions,
  ) {
    const server = fixture.server;
    server.on('connection', (c) => this.infos.push(c));
    server.on('disconnect', (c, reason, detail) => this.disconnects.set(c, { reason, detail }));
    server.on('command', (cmd) => this.commands.push(cmd));
    server.on('presence', (p) => this.presence.push(p));
    server.on('remoteError', (_c, message) => this.remoteErrors.push(message));
    server.on('tokenAhead', (_c, stream, token, head) => this.tokensAhead.push({ stream, token, head }));
    server.on('slowConsumer', (_c, d) => this.slowConsumers.push(d));
  }

  static async start(t: TestContext, serverName: string, streams: readonly string[], history: readonly string[], sync: Sync, options: ReplayOptions): Promise<Replayer> {
    const fixture = await startServer({
      serverName,
      streams: streams.map((name) => ({ name, tooOld: JUMP_STREAMS.includes(name) ? 'jump' : 'error' })),
      writerToken: WRITER_TOKEN,
      // The sessions last well under 5 s, but a keep-alive PING on a slow run would be a line the recording lacks.
      pingIntervalMs: 60_000,
      ...options.server,
    });
    t.after(() => fixture.close());
    const writer = await fixture.peer();
    writer.send(`AUTH ${WRITER_TOKEN}`);
    const r = new Replayer(fixture, writer, sync, options);
    await r.writeRows(history);
    return r;
  }

  async run(steps: readonly Step[]): Promise<void> {
    this.startedAt = Date.now();
    for (const step of steps) {
      if (step.kind === 'expect') {
        this.sync.expect(this.conns.get(step.conn)!, step.line);
        continue;
      }
      if (this.options.timeScale !== undefined) await sleep(this.startedAt + step.t / this.options.timeScale - Date.now());
      await this.caughtUp(step);
      await this.options.before?.(step, this);
      await this.execute(step);
    }
    await this.caughtUp(null);
    for (const c of this.conns.values()) if (c.endedBy === null) await this.end(c);
  }

  /** Waits until every open connection has answered what the recording shows so far, and the writer has the client actions. */
  private async caughtUp(step: Step | null): Promise<void> {
    const at = step === null ? 'the end of the session' : `the ${step.kind} at t=${step.t}`;
    for (const c of this.conns.values()) {
      if (c.endedBy !== null || c.paused) continue;
      await waitOn(c.peer, () => c.peer.closedBy !== null || this.sync.ready(c), () => `conn ${c.conn} before ${at}: ${this.sync.describe(c)}`);
    }
    await waitOn(
      this.writer,
      () => this.writer.closedBy !== null || forwarded(this).length >= writerActions(this),
      () => `the writer to have the ${writerActions(this)} client actions our server passes on before ${at}; it has ${tail(forwarded(this))}`,
    );
  }

  private async execute(step: Step): Promise<void> {
    switch (step.kind) {
      case 'connect':
        return this.connect(step.conn);
      case 'send':
        this.actionsSent += step.lines.filter((l) => CLIENT_ACTIONS.includes(l.line.split(' ', 1)[0]!)).length;
        this.conns.get(step.conn)!.peer.write(step.bytes);
        return;
      case 'write':
        if (step.backend) {
          // The master's backend wrote this row because of a client action: the writer (the backend here) has it first.
          await waitOn(
            this.writer,
            () => forwarded(this).length >= this.actionsSent,
            () => `the writer to have the ${this.actionsSent} client actions sent before the backend's write; it has ${tail(forwarded(this))}`,
          );
        }
        return this.writeRows(step.lines);
      case 'signal':
        return this.signal(step.signal);
      case 'close': {
        const c = this.conns.get(step.conn)!;
        c.sessionEnd = step.by;
        if (step.by === 'server' && this.sync.serverCloses) {
          await waitOn(c.peer, () => c.peer.closedBy !== null, () => `conn ${c.conn}: our server to close it (t=${step.t}); it stayed open with ${tail(c.peer.lines)}`);
        }
        return this.end(c);
      }
      case 'pause':
      case 'resume': {
        const c = this.conns.get(step.conn)!;
        c.paused = step.kind === 'pause';
        if (c.paused) c.peer.socket.pause();
        else c.peer.socket.resume();
        return;
      }
      case 'expect':
        return;
    }
  }

  private async connect(conn: number): Promise<void> {
    const peer = await this.fixture.peer();
    const port = peer.socket.localPort;
    await eventually(() => this.infos.some((i) => i.remoteAddress.endsWith(`:${port}`)), `our server to accept conn ${conn}`);
    const times: number[] = [];
    peer.socket.on('data', () => {
      while (times.length < peer.lines.length) times.push(Date.now() - this.startedAt);
    });
    const info = this.infos.find((i) => i.remoteAddress.endsWith(`:${port}`))!;
    this.conns.set(conn, { conn, peer, info, times, expected: [], sessionEnd: null, endedBy: null, disconnect: null, paused: false });
  }

  /** Ends a connection from the client side (unless our server already did), and waits until our server has let it go. */
  private async end(c: ReplayConn): Promise<void> {
    if (c.peer.closedBy === null && !c.paused) await sleep(SETTLE_MS);
    c.endedBy = c.peer.closedBy !== null ? 'server' : 'replayer';
    this.sync.ended(c);
    c.peer.socket.end();
    if (c.paused) c.peer.socket.resume();
    await eventually(() => this.disconnects.has(c.info), `our server to let conn ${c.conn} go`);
    c.disconnect = this.disconnects.get(c.info)!;
  }

  private async signal(signal: string): Promise<void> {
    switch (signal) {
      case 'SIGUSR1':
        // The master writes rows: the rows_written event that follows.
        return;
      case 'SIGUSR2':
        // The master aborted every connection: ours can only close them, saying so.
        for (const conn of hubOf(this.fixture.server).connections()) if (conn.role !== 'writer') conn.close('shutdown', DROPPED);
        return;
      case 'SIGTERM':
        void this.fixture.server.close();
        return;
      default:
        throw new Error(`the replayer does not know the signal ${signal}`);
    }
  }

  /** Writes writer-form lines in one write and waits until our server has stored them. */
  private async writeRows(lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    this.writer.write(lines.join(''));
    const want = headsOf(lines, this.heads);
    const server = this.fixture.server;
    const behind = (): string[] => [...want].filter(([s, h]) => server.head(s) !== h).map(([s, h]) => `${s} at ${server.head(s)}, not ${h}`);
    await eventually(() => behind().length === 0, 'the writer', 20_000).catch(() => {
      throw new Error(`our server did not store the writer's lines: ${behind().join(', ')}; the writer has ${tail(this.writer.lines)}`);
    });
  }
}

/** Master side: the s2c lines our session expects on a connection, compared by count (the cases compare the bytes). */
class MasterSync implements Sync {
  readonly serverCloses = true;
  constructor(private readonly s: Session) {}

  expect(c: ReplayConn, line: LineEvent): void {
    (c.expected as string[]).push(line.line);
  }

  /** By count, PINGs aside: a keep-alive PING may come between any two lines. */
  ready(c: ReplayConn): boolean {
    const count = (lines: readonly string[]): number => lines.filter((l) => !l.startsWith('PING ')).length;
    return count(c.peer.lines) >= count(c.expected);
  }

  describe(c: ReplayConn): string {
    const got = received(c);
    const i = c.expected.findIndex((l, n) => got[n] === undefined || !sameLine(this.s, 's2c', l, got[n]!));
    return `expected ${tail(c.expected)}; got ${tail(got)}${i >= 0 ? `; first difference at line ${i}: expected ${JSON.stringify(c.expected[i])}, got ${JSON.stringify(got[i] ?? null)}` : ''}`;
  }

  ended(): void {}
}

/** Worker side: the worker fed with our bytes must have handed over what it handed over when fed the recorded bytes. */
class WorkerSync implements Sync {
  readonly serverCloses = false;
  readonly ours: V1Worker;
  readonly groupsByConn = new Map<number, WorkerGroup[]>();
  private groupsBefore = 0;
  private readonly recorded: V1Worker;
  private readonly fed = new Map<ReplayConn, number>();

  constructor(options: ConstructorParameters<typeof V1Worker>[0]) {
    this.ours = new V1Worker(options);
    this.recorded = new V1Worker(options);
  }

  expect(_c: ReplayConn, line: LineEvent): void {
    this.recorded.feed(line.bytes);
  }

  /** Feeds the worker what has arrived since (lazily: RawPeer reports arrivals before our listeners run). */
  catchUp(c: ReplayConn): void {
    let n = this.fed.get(c) ?? 0;
    for (; n < c.peer.lines.length; n++) this.ours.feed(`${c.peer.lines[n]}\n`);
    this.fed.set(c, n);
  }

  ready(c: ReplayConn): boolean {
    this.catchUp(c);
    return this.ours.groups.length >= this.recorded.groups.length && (this.recorded.dropped === null || this.ours.dropped !== null);
  }

  describe(c: ReplayConn): string {
    const fmt = (w: V1Worker): string => `${w.groups.length} groups, the last ${JSON.stringify(w.groups.slice(-3))}${w.dropped !== null ? `, dropped: ${w.dropped}` : ''}`;
    return `the worker fed with the recorded bytes has ${fmt(this.recorded)}; fed with ours, ${fmt(this.ours)}; our lines: ${tail(c.peer.lines)}`;
  }

  ended(c: ReplayConn): void {
    this.catchUp(c);
    this.groupsByConn.set(c.conn, this.ours.groups.slice(this.groupsBefore));
    this.groupsBefore = this.ours.groups.length;
    this.ours.connectionLost();
    this.recorded.connectionLost();
  }
}

/**
 * Plays a master-side session against our server: named and streamed as the
 * recording's master, holding `setup.history`. `options.events` is our
 * session (default: the recording); a `close by server` in it is waited for.
 */
export async function replayMaster(t: TestContext, s: Session, options: ReplayOptions = {}): Promise<Replay> {
  if (s.side !== 'master' || s.setup === undefined) throw new Error(`${s.name} is not a master-side session`);
  // setup.history is the master's whole history: our logs are complete from 0 (a fresh log would take its
  // oldest token from its first row, and account_data's first row is 2), as a relay's are.
  const server = { createLog: () => new MemoryStreamLog({ startToken: 0 }), ...options.server };
  const r = await Replayer.start(t, s.peer.server_name!, s.peer.streams_served!, s.setup.history, new MasterSync(s), { ...options, server });
  await r.run(planSteps(options.events ?? s.events));
  return r;
}

/**
 * Plays a worker-side session with `replay` against our server in place of
 * the scripted master: Synapse's worker's lines as recorded, `replay.live`
 * written at its place, each connection ended where the recording ends it.
 */
export async function replayWorker(t: TestContext, s: Session, options: ReplayOptions = {}): Promise<WorkerReplay> {
  if (s.replay === null) throw new Error(`${s.name} has no replay`);
  const expectServer = peerArg(s, '--expect-server');
  const sync = new WorkerSync(expectServer !== null ? { expectServer } : {});
  const resumes: WorkerReplay['resumes'] = [];
  const errorsSent: WorkerReplay['errorsSent'] = [];
  const started = new Set<number>();
  const before = async (step: Step, r: Replay): Promise<void> => {
    if (step.kind === 'send') {
      sync.catchUp(r.conns.get(step.conn)!);
      if (!started.has(step.conn) && started.size > 0) {
        // A reconnection: the recorded REPLICATE tokens are where Synapse's worker resumed; ours must resume there too.
        const recorded: Record<string, number> = {};
        for (const l of step.lines) {
          const m = /^REPLICATE (\S+) (\d+)\n$/.exec(l.line);
          if (m) recorded[m[1]!] = Number(m[2]);
        }
        resumes.push({ conn: step.conn, recorded, ours: Object.fromEntries(Object.keys(recorded).map((k) => [k, sync.ours.tokens[k]])) });
      }
      started.add(step.conn);
      for (const l of step.lines) if (l.line.startsWith('ERROR ')) errorsSent.push({ conn: step.conn, line: l.line, dropped: sync.ours.dropped });
    }
    await options.before?.(step, r);
  };
  const r = await Replayer.start(t, s.replay.server_name, SYNAPSE_STREAMS, s.replay.history, sync, { ...options, before });
  await r.run(planSteps(workerTimeline(s)));
  return Object.assign(r, { worker: sync.ours, groupsByConn: sync.groupsByConn, resumes, errorsSent });
}

/**
 * Asserts that `actual` lines stand for the `expected` ones (sameLine: the
 * same bytes, or both matching a pattern the recording marks as varying),
 * naming the first difference rather than printing thousands of lines.
 */
export function assertLines(s: Session, actual: readonly string[], expected: readonly string[], message: string): void {
  const n = Math.max(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    const a = actual[i];
    const e = expected[i];
    if (a !== undefined && e !== undefined && sameLine(s, 's2c', e, a)) continue;
    const show = (l: string | undefined): string => (l === undefined ? '(nothing)' : JSON.stringify(l.length > 300 ? `${l.slice(0, 300)}...` : l));
    throw new assert.AssertionError({
      message: `${message}\n  first difference at line ${i} (expected ${expected.length} lines, got ${actual.length}):\n  expected: ${show(e)}\n  got:      ${show(a)}`,
      actual: a,
      expected: e,
      operator: 'sameLine',
    });
  }
}
