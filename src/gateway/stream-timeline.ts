/**
 * When each recent token of a stream was stored, and how many rows the
 * stream had by then: what turns a subscriber's last token into "rows
 * behind" and "seconds behind". A bounded ring per stream; a token older
 * than the ring gives an estimate from its oldest sample (one row per token
 * beyond it), never unbounded memory.
 */

const DEFAULT_CAPACITY = 16_384;

export interface Behind {
  rows: number;
  seconds: number;
}

class Ring {
  readonly tokens: Float64Array;
  /** Rows the stream had before each sample's append. */
  readonly rowsBefore: Float64Array;
  readonly times: Float64Array;
  /** Index of the oldest sample. */
  start = 0;
  length = 0;
  totalRows = 0;
  head = -1;

  constructor(readonly capacity: number) {
    this.tokens = new Float64Array(capacity);
    this.rowsBefore = new Float64Array(capacity);
    this.times = new Float64Array(capacity);
  }

  at(i: number): number {
    return (this.start + i) % this.capacity;
  }
}

export class StreamTimeline {
  private readonly rings = new Map<string, Ring>();

  constructor(private readonly capacity = DEFAULT_CAPACITY) {}

  /** `rows` rows (0 for a POSITION) were stored, moving `stream` to `head`, at `now` (ms). */
  written(stream: string, rows: number, head: number, now: number): void {
    let ring = this.rings.get(stream);
    if (ring === undefined) this.rings.set(stream, (ring = new Ring(this.capacity)));
    let slot: number;
    if (ring.length < ring.capacity) {
      slot = ring.at(ring.length);
      ring.length++;
    } else {
      slot = ring.start;
      ring.start = (ring.start + 1) % ring.capacity;
    }
    ring.tokens[slot] = head;
    ring.rowsBefore[slot] = ring.totalRows;
    ring.times[slot] = now;
    ring.totalRows += rows;
    ring.head = head;
  }

  /** How far a subscriber whose last token is `token` is behind the head of `stream`. */
  behind(stream: string, token: number, now: number): Behind {
    const ring = this.rings.get(stream);
    if (ring === undefined || ring.length === 0 || token >= ring.head) return { rows: 0, seconds: 0 };
    // First sample past `token`: the oldest rows the subscriber lacks, and when they were stored.
    let lo = 0;
    let hi = ring.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ring.tokens[ring.at(mid)]! > token) hi = mid;
      else lo = mid + 1;
    }
    const firstPast = ring.at(lo);
    const seconds = Math.max(0, (now - ring.times[firstPast]!) / 1000);
    const rows = ring.totalRows - ring.rowsBefore[firstPast]!;
    if (lo > 0) return { rows, seconds };
    // Older than the ring: add an estimate of one row per token before it.
    const before = Math.max(0, ring.tokens[firstPast]! - token - 1);
    return { rows: rows + before, seconds };
  }
}
