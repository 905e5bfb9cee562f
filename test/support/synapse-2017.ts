// The sessions recorded from Synapse's own 2017 master and worker
// (../shared/synapse-2017/sessions, described by its README.md): loading,
// run-length expansion, the values that vary, and a model of the v1 worker
// that groups what a server sends the way Synapse's worker did.
//
//   const s = loadSession('m-catchup-from-token');
//   const lines = sessionLines(s, { dir: 's2c' });      // every s2c line, runs expanded
//   const worker = new V1Worker();
//   worker.feed(bytesFromOurServer);                     // worker.groups: rdata / position, as observed
//
// The recordings are shared data, not part of the project: a test that needs
// them asks recordingsSkip() for its skip option, which skips with one line
// saying what is missing, except under CI=true, where missing data fails.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from './project-root.js';

export const RECORDINGS_ENV = 'SYNAPSE_2017_DIR';

/** ../shared/synapse-2017 beside the project root; SYNAPSE_2017_DIR overrides it. */
export function recordingsDir(): string {
  const override = process.env[RECORDINGS_ENV];
  return override ? path.resolve(override) : path.join(projectRoot(), '..', 'shared', 'synapse-2017');
}

export function sessionsDir(): string {
  return path.join(recordingsDir(), 'sessions');
}

/** Why the recordings cannot be read here, with what to do; null when they can. */
export function recordingsMissing(): string | null {
  const dir = sessionsDir();
  if (!existsSync(dir)) {
    return `the recorded Synapse 2017 sessions are not at ${dir}: put the project's shared/ folder beside the project root (../shared), or set ${RECORDINGS_ENV}`;
  }
  return null;
}

/**
 * The `skip` option for a test that needs the recordings: false when they are
 * here, the reason otherwise. Under CI=true missing recordings are a failure,
 * not a skip: this throws, so the run goes red naming what is missing.
 */
export function recordingsSkip(): false | string {
  const missing = recordingsMissing();
  if (missing === null) return false;
  if (process.env['CI'] === 'true') throw new Error(`CI=true and ${missing}`);
  return `skipped: ${missing}`;
}

// ------------------------------------------------------------------ format

export type Direction = 'c2s' | 's2c';

export interface Run {
  template: string;
  per_token: number;
  framing: 'batch' | 'numbered';
  from: [number, number];
  to: [number, number];
  count: number;
}

/** One line on the wire, exactly, LF included (absent only on an unterminated tail). */
export interface LineEvent {
  kind: 'line';
  t: number;
  conn: number;
  dir: Direction;
  bytes: Buffer;
  /** The line as text (latin1 for the rare line that is not UTF-8), LF included. */
  line: string;
  /** Lines sent by the recording side in one send() share a write number. */
  write?: number;
  noNewline: boolean;
  /** Expanded from a run-length summary. */
  fromRun: boolean;
}

/** Anything else: connect, accept, close, signal, rows_written, note, worker_op, listener_*. */
export interface OtherEvent {
  kind: 'event';
  t: number;
  conn: number;
  event: string;
  /** The fields as recorded; rows_written's `lines` are expanded to strings. */
  fields: Record<string, unknown>;
}

export type SessionEvent = LineEvent | OtherEvent;

export interface Varies {
  field: string;
  dir?: Direction;
  pattern?: string;
  keys?: string[];
  why?: string;
}

export interface WorkerReplay {
  server_name: string;
  /** Writer-form lines a server must hold before the first connection. */
  history: string[];
  /** Writer-form lines to write at `t` (ms since the first accept). */
  live: { t: number; lines: string[] }[];
}

export interface ObservedEntry {
  t: number;
  [key: string]: unknown;
}

export interface Session {
  name: string;
  about: string;
  side: 'master' | 'worker';
  shows: string[];
  peer: {
    program: string;
    args: string[];
    server_name?: string;
    streams_served?: string[];
    exit_status?: number;
  };
  setup?: { heads: Record<string, number>; history: string[] };
  events: SessionEvent[];
  observed: ObservedEntry[];
  varies: Varies[];
  replay: WorkerReplay | null;
  replayNote: string | null;
  file: string;
}

