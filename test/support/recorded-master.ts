// A replaying master: a TCP server on 127.0.0.1 that plays the server side
// of a recorded session (../shared/synapse-2017, see synapse-2017.ts) to
// whatever client connects, and checks what that client sends against the
// recorded client's lines. The k-th accepted connection plays recorded
// connection k.
//
//   const m = await startRecordedMaster(t, 'm-catchup-from-token', { extra: (l) => l.startsWith('PING ') });
//   const c = new ReplicationClient({ port: m.port, streams: { events: 10 } }).start();
//   await m.finished();          // every recorded connection played; rejects with a diff on a mismatch
//
// Each recorded s2c line goes out (exact bytes; a `write` group in one socket
// write) once every recorded c2s line before it has arrived, the recorded gap
// times `timeScale` after the step before it (0 by default: order kept, no
// waiting). Received lines must be the recorded ones, in order: equal, or
// matching one of the session's `varies` patterns (sameLine); a line that is
// neither recorded next nor allowed by `extra` is a mismatch, and so is a
// close the recording does not have at that point. Recorded closes by the
// server are performed (eof: end, reset: RST); by the client, awaited.
// Connections beyond the recording are held open and silent (their lines are
// kept, never compared), so a reconnecting client can be counted.

import net from 'node:net';
import type { TestContext } from 'node:test';
import type { RdataCommand, ReplicationClient } from '../../src/index.js';
import { loadSession, sameLine, type LineEvent, type Session, type WorkerGroup } from './synapse-2017.js';

export interface RecordedMasterOptions {
  /** Recorded gaps are waited this many times over (default 0). */
  timeScale?: number;
  /** Lines our client may send that the recording does not have (its NAME and PING at connect, say). */
  extra?: (line: string, conn: number) => boolean;
  /** Recorded client lines our client need not send (a keep-alive PING whose timing varies). */
  optional?: (recorded: LineEvent) => boolean;
  /** What our client sends in place of a recorded line where it deliberately differs (default: the line). */
  expected?: (recorded: LineEvent) => string;
  /** Patterns under which a line stands for the recorded one, besides the session's own `varies`. */
  varying?: readonly RegExp[];
  /** Bound of finished() and until() (default 10 s). */
  timeoutMs?: number;
}

export interface ReceivedLine {
  line: string;
  /** Date.now() on arrival. */
  at: number;
  /** s2c lines written on this connection before it arrived. */
  sentBefore: number;
  /** What it stood for: a recorded line (index among the connection's c2s lines), an allowed extra, or nothing. */
  matched: { recorded: number } | 'extra' | 'mismatch' | 'beyond the recording';
}

export interface PlayedConnection {
  /** 1-based, in accept order. */
  n: number;
  /** False for a connection beyond the recording. */
  recorded: boolean;
  acceptedAt: number;
  lines: ReceivedLine[];
  /** The s2c writes made, with their time. */
  writes: { at: number; lines: string[] }[];
  closedAt: number | null;
  closedBy: 'server' | 'client' | null;
  /** How the client's side ended: eof, or the error code. */
  how: string | null;
}

export interface RecordedMaster {
  readonly port: number;
  readonly session: Session;
  /** Every accepted connection so far. */
  readonly played: readonly PlayedConnection[];
  /** Resolves once every recorded connection is played to its end and closed; rejects on a mismatch or at the timeout. */
  finished(timeoutMs?: number): Promise<void>;
  /** Resolves once recorded connection `n` is played to its end and closed. */
  settled(n: number, timeoutMs?: number): Promise<void>;
  /** Polls `cond` (every 5 ms) until it holds; rejects on a mismatch, or at the timeout saying what it waited for. */
  until(cond: () => boolean, what: string, timeoutMs?: number): Promise<void>;
  /** Throws the first mismatch, if any. */
  check(): void;
  close(): Promise<void>;
}

