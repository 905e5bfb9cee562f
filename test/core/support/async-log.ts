// A stream log that answers later and fails appends on demand: a memory log
// behind promises, for the contract suite and for the hub's async paths.
// `auto` answers on the next turn of the event loop; otherwise `answer()`
// answers everything asked so far, in order.

import { MemoryStreamLog, type LogCursor, type LogEntry, type LogListener, type LogRead, type MemoryLogOptions, type StreamLog } from '../../../src/core/stream-log.js';

interface Asked {
  run(): void;
}

export class AsyncLog implements StreamLog {
  private readonly inner: MemoryStreamLog;
  private listener: LogListener = { stored() {}, gap() {} };
  private asked: Asked[] = [];
  private appended: number;
  private reserved = 0;
  private inFlight = 0;
  /** While set, every append answered fails (with those queued behind it). */
  failAppends = false;
  /** Appends answered so far that failed. */
  failed = 0;

  constructor(
    options: MemoryLogOptions = {},
    private readonly auto = true,
  ) {
    this.inner = new MemoryStreamLog(options);
    this.inner.listen({ stored: (e) => this.listener.stored(e), gap: (t) => this.listener.gap(t) });
    this.appended = this.inner.head;
  }

  get head(): number {
    return this.inner.head;
  }
  get lastAppended(): number {
    return this.appended;
  }
  get oldest(): number {
    return this.inner.oldest;
  }
  get retainedRows(): number {
    return this.inner.retainedRows;
  }
  get retainedBytes(): number {
    return this.inner.retainedBytes;
  }
  /** Questions not yet answered. */
  get pending(): number {
    return this.asked.length;
  }

  listen(listener: LogListener): void {
    this.listener = listener;
  }

  append(entry: LogEntry): Promise<void> {
    this.appended = entry.lastToken;
    this.inFlight++;
    return this.ask((resolve, reject) => {
      this.inFlight--;
      if (this.failAppends) {
        this.failed++;
        // Nothing after a lost entry is stored: what is queued behind it fails too.
        if (this.inFlight === 0) this.appended = this.inner.head;
        reject(new Error('disk full'));
        return;
      }
      this.inner.append(entry);
      if (this.inFlight === 0) this.appended = this.inner.head;
      resolve(undefined);
    });
  }

  reserve(): number {
    this.reserved = Math.max(this.reserved, this.appended) + 1;
    return this.reserved;
  }

  release(): void {
    this.reserved = 0;
  }

  cursorAfter(token: number): Promise<LogCursor | null> {
    return this.ask((resolve) => resolve(this.inner.cursorAfter(token)));
  }

  read(cursor: LogCursor, maxBytes: number): Promise<LogRead | null> {
    return this.ask((resolve) => resolve(this.inner.read(cursor, maxBytes)));
  }

  restartAt(token: number): void {
    this.inner.restartAt(token);
    this.appended = token;
  }

  /** Answers every question asked so far, in order. */
  answer(): void {
    const asked = this.asked;
    this.asked = [];
    for (const a of asked) a.run();
  }

  private ask<T>(run: (resolve: (value: T) => void, reject: (err: Error) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.asked.push({ run: () => run(resolve, reject) });
      if (this.auto && this.asked.length === 1) setImmediate(() => this.answer());
    });
  }
}

/** Lets promise callbacks run (and anything they schedule on the next turn). */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