/** The lines a run-length summary stands for (the README's runLines). */
export function runLines(run: Run): string[] {
  const out: string[] = [];
  const k = run.per_token;
  const [t1, j1] = run.to;
  for (let [t, j] = run.from; t < t1 || (t === t1 && j <= j1); ) {
    const token = run.framing === 'batch' && j < k - 1 ? 'batch' : String(t);
    out.push(
      run.template.replace(/<([a-z0-9%+]+)>/g, (_, e: string) => {
        if (e === 'token') return token;
        if (e === 't') return String(t);
        if (e === 'j') return String(j);
        if (e.startsWith('t%')) return String(t % Number(e.slice(2)));
        if (e.startsWith('t+')) return String(t + Number(e.slice(2)));
        throw new Error(`unknown run placeholder <${e}>`);
      }),
    );
    if (j === k - 1) {
      t++;
      j = 0;
    } else j++;
  }
  if (out.length !== run.count) throw new Error(`a run says ${run.count} lines but expands to ${out.length}`);
  return out;
}

function expandLines(lines: unknown[]): string[] {
  return lines.flatMap((l) => (typeof l === 'string' ? [l] : runLines((l as { run: Run }).run)));
}

function parseEvents(raw: Record<string, unknown>[]): SessionEvent[] {
  const out: SessionEvent[] = [];
  for (const e of raw) {
    const t = e['t'] as number;
    const conn = (e['conn'] as number | undefined) ?? 1;
    const dir = e['dir'] as Direction | undefined;
    if (dir !== undefined && e['run'] !== undefined) {
      for (const line of runLines(e['run'] as Run)) {
        out.push({ kind: 'line', t, conn, dir, bytes: Buffer.from(line, 'utf8'), line, noNewline: false, fromRun: true });
      }
    } else if (dir !== undefined) {
      const bytes = e['line_hex'] !== undefined ? Buffer.from(e['line_hex'] as string, 'hex') : Buffer.from(e['line'] as string, 'utf8');
      const line = e['line_hex'] !== undefined ? bytes.toString('latin1') : (e['line'] as string);
      const ev: LineEvent = { kind: 'line', t, conn, dir, bytes, line, noNewline: e['no_newline'] === true, fromRun: false };
      if (e['write'] !== undefined) ev.write = e['write'] as number;
      out.push(ev);
    } else {
      const fields = { ...e };
      if (Array.isArray(fields['lines'])) fields['lines'] = expandLines(fields['lines'] as unknown[]);
      out.push({ kind: 'event', t, conn, event: e['event'] as string, fields });
    }
  }
  return out;
}

function parseSession(file: string): Session {
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  if (raw['format'] !== 'synapse-2017-session/1') throw new Error(`${file}: unknown format ${String(raw['format'])}`);
  const setup = raw['setup'] as { heads: Record<string, number>; history: unknown[] } | undefined;
  const replay = raw['replay'] as (Omit<WorkerReplay, 'history' | 'live'> & { history: unknown[]; live: { t: number; lines: unknown[] }[] }) | null | undefined;
  return {
    name: raw['name'] as string,
    about: raw['about'] as string,
    side: raw['side'] as 'master' | 'worker',
    shows: raw['shows'] as string[],
    peer: raw['peer'] as Session['peer'],
    ...(setup ? { setup: { heads: setup.heads, history: expandLines(setup.history) } } : {}),
    events: parseEvents(raw['events'] as Record<string, unknown>[]),
    observed: raw['observed'] as ObservedEntry[],
    varies: (raw['varies'] as Varies[] | undefined) ?? [],
    replay: replay
      ? {
          server_name: replay.server_name,
          history: expandLines(replay.history),
          live: replay.live.map((l) => ({ t: l.t, lines: expandLines(l.lines) })),
        }
      : null,
    replayNote: (raw['replay_note'] as string | undefined) ?? null,
    file,
  };
}

const cache = new Map<string, Session>();

/** The names of every recorded session, sorted (m-* then w-*). */
export function sessionNames(): string[] {
  return readdirSync(sessionsDir())
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -'.json'.length))
    .sort();
}

