/**
 * A read-only follower of a current Synapse deployment: what the payloads
 * on its Redis channel mean for each (stream, writer instance) pair's
 * history, with no I/O (the Redis binding feeds it lines, the sink stores):
 *
 *     RDATA events event_persister1 batch ["ev",[...]]    held per pair until
 *     RDATA events event_persister1 1034 ["state",[...]]  the numbered row: one group
 *     POSITION events event_persister2 1033 1034          ep2 wrote nothing in (1033, 1034]
 *     POSITION to_device to_device_writer1 423 423        we hold 420: (420, 423] is a gap
 *     POSITION typing typing_writer1 0 0                  we hold 6: the writer restarted (reset)
 *
 * Per pair, with S the token the follower holds:
 * - a numbered RDATA T > S is stored and S = T (tokens of one writer are not
 *   contiguous: a jump between two rows is no gap); T <= S right after
 *   stored rows of the pair, below the last of them, is a descending row
 *   (backfill publishes a batch 7, 6), stored after them; any other T <= S is
 *   a late row (a replay): reported, not stored;
 * - POSITION P N: P <= S <= N moves S to N; P > S is a gap (S, P], reported
 *   before S moves, unless other writers of the stream used every token in
 *   it (the writers of a stream share one sequence, and caches writers move
 *   their prev past the others' rows without a POSITION); N < S is a reset;
 * - after every (re)connect a pair is unconfirmed until its first POSITION
 *   there (the answers to our `REPLICATE `): its rows are held, because only
 *   that POSITION's P says whether rows were published while we were away.
 */
import { ProtocolError } from './errors.js';
import {
  TodayRowRoute,
  isTodayRow,
  parseTodayCommand,
  routeTodayRow,
  type TodayCommand,
  type TodayPosition,
} from './dialects/synapse-today.js';

/** Where the follower's findings go: the binding stores groups and fills or records gaps. */
export interface FollowerSink {
  /** A pair seen for the first time, without history: what came before `token` is unknown. */
  started(stream: string, instance: string, token: number): void;
  /** One complete group of the pair at `token`: its batch rows and its numbered row, LF-terminated lines as published. */
  group(stream: string, instance: string, token: number, bytes: Buffer, lines: number): void;
  /** The pair is at `token`, having written nothing since its last group. */
  advanced(stream: string, instance: string, token: number): void;
  /** Rows of the pair in (afterToken, uptoToken] may have been published unheard: fill them or record the gap. */
  gap(stream: string, instance: string, afterToken: number, uptoToken: number): void;
  /** The writer went back from `fromToken` to `token` (a restarted in-memory stream): a new history after `token`. */
  reset(stream: string, instance: string, fromToken: number, token: number): void;
  /** A group below the one stored just before it, with nothing of the pair between (backfill publishes descending): stored after it. */
  descending(stream: string, instance: string, token: number, bytes: Buffer, lines: number): void;
  /** A group at or below the pair's position that does not descend from the rows before it: not stored. */
  late(stream: string, instance: string, token: number): void;
  /** Any command that is not a stream's row or position (USER_SYNC, REPLICATE, ...): ephemeral, not history. */
  command(cmd: TodayCommand): void;
  /** A payload the dialect refused: logged and ignored, as Synapse does. */
  refused(line: Buffer, err: ProtocolError): void;
}

/** Groups held for a pair that has no POSITION on this connection yet: past this, the rows go through as if confirmed. */
export const MAX_HELD_GROUPS = 10_000;

interface HeldGroup {
  token: number;
  bytes: Buffer;
  lines: number;
}

/** Tokens of a stream's recent rows, whoever wrote them: which tokens another writer used. */
export const RECENT_TOKENS = 4096;

/** A ring of the tokens, in arrival order: a write per row; the rare gap check scans it. */
class StreamTokens {
  private readonly ring = new Float64Array(RECENT_TOKENS);
  private next = 0;
  private count = 0;

  add(token: number): void {
    if (this.count < RECENT_TOKENS) this.count++;
    this.ring[this.next] = token;
    this.next = this.next + 1 === RECENT_TOKENS ? 0 : this.next + 1;
  }

  /** Whether every token in (after, upto] is one of them. */
  coverAll(after: number, upto: number): boolean {
    if (upto - after > this.count) return false;
    const inRange = new Set<number>();
    for (let i = 0; i < this.count; i++) {
      const t = this.ring[i]!;
      if (t > after && t <= upto) inRange.add(t);
    }
    return inRange.size === upto - after;
  }
}

class Pair {
  /** The token held; null before the pair's history starts. */
  position: number | null = null;
  /** A POSITION of the pair was seen on the current connection. */
  confirmed = false;
  /** Batch rows waiting for their numbered row. */
  batch: Buffer[] = [];
  /** Groups received on this connection before its first POSITION. */
  held: HeldGroup[] = [];
  /** Token of the group just stored when nothing of the pair came after it (a descending row may follow); else null. */
  run: number | null = null;

  constructor(
    readonly stream: string,
    readonly instance: string,
    readonly tokens: StreamTokens,
  ) {}
}

export interface PairStatus {
  readonly stream: string;
  readonly instance: string;
  readonly token: number | null;
  /** A POSITION of the pair came on the current connection. */
  readonly confirmed: boolean;
  /** Groups held until that POSITION. */
  readonly heldGroups: number;
}

const LF = 0x0a;

export class SynapseFollower {
  private readonly pairs = new Map<string, Map<string, Pair>>();
  private readonly tokens = new Map<string, StreamTokens>();
  private readonly route = new TodayRowRoute();

  constructor(private readonly sink: FollowerSink) {}