type Step =
  | { kind: 'expect'; t: number; ev: LineEvent; index: number; want: string; optional: boolean; matched: boolean }
  | { kind: 'send'; t: number; lines: LineEvent[] }
  | { kind: 'close'; t: number; by: 'server' | 'client'; how: string }
  | { kind: 'listener'; t: number; open: boolean };

const DEFAULT_TIMEOUT_MS = 10_000;
const POLL_MS = 5;
const RESET_GRACE_MS = 50;

/** The recorded connections as scripts; listener events go with the connection played just before them. */
function scripts(s: Session, options: RecordedMasterOptions): Map<number, Step[]> {
  const out = new Map<number, Step[]>();
  const script = (conn: number): Step[] => {
    let steps = out.get(conn);
    if (steps === undefined) out.set(conn, (steps = []));
    return steps;
  };
  let lastConn = 1;
  const c2sCount = new Map<number, number>();
  for (const e of s.events) {
    if (e.kind === 'line') {
      lastConn = e.conn;
      const steps = script(e.conn);
      if (e.dir === 'c2s') {
        const index = c2sCount.get(e.conn) ?? 0;
        c2sCount.set(e.conn, index + 1);
        const want = options.expected?.(e) ?? e.line;
        steps.push({ kind: 'expect', t: e.t, ev: e, index, want, optional: options.optional?.(e) ?? false, matched: false });
        continue;
      }
      const prev = steps[steps.length - 1];
      const prevLine = prev?.kind === 'send' ? prev.lines[prev.lines.length - 1] : undefined;
      if (prev?.kind === 'send' && e.write !== undefined && prevLine?.write === e.write) prev.lines.push(e);
      else steps.push({ kind: 'send', t: e.t, lines: [e] });
      continue;
    }
    const f = e.fields;
    if (e.event === 'accept' || e.event === 'connect') {
      lastConn = e.conn;
      script(e.conn);
    } else if (e.event === 'close') {
      lastConn = e.conn;
      script(e.conn).push({ kind: 'close', t: e.t, by: f['by'] === 'server' ? 'server' : 'client', how: String(f['how'] ?? '') });
    } else if (e.event === 'listener_closed' || e.event === 'listener_open') {
      script(lastConn).push({ kind: 'listener', t: e.t, open: e.event === 'listener_open' });
    }
  }
  return out;
}

function describeStep(step: Step | undefined): string {
  if (step === undefined) return 'nothing more';
  switch (step.kind) {
    case 'expect':
      return `the client's line ${JSON.stringify(step.want)} (recorded c2s line ${step.index + 1} at t=${step.t}${step.want !== step.ev.line ? `, recorded as ${JSON.stringify(step.ev.line)}` : ''})`;
    case 'send':
      return `sending ${step.lines.length} line(s) from t=${step.t}, first ${JSON.stringify(clip(step.lines[0]!.line))}`;
    case 'close':
      return step.by === 'server' ? `closing the connection itself (${step.how}, t=${step.t})` : `the client closing the connection (t=${step.t})`;
    case 'listener':
      return `${step.open ? 'listening again' : 'closing its listener'} (t=${step.t})`;
  }
}

function clip(line: string): string {
  return line.length > 200 ? `${line.slice(0, 200)}… (${line.length} chars)` : line;
}

function received(c: PlayedConnection): string {
  if (c.lines.length === 0) return '    (nothing)';
  return c.lines
    .map((l) => `    ${JSON.stringify(clip(l.line))}  ${typeof l.matched === 'string' ? l.matched : `= recorded c2s line ${l.matched.recorded + 1}`}`)
    .join('\n');
}

/** Whole lines (LF included) from a byte stream; a chunk may end anywhere, even inside a character. */
class LineSplitter {
  private pending = Buffer.alloc(0);

  push(chunk: Buffer): string[] {
    const out: string[] = [];
    let buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10)) {
      out.push(buf.toString('utf8', 0, nl + 1));
      buf = buf.subarray(nl + 1);
    }
    this.pending = Buffer.from(buf);
    return out;
  }
}

