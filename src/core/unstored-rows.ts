/**
 * A writer's rows that the gateway is not yet known to hold (PROTOCOL.md
 * section 4, Writers), as the RDATA lines it sent or will send:
 *
 *     RDATA events batch [...]
 *     RDATA events 41 [...]       one entry: every line of token 41
 *
 * The writer learns what is stored two ways: the POSITION answering its
 * `REPLICATE <stream> NOW` on every connect is the stored head, and each
 * numbered RDATA echoed back by that subscription is stored too. Entries up
 * to either are dropped; after a reconnect every entry left is sent again.
 * Bounded by rows and bytes: the writer waits for room before adding.
 */

interface Entry {
  token: number;
  lines: Buffer;
  rows: number;
}

class StreamEntries {
  entries: Entry[] = [];
  /** entries[head] is the oldest still unstored. */
  head = 0;
  /** entries[sendAt] is the first not yet written on this connection. */
  sendAt = 0;
}

/** Entries handed to the transport in one call at most, so one write stays a sensible size. */
const MAX_CHUNKS_PER_TAKE = 256;

export class UnstoredRows {
  private readonly streams = new Map<string, StreamEntries>();
  private rowCount = 0;
  private byteCount = 0;

  constructor(
    readonly maxRows: number,
    readonly maxBytes: number,
  ) {}

  get rows(): number {
    return this.rowCount;
  }

  get bytes(): number {
    return this.byteCount;
  }

  /** Would a batch of `rows` rows and `bytes` bytes fit? An empty buffer takes anything. */
  hasRoom(rows: number, bytes: number): boolean {
    if (this.rowCount === 0) return true;
    return this.rowCount + rows <= this.maxRows && this.byteCount + bytes <= this.maxBytes;
  }

  /** Adds the lines of one token, which must be above every token already added for the stream. */
  add(stream: string, token: number, lines: Buffer, rows: number): void {
    let s = this.streams.get(stream);
    if (s === undefined) this.streams.set(stream, (s = new StreamEntries()));
    s.entries.push({ token, lines, rows });
    this.rowCount += rows;
    this.byteCount += lines.length;
  }

  /** The gateway holds everything of `stream` up to `token`: forget it. Returns the rows dropped. */
  stored(stream: string, token: number): number {
    const s = this.streams.get(stream);
    if (s === undefined) return 0;
    let dropped = 0;
    while (s.head < s.entries.length && s.entries[s.head]!.token <= token) {
      const e = s.entries[s.head]!;
      dropped += e.rows;
      this.rowCount -= e.rows;
      this.byteCount -= e.lines.length;
      s.head++;
    }
    if (s.sendAt < s.head) s.sendAt = s.head;
    // Drop the consumed prefix now and then, not on every ack.
    if (s.head > 1024 && s.head * 2 > s.entries.length) {
      s.entries = s.entries.slice(s.head);
      s.sendAt -= s.head;
      s.head = 0;
    }
    return dropped;
  }

  /** A new connection: everything unstored is to be sent again. */
  rewind(stream: string): void {
    const s = this.streams.get(stream);
    if (s !== undefined) s.sendAt = s.head;
  }

  /** The next entries of `stream` not yet written on this connection, marked written; empty when none. */
  takeUnsent(stream: string): Buffer[] {
    const s = this.streams.get(stream);
    if (s === undefined) return [];
    const end = Math.min(s.entries.length, s.sendAt + MAX_CHUNKS_PER_TAKE);
    const out: Buffer[] = [];
    for (let i = s.sendAt; i < end; i++) out.push(s.entries[i]!.lines);
    s.sendAt = end;
    return out;
  }
}
