/**
 * The client side of today's Synapse dialect as a gateway serves it
 * (docs/protocol.md): streams followed per writer instance, each
 * (stream, instance) pair with its own position. ClientConnection hands
 * over the lines of the streams followed here; no I/O.
 *
 *     < REPLICATE <stream> <instance> <token|NOW>    one pair
 *     < REPLICATE <stream> * <token|NOW>             every writer of the stream, now and later
 *     > RDATA <stream> <instance> batch <json>       held per pair...
 *     > RDATA <stream> <instance> <token> <json>     ...and delivered with this row as one batch
 *     > POSITION <stream> <instance> <prev> <new>    the pair is at <new>; below its position: a reset
 *
 * Every pair is re-asked from its own position on every connect. A `*`
 * stream is re-asked as `REPLICATE s * 0` first (so the gateway sends the
 * writers that appeared meanwhile from their start, and those that appear
 * later), then `REPLICATE s <instance> <position>` for each pair already
 * seen, which replaces that pair's subscription from 0 on the same
 * connection. The gateway serves each pair in rising token order but for
 * descending rows (backfill publishes a batch 7, then 6; the history keeps
 * 6 right after 7), so a numbered row at or below a pair's position is one
 * already delivered (the replaced catch-up's first rows, if the gateway read
 * them before the second line) and is dropped, unless it descends from the
 * row delivered just before it on this connection: then it is delivered,
 * and the position stays at the highest token. A POSITION below the
 * position is the writer's reset, and moves it down.
 */
import { startsWith } from './bytes.js';
import { RdataCommand } from './commands.js';
import { parseTodayCommand, routeTodayRow, TodayRowRoute } from './dialects/synapse-today.js';
import { internName, v1Text } from './dialects/v1-text.js';
import { ProtocolError } from './errors.js';
import { RowCollector, type RowBatch } from './row-batch.js';
import { isInstanceWord, SYNAPSE_NAME } from './synapse-name.js';

/** A pair to follow: `instance` is a writer's name or '*' (every writer of the stream). */
export interface InstanceFollow {
  stream: string;
  instance: string;
  /** After this token, or 'NOW' (the default for a new pair). */
  from?: number | 'NOW';
}

/** Where InstanceFollows' deliveries go (ClientConnection's sink). */
export interface InstanceSink {
  rows(batch: RowBatch): void;
  /** The pair is at `token`; `before` is where it was (null before any); lower means the writer was reset. */
  position(stream: string, token: number, before: number | null, instance: string): void;
}

interface PairState {
  /** The highest token delivered, or the last POSITION; null before any. */
  token: number | null;
  /** Where a named pair asks from before it has a token ('NOW' or the caller's token). */
  from: number | 'NOW';
  /** `batch` rows waiting for their numbered row. */
  batch: RowCollector;
  /** Token of the row delivered just before on this connection (null after anything else): a descending row goes below it. */
  run: number | null;
}

interface StreamState {
  /** Followed as `*`; otherwise only the named pairs. */
  every: boolean;
  /** `*`: the token first asked for, used while no pair is known. */
  from: number | 'NOW';
  pairs: Map<string, PairState>;
}

const SPACE = 0x20;
const RDATA_ = Buffer.from('RDATA ');
const POSITION_ = Buffer.from('POSITION ');

export class InstanceFollows {
  private readonly streams = new Map<string, StreamState>();
  private readonly route = new TodayRowRoute();

  constructor(
    private readonly sink: InstanceSink,
    private readonly maxBatchBytes: number,
  ) {}

  get size(): number {
    return this.streams.size;
  }

  has(stream: string): boolean {
    return this.streams.has(stream);
  }

  /**
   * Follows a pair (or '*'), from `from`; without it a pair already followed
   * keeps its position. Returns the REPLICATE lines to send now (none when
   * nothing changed). A stream follows either '*' or named writers, not both.
   */
  follow(stream: string, instance: string, from?: number | 'NOW'): Buffer[] {
    const bad = !SYNAPSE_NAME.test(stream) ? ['stream', stream] : !isInstanceWord(instance) ? ['instance', instance] : null;
    if (bad !== null) {
      throw new TypeError(`bad ${bad[0]} name ${JSON.stringify(bad[1])}: expected letters, digits, '_', '.', '-' (an instance may also be '*')`);
    }
    let st = this.streams.get(stream);
    const every = instance === '*';
    if (st !== undefined && st.every !== every) {
      throw new TypeError(
        `stream ${stream} is followed ${st.every ? "as '*'" : 'by named instances'}: follow it either as '*' (every writer) or by instance names, not both`,
      );
    }
    if (st === undefined) {
      st = { every, from: from ?? 'NOW', pairs: new Map() };
      this.streams.set(stream, st);
    } else if (every) {
      if (from === undefined) return [];
      st.from = from;
      st.pairs.clear(); // a new starting token: the pairs' positions start over from it
    }
    if (every) return this.replicate(stream, st);
    const known = st.pairs.get(instance);
    if (known !== undefined && from === undefined) return [];
    const pair = newPair(from ?? 'NOW');
    st.pairs.set(instance, pair);
    return [v1Text.encode({ name: 'REPLICATE', stream, instance, token: pair.from })];
  }