export function loadSession(name: string): Session {
  let s = cache.get(name);
  if (!s) {
    s = parseSession(path.join(sessionsDir(), `${name}.json`));
    if (s.name !== name) throw new Error(`${s.file} calls itself ${s.name}`);
    cache.set(name, s);
  }
  return s;
}

// ------------------------------------------------------------------ queries

export function sessionLines(s: Session, filter: { dir?: Direction; conn?: number } = {}): LineEvent[] {
  return s.events.filter(
    (e): e is LineEvent => e.kind === 'line' && (filter.dir === undefined || e.dir === filter.dir) && (filter.conn === undefined || e.conn === filter.conn),
  );
}

export function sessionEvents(s: Session, event: string): OtherEvent[] {
  return s.events.filter((e): e is OtherEvent => e.kind === 'event' && e.event === event);
}

/** Connection numbers in order of first appearance. */
export function connections(s: Session): number[] {
  return [...new Set(s.events.map((e) => e.conn))];
}

/**
 * A session whose k-th connection is `parts[k]`'s recorded connection, one
 * after the other in time: a Synapse side that answered each connection as
 * it did in that recording (each ran against a fresh master, so what a
 * connection is answered depends only on its own recording).
 */
export function joinSessions(name: string, parts: readonly { session: Session; conn: number }[]): Session {
  const first = parts[0]!.session;
  const events: SessionEvent[] = [];
  let offset = 0;
  parts.forEach(({ session, conn }, k) => {
    const own = session.events.filter((e) => e.conn === conn);
    const start = own[0]?.t ?? 0;
    for (const e of own) events.push({ ...e, t: e.t - start + offset, conn: k + 1 });
    offset = (events.at(-1)?.t ?? offset) + 1;
  });
  const varies = parts.flatMap((p) => p.session.varies);
  return { ...first, name, about: parts.map((p) => `${p.session.name} (connection ${p.conn})`).join(', then '), events, varies, observed: [], replay: null };
}

/** The regular expressions of `varies` for lines in `dir`. */
export function varyingPatterns(s: Session, dir: Direction): RegExp[] {
  return s.varies.filter((v) => v.field === 'line' && v.dir === dir && v.pattern !== undefined).map((v) => new RegExp(v.pattern!));
}

/**
 * Whether `actual` (LF included) stands for the recorded line: the same
 * bytes, or both match one of the patterns the recording marks as varying
 * in that direction (a PING's clock, a USER_SYNC's last_sync_ms).
 */
export function sameLine(s: Session, dir: Direction, recorded: string, actual: string): boolean {
  if (recorded === actual) return true;
  return varyingPatterns(s, dir).some((p) => p.test(recorded) && p.test(actual));
}

/** The value after `flag` in the Synapse program's arguments (e.g. `--expect-server`), or null. */
export function peerArg(s: Session, flag: string): string | null {
  const i = s.peer.args.indexOf(flag);
  return i >= 0 && i + 1 < s.peer.args.length ? s.peer.args[i + 1]! : null;
}

/** The observed entries of one type (worker side: `type`; master side: `event`). */
export function observed(s: Session, type: string): ObservedEntry[] {
  return s.observed.filter((o) => o['type'] === type || o['event'] === type);
}

// ---------------------------------------------------------------- v1 worker

export type WorkerGroup =
  | { type: 'rdata'; stream: string; token: number; rows: unknown[] }
  | { type: 'position'; stream: string; token: number; rows: [] }
  | { type: 'server'; name: string }
  | { type: 'error'; data: string }
  | { type: 'sync'; data: string };

export interface V1WorkerOptions {
  /** The SERVER name it expects: another one drops the connection (`ERROR Wrong remote`). */
  expectServer?: string;
  /** Row field counts of the streams it knows: rows of other streams, or of another length, are skipped. */
  rowFields?: Record<string, number>;
}

/** Synapse 2017's worker read lines of at most this many bytes (LF excluded), and dropped the connection past it. */
export const V1_MAX_LINE_BYTES = 16_384;

/**
 * What a Synapse 2017 worker hands its handler for the bytes a server sends,
 * as the worker-side recordings show it: `batch` rows held per stream until
 * the numbered row of that stream, then one group (`on_rdata`) under its
 * token; a POSITION is its own entry and keeps held rows; a lost connection
 * drops them; a line over 16 KiB, a line it cannot parse, a command a
 * server may not send, or (with `expectServer`) another server name drops
 * the connection. `tokens` is what it would resume from: the last token
 * handed over per stream.
 */