class Player {
  private step = 0;
  /** The next c2s expectation a received line may match. */
  private cursor = 0;
  private readonly expects: Extract<Step, { kind: 'expect' }>[];
  private anchor: { t: number; at: number };
  private timer: NodeJS.Timeout | null = null;
  private resetTimer: NodeJS.Timeout | null = null;
  private serverClosed = false;
  private stopped = false;
  private readonly lines = new LineSplitter();

  constructor(
    private readonly master: Master,
    readonly played: PlayedConnection,
    private readonly socket: net.Socket,
    private readonly steps: Step[],
    acceptT: number,
  ) {
    this.expects = steps.filter((s): s is Extract<Step, { kind: 'expect' }> => s.kind === 'expect');
    this.anchor = { t: acceptT, at: played.acceptedAt };
  }

  get done(): boolean {
    return this.step >= this.steps.length && this.played.closedAt !== null;
  }

  /** What this connection waits for, for a timeout message. */
  waiting(): string {
    const next = this.steps[this.step];
    const state = this.step >= this.steps.length ? `played; ${this.played.closedAt === null ? 'the socket is still open' : 'closed'}` : `waits for ${describeStep(next)}`;
    return `connection ${this.played.n} ${state}; the client sent:\n${received(this.played)}`;
  }

  data(chunk: Buffer): void {
    for (const line of this.lines.push(chunk)) this.line(line);
  }

  private line(line: string): void {
    const rec: ReceivedLine = { line, at: Date.now(), sentBefore: this.sentLines(), matched: 'mismatch' };
    this.played.lines.push(rec);
    if (this.stopped) return;
    for (let j = this.cursor; j < this.expects.length; j++) {
      const e = this.expects[j]!;
      if (this.master.same(e.want, line)) {
        rec.matched = { recorded: e.index };
        e.matched = true;
        this.cursor = j + 1;
        if (!e.optional) this.anchor = { t: e.t, at: rec.at };
        this.advance();
        return;
      }
      if (!e.optional) break;
    }
    if (this.master.extra(line, this.played.n)) {
      rec.matched = 'extra';
      return;
    }
    const next = this.expects[this.cursor];
    this.fail(
      `our client sent a line the recording does not have here\n  expected: ${next === undefined ? 'no more lines' : describeStep(next)}\n  got:      ${JSON.stringify(clip(line))}`,
    );
  }

  /** Plays every step whose preconditions hold. */
  advance(): void {
    this.play();
    this.master.changed();
  }

  private play(): void {
    while (!this.stopped && this.step < this.steps.length) {
      const step = this.steps[this.step]!;
      if (step.kind === 'expect') {
        if (!step.optional && !step.matched) return;
        this.step++;
        continue;
      }
      if (step.kind === 'close' && step.by === 'client') {
        if (this.played.closedAt === null) return;
        this.step++;
        continue;
      }
      const wait = (step.t - this.anchor.t) * this.master.timeScale - (Date.now() - this.anchor.at);
      if (wait > 0) {
        if (this.timer === null) {
          this.timer = setTimeout(() => {
            this.timer = null;
            this.advance();
          }, wait);
        }
        return;
      }
      if (this.played.closedAt !== null && step.kind !== 'listener') {
        this.fail(`the client closed the connection (${this.played.how}) while the recording has the master ${describeStep(step)}`);
        return;
      }
      this.anchor = { t: step.t, at: Date.now() };
      this.step++;
      this.perform(step);
    }
  }

  private perform(step: Exclude<Step, { kind: 'expect' }>): void {
    switch (step.kind) {
      case 'send':
        this.played.writes.push({ at: Date.now(), lines: step.lines.map((l) => l.line) });
        this.socket.write(Buffer.concat(step.lines.map((l) => l.bytes)));
        return;
      case 'close':
        this.serverClosed = true;
        if (!step.how.startsWith('reset')) {
          this.socket.end();
          return;
        }
        // An RST makes the peer drop what it has not read yet: reset once the writes are out and a moment more.
        this.socket.write('', () => {
          if (this.stopped) return;
          this.resetTimer = setTimeout(() => {
            if (!this.socket.destroyed) this.socket.resetAndDestroy();
          }, RESET_GRACE_MS);
        });
        return;
      case 'listener':
        this.master.listener(step.open);
        return;
    }
  }