  /** A pair whose history the store already holds up to `token` (a file log after a restart). */
  known(stream: string, instance: string, token: number): void {
    this.pair(stream, instance).position = token;
  }

  /**
   * A new subscription to the channel: whatever was published meanwhile is
   * unheard, so every pair waits for its next POSITION, and batches cut by
   * the drop are dropped (their numbered row never came; the gap covers them).
   */
  connected(): void {
    for (const byInstance of this.pairs.values()) {
      for (const pair of byInstance.values()) {
        pair.confirmed = false;
        pair.batch = [];
        pair.run = null;
        // Held groups of a connection that ended are kept: they were heard, and come before this connection's rows.
      }
    }
  }

  /** One payload with its LF added (`line` ends in LF), as it came off the channel. */
  line(line: Buffer): void {
    const end = line[line.length - 1] === LF ? line.length - 1 : line.length;
    try {
      if (isTodayRow(line, 0, end)) {
        routeTodayRow(line, 0, end, this.route);
        this.row(this.pair(this.route.stream, this.route.instance), this.route.token, line);
        return;
      }
      const cmd = parseTodayCommand(line, 0, end);
      if (cmd.name === 'POSITION') this.position(cmd);
      else this.sink.command(cmd);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.sink.refused(line, err);
    }
  }

  status(): PairStatus[] {
    const out: PairStatus[] = [];
    for (const byInstance of this.pairs.values()) {
      for (const p of byInstance.values()) {
        out.push({ stream: p.stream, instance: p.instance, token: p.position, confirmed: p.confirmed, heldGroups: p.held.length });
      }
    }
    return out;
  }

  private pair(stream: string, instance: string): Pair {
    let byInstance = this.pairs.get(stream);
    if (byInstance === undefined) {
      byInstance = new Map();
      this.pairs.set(stream, byInstance);
    }
    let pair = byInstance.get(instance);
    if (pair === undefined) {
      let tokens = this.tokens.get(stream);
      if (tokens === undefined) {
        tokens = new StreamTokens();
        this.tokens.set(stream, tokens);
      }
      pair = new Pair(stream, instance, tokens);
      byInstance.set(instance, pair);
    }
    return pair;
  }

  private row(pair: Pair, token: number | null, line: Buffer): void {
    if (token === null) {
      pair.batch.push(line);
      return;
    }
    let bytes = line;
    let lines = 1;
    if (pair.batch.length > 0) {
      pair.batch.push(line);
      lines = pair.batch.length;
      bytes = Buffer.concat(pair.batch);
      pair.batch = [];
    }
    if (!pair.confirmed) {
      pair.held.push({ token, bytes, lines });
      if (pair.held.length >= MAX_HELD_GROUPS) this.confirm(pair, null);
      return;
    }
    this.store(pair, token, bytes, lines);
  }

  private store(pair: Pair, token: number, bytes: Buffer, lines: number): void {
    if (pair.position !== null && token <= pair.position) {
      if (pair.run !== null && token < pair.run) {
        pair.run = token;
        this.sink.descending(pair.stream, pair.instance, token, bytes, lines);
      } else {
        this.sink.late(pair.stream, pair.instance, token);
      }
      return;
    }
    pair.run = token;
    pair.position = token;
    pair.tokens.add(token);
    this.sink.group(pair.stream, pair.instance, token, bytes, lines);
  }

  /** The pair's writer was at `token` before what comes next: a gap from what we hold, unless others' rows fill it. */
  private catchUpTo(pair: Pair, token: number): void {
    const at = pair.position!;
    if (token <= at) return;
    if (!pair.tokens.coverAll(at, token)) this.sink.gap(pair.stream, pair.instance, at, token);
    pair.position = token;
  }

  private position(cmd: TodayPosition): void {
    const pair = this.pair(cmd.stream, cmd.instance);
    pair.run = null;
    if (!pair.confirmed) {
      this.confirm(pair, cmd.prevToken);
    } else if (pair.position !== null) {
      this.catchUpTo(pair, cmd.prevToken);
    }
    this.moveTo(pair, cmd.newToken);
  }

  /**
   * The pair's first POSITION on this connection (prevToken: the last token
   * its writer announced), or too many held groups (null: no POSITION). Rows
   * heard on this connection run without a hole from the first held group,
   * so a hole can only lie before it.
   */
  private confirm(pair: Pair, prevToken: number | null): void {
    pair.confirmed = true;
    pair.run = null;
    const held = pair.held;
    pair.held = [];
    const firstHeld = held.length > 0 ? held[0]!.token : null;
    // Everything up to here was heard: the last token before the first held group, or the writer's prev.
    const heardFrom = firstHeld !== null && (prevToken === null || firstHeld <= prevToken) ? firstHeld - 1 : prevToken;
    if (pair.position === null) {
      if (heardFrom !== null) {
        pair.position = heardFrom;
        this.sink.started(pair.stream, pair.instance, heardFrom);
      }
    } else if (heardFrom !== null) {
      this.catchUpTo(pair, heardFrom);
    }
    for (const g of held) this.store(pair, g.token, g.bytes, g.lines);
  }

  /** POSITION's new token: forward is an advance, backward a reset. */
  private moveTo(pair: Pair, token: number): void {
    const at = pair.position;
    if (at === null) {
      pair.position = token;
      this.sink.started(pair.stream, pair.instance, token);
    } else if (token > at) {
      pair.position = token;
      this.sink.advanced(pair.stream, pair.instance, token);
    } else if (token < at) {
      pair.position = token;
      this.sink.reset(pair.stream, pair.instance, at, token);
    }
  }
}