export class V1Worker {
  readonly groups: WorkerGroup[] = [];
  readonly tokens: Record<string, number> = {};
  /** Set when the worker itself would have dropped the connection, and why. */
  dropped: string | null = null;
  private held = new Map<string, unknown[]>();
  private partial = Buffer.alloc(0);

  constructor(private readonly options: V1WorkerOptions = {}) {}

  feed(chunk: Buffer | string): void {
    if (this.dropped !== null) return;
    let buf = Buffer.concat([this.partial, typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk]);
    for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10)) {
      const line = buf.subarray(0, nl);
      buf = buf.subarray(nl + 1);
      if (line.length > V1_MAX_LINE_BYTES) return this.drop(`a line of ${line.length} bytes`);
      this.handle(line.toString('utf8'));
      if (this.dropped !== null) return;
    }
    if (buf.length > V1_MAX_LINE_BYTES) return this.drop(`an unfinished line of ${buf.length} bytes`);
    this.partial = Buffer.from(buf);
  }

  /** The connection ended: held batch rows are forgotten, the tokens stay. */
  connectionLost(): void {
    this.held.clear();
    this.partial = Buffer.alloc(0);
    this.dropped = null;
  }

  /** The rdata and position groups, as the worker side's `observed` lists them. */
  rowGroups(): Extract<WorkerGroup, { type: 'rdata' | 'position' }>[] {
    return this.groups.filter((g): g is Extract<WorkerGroup, { type: 'rdata' | 'position' }> => g.type === 'rdata' || g.type === 'position');
  }

  private drop(why: string): void {
    this.dropped = why;
    this.partial = Buffer.alloc(0);
  }

  private handle(line: string): void {
    if (line.trim() === '') return;
    const space = line.indexOf(' ');
    if (space < 0) return this.drop(`a line without a space: ${line}`);
    const name = line.slice(0, space);
    const rest = line.slice(space + 1);
    switch (name) {
      case 'SERVER':
        this.groups.push({ type: 'server', name: rest });
        if (this.options.expectServer !== undefined && rest !== this.options.expectServer) this.drop('Wrong remote');
        return;
      case 'ERROR':
        this.groups.push({ type: 'error', data: rest });
        return;
      case 'SYNC':
        this.groups.push({ type: 'sync', data: rest });
        return;
      case 'PING':
        return;
      case 'POSITION': {
        const [stream, token] = rest.split(' ', 2);
        const t = parseToken(token);
        if (stream === undefined || t === null) return this.drop(`a POSITION it cannot parse: ${line}`);
        this.tokens[stream] = t;
        this.groups.push({ type: 'position', stream, token: t, rows: [] });
        return;
      }
      case 'RDATA': {
        const a = rest.indexOf(' ');
        const b = rest.indexOf(' ', a + 1);
        const stream = rest.slice(0, a);
        const token = rest.slice(a + 1, b);
        const t = token === 'batch' ? null : parseToken(token);
        let row: unknown;
        try {
          row = JSON.parse(rest.slice(b + 1));
        } catch {
          return this.drop(`an RDATA it cannot parse: ${line}`);
        }
        if (a < 0 || b < 0 || (token !== 'batch' && t === null)) return this.drop(`an RDATA it cannot parse: ${line}`);
        const fields = this.options.rowFields;
        if (fields !== undefined && (fields[stream] === undefined || !Array.isArray(row) || row.length !== fields[stream])) return;
        const held = this.held.get(stream) ?? [];
        held.push(row);
        if (t === null) {
          this.held.set(stream, held);
          return;
        }
        this.held.delete(stream);
        this.tokens[stream] = t;
        this.groups.push({ type: 'rdata', stream, token: t, rows: held });
        return;
      }
      default:
        return this.drop(`${name} is not a command a server sends`);
    }
  }
}

function parseToken(word: string | undefined): number | null {
  return word !== undefined && /^[0-9]+$/.test(word) ? Number(word) : null;
}
