/**
 * What a relay does with the rows its upstream sends, before they go into
 * its own stream logs (no I/O; time comes in as `now`).
 *
 * A Synapse 2017 master sends the rows of one token during catch-up as
 * separate numbered lines, and live as a `batch` run:
 *
 *     RDATA caches 3 ["a"]        catch-up: three lines, one token; the run
 *     RDATA caches 3 ["b"]        has ended only when a higher token or a
 *     RDATA caches 3 ["c"]        POSITION for the stream arrives
 *     POSITION caches 3
 *     RDATA caches batch ["d"]    live: framed, complete at the numbered row
 *     RDATA caches 4 ["e"]
 *
 * During catch-up (from a REPLICATE until its POSITION) rows are held, per
 * token, and stored at the POSITION, in token order (Synapse's account_data
 * catch-up is not in token order), each token as one entry whose lines carry
 * `batch` on all but the last: downstream subscribers get a run whole, with
 * the upstream's tokens and row bytes. Live rows are framed by the upstream
 * and stored as they come. A token at or below what is stored is a replay
 * (the catch-up/live switch, a resume) and is skipped.
 *
 * A stream the relay never synced (nothing stored, no POSITION yet) whose
 * catch-up the upstream refuses is followed from NOW instead:
 *
 *     < REPLICATE events 0
 *     > ERROR failed to handle replicate: Exception('stream events has fallen behined')
 *     < REPLICATE events NOW                 (on this or the next connection)
 *     > POSITION events 12000                the relay's log restarts at 12000:
 *                                            history before it is unknown, not empty
 */
import { v1Text } from './dialects/v1-text.js';

/** Where complete tokens go: the relay's ReplicationServer. */
export interface RelaySink {
  /** The last token handed to the stream's log (stored, or still being stored). */
  head(stream: string): number;
  /** `bytes`: `rows` complete RDATA lines of `token`, all but the last framed `batch`. */
  append(stream: string, token: number, bytes: Buffer, rows: number): void;
  advance(stream: string, token: number): void;
  /** Drops the stream's history: its log starts at `token` (ReplicationServer.restart). */
  restart(stream: string, token: number): void;
}

/** One row as received: its token (null for a `batch` line), the line without LF, and its JSON. */
export interface RelayRow {
  token: number | null;
  line: Buffer;
  json: Buffer;
}

export interface RelayStoreEvents {
  /** Rows not stored because their token is at or below the stream's head. */
  skipped(stream: string, token: number, rows: number): void;
  /** The upstream's POSITION is below what the relay holds (it went back, e.g. lost data). */
  behind(stream: string, upstreamToken: number, head: number): void;
  stored(stream: string, token: number, rows: number): void;
  /** A stream followed from NOW got its POSITION: the relay's log starts at `token`. */
  restarted(stream: string, token: number): void;
}

export interface RelayStoreLimits {
  /** Catch-up rows held per stream before complete tokens are stored early (default 100,000). */
  maxHeldRows?: number;
  maxHeldBytes?: number;
}

interface Group {
  token: number;
  rows: RelayRow[];
  bytes: number;
  /** Ended by a framed batch: complete even as the highest token. */
  closed: boolean;
  firstSeenAt: number;
}

interface StreamHold {
  /** Ascending by token. */
  groups: Group[];
  heldRows: number;
  heldBytes: number;
  catchingUp: boolean;
  /** A POSITION arrived at least once: the first catch-up is done. */
  synced: boolean;
  /** Highest token the upstream has shown (rows or POSITION). */
  upstreamToken: number;
  /** Never synced from this upstream: nothing stored and no POSITION yet. Only such a stream may start from NOW. */
  fresh: boolean;
  /** Followed from NOW after a refused catch-up: its next POSITION restarts the log. */
  fromNow: boolean;
}

export interface StreamLag {
  stream: string;
  /** Upstream token minus the stored head (0 when level). */
  tokens: number;
  /** Age of the oldest row held back, in ms (0 when none). */
  heldMs: number;
  heldRows: number;
  catchingUp: boolean;
}

export const DEFAULT_MAX_HELD_ROWS = 100_000;
export const DEFAULT_MAX_HELD_BYTES = 64 * 1024 * 1024;
const LF = Buffer.from('\n');

export class RelayStore {
  private readonly streams = new Map<string, StreamHold>();
  private readonly maxHeldRows: number;
  private readonly maxHeldBytes: number;

  constructor(
    private readonly sink: RelaySink,
    streams: readonly string[],
    limits: RelayStoreLimits = {},
    private readonly events: Partial<RelayStoreEvents> = {},
  ) {
    this.maxHeldRows = limits.maxHeldRows ?? DEFAULT_MAX_HELD_ROWS;
    this.maxHeldBytes = limits.maxHeldBytes ?? DEFAULT_MAX_HELD_BYTES;
    for (const s of streams) {
      const head = sink.head(s);
      this.streams.set(s, {
        groups: [],
        heldRows: 0,
        heldBytes: 0,
        catchingUp: true,
        synced: false,
        upstreamToken: head,
        fresh: head === 0,
        fromNow: false,
      });
    }
  }

  /** Every stream has had its first POSITION. */
  get synced(): boolean {
    for (const st of this.streams.values()) if (!st.synced) return false;
    return true;
  }

  /** A new upstream connection: its REPLICATEs start a catch-up on every stream. */
  connectionOpened(): void {
    for (const st of this.streams.values()) st.catchingUp = true;
  }

  /**
   * The connection is gone. Every held token below the highest is complete,
   * and so is the highest if a framed batch ended it: store those now, as the
   * client resumes after them. An open run stays held; the client resumes
   * before it and skips the rows of it already delivered.
   */
  connectionLost(): void {
    for (const [name, st] of this.streams) this.storeComplete(name, st);
  }

