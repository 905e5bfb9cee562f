/**
 * The bounded outbound queue of one connection: Buffers in FIFO order with a
 * command-count limit and a byte limit. An entry may hold several lines (a
 * run of one stream's rows), so it is pushed with the number of commands it
 * carries. A push that would cross either limit is refused and leaves the
 * queue as it was: the caller then sends `ERROR Failed to keep up` and closes.
 */

export const DEFAULT_MAX_QUEUE_COMMANDS = 10_000;
export const DEFAULT_MAX_QUEUE_BYTES = 64 * 1024 * 1024;

const INITIAL_CAPACITY = 16;

export class RingQueue {
  /** Power-of-two sized ring; grows by doubling, so push and shift are O(1) amortised. */
  private slots: (Buffer | undefined)[] = new Array(INITIAL_CAPACITY);
  private counts: number[] = new Array(INITIAL_CAPACITY);
  private head = 0;
  private entries = 0;
  private commandCount = 0;
  private byteCount = 0;

  constructor(
    readonly maxCommands = DEFAULT_MAX_QUEUE_COMMANDS,
    readonly maxBytes = DEFAULT_MAX_QUEUE_BYTES,
  ) {}

  get length(): number {
    return this.entries;
  }

  get commands(): number {
    return this.commandCount;
  }

  get bytes(): number {
    return this.byteCount;
  }

  /** Would `commands` more commands of `bytes` bytes fit? */
  fits(bytes: number, commands = 1): boolean {
    return this.commandCount + commands <= this.maxCommands && this.byteCount + bytes <= this.maxBytes;
  }

  /** Appends `buf`; false (and nothing queued) when it would cross a limit. */
  push(buf: Buffer, commands = 1): boolean {
    if (!this.fits(buf.length, commands)) return false;
    if (this.entries === this.slots.length) this.grow();
    const at = (this.head + this.entries) & (this.slots.length - 1);
    this.slots[at] = buf;
    this.counts[at] = commands;
    this.entries++;
    this.commandCount += commands;
    this.byteCount += buf.length;
    return true;
  }

  shift(): Buffer | undefined {
    if (this.entries === 0) return undefined;
    const at = this.head;
    const buf = this.slots[at]!;
    this.slots[at] = undefined;
    this.head = (at + 1) & (this.slots.length - 1);
    this.entries--;
    this.commandCount -= this.counts[at]!;
    this.byteCount -= buf.length;
    return buf;
  }

  /** Empties the queue into an array, in order, for one vectored write. */
  takeAll(): Buffer[] {
    const out = new Array<Buffer>(this.entries);
    const mask = this.slots.length - 1;
    for (let i = 0; i < this.entries; i++) {
      const at = (this.head + i) & mask;
      out[i] = this.slots[at]!;
      this.slots[at] = undefined;
    }
    this.head = 0;
    this.entries = 0;
    this.commandCount = 0;
    this.byteCount = 0;
    return out;
  }

  /** Takes entries from the head, in order, while they fit in `maxBytes` (at least one), for one vectored write. */
  takeUpTo(maxBytes: number): Buffer[] {
    const out: Buffer[] = [];
    const mask = this.slots.length - 1;
    let bytes = 0;
    while (this.entries > 0) {
      const at = this.head;
      const buf = this.slots[at]!;
      if (out.length > 0 && bytes + buf.length > maxBytes) break;
      out.push(buf);
      bytes += buf.length;
      this.slots[at] = undefined;
      this.head = (at + 1) & mask;
      this.entries--;
      this.commandCount -= this.counts[at]!;
    }
    this.byteCount -= bytes;
    return out;
  }

  clear(): void {
    this.slots = new Array(INITIAL_CAPACITY);
    this.counts = new Array(INITIAL_CAPACITY);
    this.head = 0;
    this.entries = 0;
    this.commandCount = 0;
    this.byteCount = 0;
  }

  private grow(): void {
    const size = this.slots.length;
    const slots = new Array<Buffer | undefined>(size * 2);
    const counts = new Array<number>(size * 2);
    for (let i = 0; i < this.entries; i++) {
      const at = (this.head + i) & (size - 1);
      slots[i] = this.slots[at];
      counts[i] = this.counts[at]!;
    }
    this.slots = slots;
    this.counts = counts;
    this.head = 0;
  }
}