  closed(how: string): void {
    this.played.closedAt = Date.now();
    this.played.closedBy = this.serverClosed ? 'server' : 'client';
    this.played.how = how;
    if (this.stopped) return;
    if (!this.serverClosed) {
      // Expected only where the recording has the client close next (lines it may skip aside).
      const next = this.steps.slice(this.step).find((s) => !(s.kind === 'expect' && (s.optional || s.matched)));
      if (next !== undefined && !(next.kind === 'close' && next.by === 'client')) {
        this.fail(`the client closed the connection (${how}) where the recording has next ${describeStep(next)}`);
        return;
      }
    }
    this.advance();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.resetTimer !== null) clearTimeout(this.resetTimer);
    this.timer = null;
  }

  private sentLines(): number {
    return this.played.writes.reduce((n, w) => n + w.lines.length, 0);
  }

  private fail(message: string): void {
    this.stop();
    this.master.fail(`${this.master.session.name}, connection ${this.played.n}: ${message}\n  the client sent on this connection:\n${received(this.played)}`);
  }
}

class Master implements RecordedMaster {
  readonly played: PlayedConnection[] = [];
  readonly timeScale: number;
  private readonly scripts: Map<number, Step[]>;
  private readonly acceptTimes = new Map<number, number>();
  private readonly players: Player[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly servers = new Set<net.Server>();
  private readonly patterns: readonly RegExp[];
  private failure: Error | null = null;
  private wakers = new Set<() => void>();
  private closing = false;
  port = 0;

  constructor(
    readonly session: Session,
    private readonly options: RecordedMasterOptions,
  ) {
    this.timeScale = options.timeScale ?? 0;
    this.scripts = scripts(session, options);
    this.patterns = options.varying ?? [];
    for (const e of session.events) {
      if (e.kind === 'event' && (e.event === 'accept' || e.event === 'connect')) this.acceptTimes.set(e.conn, e.t);
    }
  }

  async listen(): Promise<void> {
    const server = this.newServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
  }

  private newServer(): net.Server {
    const server = net.createServer((socket) => this.accept(socket));
    this.servers.add(server);
    return server;
  }

  /** Stops accepting (connections are refused) or listens again on the same port. */
  listener(open: boolean): void {
    if (!open) {
      for (const s of this.servers) s.close();
      this.servers.clear();
      return;
    }
    const server = this.newServer();
    server.once('error', (err) => this.fail(`${this.session.name}: cannot listen again on port ${this.port}: ${err.message}`));
    server.listen({ host: '127.0.0.1', port: this.port }, () => this.changed());
  }

  same(want: string, actual: string): boolean {
    return sameLine(this.session, 'c2s', want, actual) || this.patterns.some((p) => p.test(want) && p.test(actual));
  }

  extra(line: string, conn: number): boolean {
    return this.options.extra?.(line, conn) ?? false;
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    this.sockets.add(socket);
    const n = this.played.length + 1;
    const steps = this.scripts.get(n);
    const played: PlayedConnection = { n, recorded: steps !== undefined, acceptedAt: Date.now(), lines: [], writes: [], closedAt: null, closedBy: null, how: null };
    this.played.push(played);
    let how = 'eof';
    socket.on('error', (err: NodeJS.ErrnoException) => (how = err.code ?? err.message));
    if (steps === undefined) {
      const lines = new LineSplitter();
      socket.on('data', (chunk: Buffer) => {
        for (const line of lines.push(chunk)) played.lines.push({ line, at: Date.now(), sentBefore: 0, matched: 'beyond the recording' });
      });
      socket.once('close', () => {
        this.sockets.delete(socket);
        played.closedAt = Date.now();
        played.closedBy = 'client';
        played.how = how;
        this.changed();
      });
      this.changed();
      return;
    }
    const player = new Player(this, played, socket, steps, this.acceptTimes.get(n) ?? 0);
    this.players.push(player);
    socket.on('data', (chunk: Buffer) => player.data(chunk));
    socket.once('close', () => {
      this.sockets.delete(socket);
      player.closed(how);
    });
    player.advance();
  }

  fail(message: string): void {
    if (this.failure === null) this.failure = new Error(message);
    this.changed();
  }

  changed(): void {
    for (const wake of [...this.wakers]) wake();
  }

  check(): void {
    if (this.failure !== null) throw this.failure;
  }

  private describe(): string {
    const lines = this.players.map((p) => p.waiting());
    const recorded = this.scripts.size;
    if (this.players.length < recorded) lines.push(`connection ${this.players.length + 1} of ${recorded} was never opened`);
    const beyond = this.played.filter((c) => !c.recorded).length;
    if (beyond > 0) lines.push(`${beyond} connection(s) beyond the recording`);
    return lines.join('\n');
  }

  until(cond: () => boolean, what: string, timeoutMs = this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    return new Promise<void>((resolve, reject) => {
      const tick = (): void => {
        this.wakers.delete(tick);
        clearTimeout(timer);
        if (this.failure !== null) return reject(this.failure);
        let ok: boolean;
        try {
          ok = cond();
        } catch (err) {
          return reject(err as Error);
        }
        if (ok) return resolve();
        if (Date.now() >= deadline) {
          return reject(new Error(`${this.session.name}: timed out after ${timeoutMs} ms waiting for ${what}\n${this.describe()}`));
        }
        this.wakers.add(tick);
        timer = setTimeout(tick, POLL_MS);
      };
      let timer: NodeJS.Timeout | undefined;
      tick();
    });
  }

  settled(n: number, timeoutMs?: number): Promise<void> {
    return this.until(() => this.players[n - 1]?.done === true, `recorded connection ${n} to be played to its end`, timeoutMs);
  }

  finished(timeoutMs?: number): Promise<void> {
    const all = this.scripts.size;
    return this.until(() => this.players.length === all && this.players.every((p) => p.done), `all ${all} recorded connection(s) to be played to their end`, timeoutMs);
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const p of this.players) p.stop();
    for (const s of this.sockets) s.destroy();
    await Promise.all([...this.servers].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.servers.clear();
  }
}

/** Starts a replaying master for `session` (a name or a loaded session); it is stopped by t.after. */
export async function startRecordedMaster(t: TestContext, session: Session | string, options: RecordedMasterOptions = {}): Promise<RecordedMaster> {
  const s = typeof session === 'string' ? loadSession(session) : session;
  const master = new Master(s, options);
  await master.listen();
  t.after(() => master.close());
  return master;
}

/** One 'rows' or 'position' event of a client, shaped like the worker side's observed `rdata` / `position` entries. */
export type HandedOver = Extract<WorkerGroup, { type: 'rdata' | 'position' }>;

/**
 * Collects what `client` hands its caller, in order, as the worker side's
 * `observed` lists Synapse's worker's handler calls. Rows are parsed; one
 * that is not JSON (row() throws) is kept as `{ notJson: <its text> }`.
 */
export function handedOver(client: ReplicationClient): HandedOver[] {
  const out: HandedOver[] = [];
  const value = (r: RdataCommand): unknown => {
    try {
      return r.row();
    } catch {
      return { notJson: r.rowJson.toString('utf8') };
    }
  };
  client.on('rows', (stream: string, token: number, rows: readonly RdataCommand[]) => out.push({ type: 'rdata', stream, token, rows: rows.map(value) }));
  client.on('position', (stream: string, token: number) => out.push({ type: 'position', stream, token, rows: [] }));
  return out;
}