  /** A connection opened: the REPLICATE lines of every followed stream, each pair from its position. */
  replicates(): Buffer[] {
    const out: Buffer[] = [];
    for (const [stream, st] of this.streams) {
      if (st.every) {
        out.push(...this.replicate(stream, st));
        continue;
      }
      for (const [instance, pair] of st.pairs) {
        out.push(v1Text.encode({ name: 'REPLICATE', stream, instance, token: pair.token ?? pair.from }));
      }
    }
    return out;
  }

  /** The connection closed: unfinished batches were never delivered, and the resume sends them again. */
  disconnected(): void {
    for (const st of this.streams.values()) {
      for (const pair of st.pairs.values()) {
        pair.batch.clear();
        pair.run = null;
      }
    }
  }

  /** Whether `buf[start, end)` is an RDATA or POSITION line of a stream followed here. */
  claims(buf: Buffer, start: number, end: number): boolean {
    let from: number;
    if (startsWith(buf, start, end, RDATA_)) from = start + RDATA_.length;
    else if (startsWith(buf, start, end, POSITION_)) from = start + POSITION_.length;
    else return false;
    let to = from;
    while (to < end && buf[to] !== SPACE) to++;
    return this.streams.has(internName(buf, from, to));
  }

  /** A line claims() took; throws ProtocolError for a malformed one or a batch past maxBatchBytes. */
  line(buf: Buffer, start: number, end: number): void {
    if (buf[start] === RDATA_[0]) this.rdata(buf, start, end);
    else this.position(buf, start, end);
  }

  /** The position of every pair seen, per stream and instance (null: named, nothing yet). */
  positions(): Record<string, Record<string, number | null>> {
    const out: Record<string, Record<string, number | null>> = {};
    for (const [stream, st] of this.streams) {
      const pairs: Record<string, number | null> = {};
      for (const [instance, pair] of st.pairs) pairs[instance] = pair.token;
      out[stream] = pairs;
    }
    return out;
  }

  /** A `*` stream's lines: from its first token while no pair is known; else `* 0`, then each known pair from its position. */
  private replicate(stream: string, st: StreamState): Buffer[] {
    const known = [...st.pairs].filter(([, pair]) => pair.token !== null);
    if (known.length === 0) return [v1Text.encode({ name: 'REPLICATE', stream, instance: '*', token: st.from })];
    return [
      v1Text.encode({ name: 'REPLICATE', stream, instance: '*', token: 0 }),
      ...known.map(([instance, pair]) => v1Text.encode({ name: 'REPLICATE', stream, instance, token: pair.token! })),
    ];
  }

  private rdata(buf: Buffer, start: number, end: number): void {
    const r = this.route;
    routeTodayRow(buf, start, end, r);
    const pair = pairOf(this.streams.get(r.stream)!, r.instance);
    if (pair === undefined) return;
    pair.batch.add(new RdataCommand(r.stream, r.token, buf, r.rowStart, end), buf, start, end);
    const token = r.token;
    if (token === null) {
      if (pair.batch.bytes > this.maxBatchBytes) {
        throw new ProtocolError('BATCH_TOO_LARGE', `batch of ${r.stream} ${r.instance} over ${this.maxBatchBytes} bytes without its numbered row`);
      }
      return;
    }
    if (pair.token !== null && token <= pair.token) {
      if (pair.run === null || token >= pair.run) {
        pair.batch.clear(); // delivered before
        pair.run = null;
        return;
      }
    } else {
      pair.token = token;
    }
    pair.run = token;
    this.sink.rows(pair.batch.take(r.stream, token, 0, r.instance));
  }

  private position(buf: Buffer, start: number, end: number): void {
    const cmd = parseTodayCommand(buf, start, end);
    if (cmd.name !== 'POSITION') throw new ProtocolError('BAD_ARGUMENT', 'expected POSITION <stream> <instance> <prev> <new>');
    const pair = pairOf(this.streams.get(cmd.stream)!, cmd.instance);
    if (pair === undefined) return;
    pair.batch.clear(); // a POSITION inside a batch: the batch never completes
    pair.run = null;
    const before = pair.token;
    pair.token = cmd.newToken;
    this.sink.position(cmd.stream, cmd.newToken, before, cmd.instance);
  }
}

function newPair(from: number | 'NOW'): PairState {
  return { token: from === 'NOW' ? null : from, from, batch: new RowCollector(), run: null };
}

/** The pair a line of `instance` belongs to: a `*` stream takes in a writer it has not seen; otherwise undefined (not asked for). */
function pairOf(st: StreamState, instance: string): PairState | undefined {
  let pair = st.pairs.get(instance);
  if (pair === undefined && st.every) st.pairs.set(instance, (pair = newPair('NOW')));
  return pair;
}
