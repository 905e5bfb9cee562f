// The chaos run's input, made from its seed, and the row-by-row check of
// what a subscriber received against it. A stream's token t always carries
// the same rows (how many, and what), whatever order the writer interleaves
// the streams in, so a subscriber is checked as rows arrive, in constant
// memory, however many rows the run writes:
//
//   stream a, token 7: ["a",7,0,"xxxx"] ["a",7,1,"x"]   (a batch of 2)
//   stream a, token 8: ["a",8,0,"xxxxxxxxx"]

export const CHAOS_STREAMS = ['a', 'b', 'c'] as const;
export type ChaosStream = (typeof CHAOS_STREAMS)[number];

/** mulberry32: a small seeded generator, so a run can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit mix of (seed, stream, token): what fixes a token's rows. */
function tokenHash(seed: number, stream: number, token: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(stream + 1, 0xc2b2ae35) ^ Math.imul(token, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/** How many rows token `token` of `stream` carries: one, or a batch of 2 to 5 (one token in five). */
export function rowsAt(seed: number, stream: number, token: number): number {
  const h = tokenHash(seed, stream, token);
  return h % 5 === 0 ? 2 + ((h >>> 8) % 4) : 1;
}

/**
 * Row `k` of token `token`, as the writer publishes it: mostly short, one
 * token in eight with 1 to 2 KB rows (lines that span reads, and bytes enough
 * that a paused subscriber fills its socket buffers within seconds).
 */
export function rowAt(seed: number, stream: number, token: number, k: number): unknown[] {
  const h = tokenHash(seed, stream, token);
  const padChars = (h >>> 12) % 8 === 0 ? 1000 + ((h >>> 16) % 1000) : (h >>> 20) % 40;
  return [CHAOS_STREAMS[stream], token, k, 'x'.repeat(padChars)];
}

/** The JSON a subscriber must receive for that row. */
export function rowJsonAt(seed: number, stream: number, token: number, k: number): string {
  return JSON.stringify(rowAt(seed, stream, token, k));
}

export interface PublishStep {
  stream: ChaosStream;
  token: number;
  rows: unknown[];
}

/**
 * The writer's input: publishes on streams picked at random from the seed,
 * each the next token of its stream (from 1), until `totalRows` rows (the
 * last batch may pass it by up to 4 rows). The same seed gives the same steps.
 */
export function* publishSteps(seed: number, totalRows: number): Generator<PublishStep> {
  const pick = seededRandom(seed ^ 0x5bd1e995);
  const next = [1, 1, 1];
  for (let written = 0; written < totalRows; ) {
    const s = Math.floor(pick() * CHAOS_STREAMS.length);
    const token = next[s]!++;
    const n = rowsAt(seed, s, token);
    const rows = Array.from({ length: n }, (_, k) => rowAt(seed, s, token, k));
    written += n;
    yield { stream: CHAOS_STREAMS[s]!, token, rows };
  }
}

/** The first thing a subscriber got wrong. */
export interface SequenceFault {
  stream: string;
  token: number;
  what: string;
}

/**
 * Checks one subscriber's deliveries as they come: per stream, tokens 1, 2,
 * 3, ... with exactly their rows, no gap, no duplicate, no reorder. Keeps the
 * first fault and the counts.
 */
export class SequenceChecker {
  /** The last token received per stream (0: none). */
  readonly lastToken = [0, 0, 0];
  readonly rowsReceived = [0, 0, 0];
  fault: SequenceFault | null = null;

  constructor(private readonly seed: number) {}

  /** One delivery: the rows of `token` (their JSON bytes). */
  receive(stream: string, token: number, rowsJson: readonly Buffer[]): void {
    if (this.fault !== null) return;
    const s = CHAOS_STREAMS.indexOf(stream as ChaosStream);
    if (s < 0) return this.fail(stream, token, `a stream the writer never wrote`);
    const want = this.lastToken[s]! + 1;
    if (token !== want) {
      return this.fail(stream, token, token <= this.lastToken[s]! ? `token ${token} again (or backwards) after ${this.lastToken[s]}` : `a gap: ${want} to ${token - 1} missing`);
    }
    const n = rowsAt(this.seed, s, token);
    if (rowsJson.length !== n) return this.fail(stream, token, `${rowsJson.length} rows, the writer wrote ${n}`);
    for (let k = 0; k < n; k++) {
      const got = rowsJson[k]!.toString('utf8');
      const expected = rowJsonAt(this.seed, s, token, k);
      if (got !== expected) return this.fail(stream, token, `row ${k} is ${got}, the writer wrote ${expected}`);
    }
    this.lastToken[s] = token;
    this.rowsReceived[s]! += n;
  }

  private fail(stream: string, token: number, what: string): void {
    this.fault = { stream, token, what };
  }
}