  /**
   * Drops every held row: the streams are to be followed again from what is
   * stored (the log failed an entry), so the upstream sends them again.
   */
  dropHeld(): void {
    for (const st of this.streams.values()) this.clear(st);
  }

  /** Rows of one token as the client delivers them (a framed batch whole, a lone numbered row alone). */
  rows(stream: string, token: number, rows: readonly RelayRow[], now: number): void {
    const st = this.streams.get(stream);
    if (st === undefined || rows.length === 0) return;
    if (token > st.upstreamToken) st.upstreamToken = token;
    // While following from NOW, rows before the POSITION belong to the refused catch-up.
    if (st.fromNow || token <= this.sink.head(stream)) {
      this.events.skipped?.(stream, token, rows.length);
      return;
    }
    const framed = rows.length > 1 || rows[0]!.token === null;
    if (!st.catchingUp) {
      // Live rows come framed: a numbered row ends its token.
      if (st.groups.length > 0) this.storeAll(stream, st);
      this.store(stream, token, rows);
      return;
    }
    let i = st.groups.length;
    while (i > 0 && st.groups[i - 1]!.token > token) i--;
    let group = i > 0 ? st.groups[i - 1] : undefined;
    if (group === undefined || group.token !== token) {
      group = { token, rows: [], bytes: 0, closed: false, firstSeenAt: now };
      st.groups.splice(i, 0, group);
    }
    for (const r of rows) {
      group.rows.push(r);
      group.bytes += r.line.length + 1;
      st.heldBytes += r.line.length + 1;
    }
    st.heldRows += rows.length;
    if (framed) group.closed = true;
    if (st.heldRows > this.maxHeldRows || st.heldBytes > this.maxHeldBytes) this.storeComplete(stream, st);
  }

  /**
   * The upstream refused a catch-up (an ERROR that catchUpRefusal() reads):
   * of `stream`, or of an unnamed one (null: every stream still fresh). The
   * streams returned are to be followed from NOW; a stream with history is
   * not among them, as skipping rows it owes its subscribers would be a gap.
   * A NOW start cannot be refused, so this happens at most once per stream.
   */
  catchUpRefused(stream: string | null): string[] {
    const out: string[] = [];
    for (const [name, st] of this.streams) {
      if (stream !== null ? name !== stream : st.fromNow) continue;
      if (!st.fresh) continue;
      this.clear(st); // rows of the refused catch-up: never stored
      st.fromNow = true;
      out.push(name);
    }
    return out;
  }

  /** POSITION: every held run of the stream is complete; the catch-up (if any) is over. */
  position(stream: string, token: number): void {
    const st = this.streams.get(stream);
    if (st === undefined) return;
    if (token > st.upstreamToken) st.upstreamToken = token;
    st.catchingUp = false;
    st.synced = true;
    st.fresh = false;
    if (st.fromNow) {
      // The first token the relay knows: what came before it is unknown, not absent.
      st.fromNow = false;
      this.clear(st);
      this.sink.restart(stream, token);
      this.events.restarted?.(stream, token);
      return;
    }
    this.storeAll(stream, st);
    const head = this.sink.head(stream);
    if (token > head) this.sink.advance(stream, token);
    else if (token < head) this.events.behind?.(stream, token, head);
  }

  lag(now: number): StreamLag[] {
    const out: StreamLag[] = [];
    for (const [stream, st] of this.streams) {
      let oldest = Infinity;
      for (const g of st.groups) oldest = Math.min(oldest, g.firstSeenAt);
      out.push({
        stream,
        tokens: Math.max(0, st.upstreamToken - this.sink.head(stream)),
        heldMs: oldest === Infinity ? 0 : Math.max(0, now - oldest),
        heldRows: st.heldRows,
        catchingUp: st.catchingUp,
      });
    }
    return out;
  }

  private storeAll(stream: string, st: StreamHold): void {
    const groups = st.groups;
    this.clear(st);
    for (const g of groups) this.store(stream, g.token, g.rows);
  }

  /** Stores every held token but an open highest run. */
  private storeComplete(stream: string, st: StreamHold): void {
    const last = st.groups[st.groups.length - 1];
    if (last === undefined) return;
    const keep = last.closed ? null : last;
    const groups = keep === null ? st.groups : st.groups.slice(0, -1);
    this.clear(st);
    if (keep !== null) {
      st.groups.push(keep);
      st.heldRows = keep.rows.length;
      st.heldBytes = keep.bytes;
    }
    for (const g of groups) this.store(stream, g.token, g.rows);
  }

  private clear(st: StreamHold): void {
    st.groups = [];
    st.heldRows = 0;
    st.heldBytes = 0;
  }

  private store(stream: string, token: number, rows: readonly RelayRow[]): void {
    if (token <= this.sink.head(stream)) {
      this.events.skipped?.(stream, token, rows.length);
      return;
    }
    this.sink.append(stream, token, encodeRun(stream, rows), rows.length);
    this.streams.get(stream)!.fresh = false;
    this.events.stored?.(stream, token, rows.length);
  }
}

/**
 * The lines of one token as one buffer: every row but the last framed
 * `batch` (numbered lines rewritten, batch lines kept), the last as received.
 */
export function encodeRun(stream: string, rows: readonly RelayRow[]): Buffer {
  const parts: Buffer[] = [];
  const last = rows.length - 1;
  for (let i = 0; i < last; i++) {
    const r = rows[i]!;
    if (r.token === null) parts.push(r.line, LF);
    else parts.push(v1Text.encodeRow(stream, null, r.json));
  }
  parts.push(rows[last]!.line, LF);
  return Buffer.concat(parts);
}
