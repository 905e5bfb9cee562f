/**
 * A writer (PROTOCOL.md section 4): publishes rows to a gateway as RDATA
 * with rising tokens, and loses and duplicates nothing across reconnects.
 *
 *     < AUTH <writer token>
 *     < REPLICATE <stream> NOW          on every connect
 *     > POSITION <stream> <head>        the gateway holds every token up to head
 *     < RDATA <stream> ...              the rows after head, again, then new ones
 *     > RDATA <stream> <token> ...      our rows coming back: stored up to token
 *
 * Rows published stay in a bounded buffer (src/core/unstored-rows.ts) until
 * the gateway is known to hold them; publish() waits for room.
 */
import { ReplicationSession, type SessionEvents, type SessionOptions } from './client-session.js';
import type { ClientActionCommand } from './core/commands.js';
import type { RowBatch } from './core/row-batch.js';
import { encodeRows } from './core/row-encoding.js';
import { UnstoredRows } from './core/unstored-rows.js';

export interface ReplicationWriterOptions extends SessionOptions {
  /** The writer credential, sent as AUTH. */
  auth: string;
  /** The streams this writer publishes. */
  streams: readonly string[];
  /**
   * The token of the first row published, per stream or for all (default: the
   * gateway's head + 1 at the first connect). A token at or below the head is
   * taken as already stored and not sent again, so re-running the same input
   * with the same start token publishes only what is missing.
   */
  startToken?: number | Readonly<Record<string, number>>;
  /** Bounds of the buffer of rows not yet known stored (default 100000 rows, 64 MiB). */
  maxUnstoredRows?: number;
  maxUnstoredBytes?: number;
}

interface WrittenStream {
  /** The next token to assign; null until the first POSITION (unless a start token was given). */
  nextToken: number | null;
  /** The highest token the gateway is known to hold, -1 before any. */
  storedHead: number;
  /** POSITION came on this connection: rows may be sent. */
  live: boolean;
}

interface PendingPublish {
  stream: string;
  rows: readonly unknown[];
  resolve(token: number): void;
  reject(err: Error): void;
}

export interface ReplicationWriterEvents extends SessionEvents {
  /** A POSITION: the gateway holds `stream` up to `token`. */
  head: [stream: string, token: number];
  /** A client command a subscriber sent that the gateway forwards to its writers. */
  command: [cmd: ClientActionCommand];
}

/** Publishes rows to a gateway as a writer; its events are ReplicationWriterEvents. */
export class ReplicationWriter extends ReplicationSession<ReplicationWriterEvents> {
  private readonly written = new Map<string, WrittenStream>();
  private readonly unstored: UnstoredRows;
  private readonly pending: PendingPublish[] = [];
  private readonly startTokens: ReplicationWriterOptions['startToken'];
  private writable = true;
  private flushWaiters: { resolve(): void; reject(err: Error): void }[] = [];
  /** Rows whose token the gateway already held when they were published (startToken at or below the head). */
  alreadyStored = 0;

  constructor(options: ReplicationWriterOptions) {
    super(options, { acceptForwarded: true });
    this.unstored = new UnstoredRows(options.maxUnstoredRows ?? 100_000, options.maxUnstoredBytes ?? 64 * 1024 * 1024);
    this.startTokens = options.startToken;
    const now = Date.now();
    for (const stream of options.streams) {
      this.written.set(stream, { nextToken: null, storedHead: -1, live: false });
      this.conn.followHead(stream, now);
    }
  }

  /**
   * Publishes the rows as one token (a batch when there are several) and
   * resolves to that token once the rows are in the buffer; waits while the
   * buffer is full. Rejects with a RowEncodingError (code BAD_ROW) for a row
   * that is not JSON; no token is used up then.
   */
  publish(stream: string, rows: readonly unknown[]): Promise<number> {
    if (!this.written.has(stream)) {
      return Promise.reject(new TypeError(`stream ${stream} is not one of this writer's streams`));
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ stream, rows, resolve, reject });
      this.pump();
    });
  }

  /** Resolves once the gateway holds every row published so far; rejects if the writer is closed first. */
  flush(): Promise<void> {
    if (this.isFlushed()) return Promise.resolve();
    return new Promise((resolve, reject) => this.flushWaiters.push({ resolve, reject }));
  }

  /** The highest token the gateway is known to hold, or null before the first POSITION. */
  head(stream: string): number | null {
    const w = this.written.get(stream);
    return w === undefined || w.storedHead < 0 ? null : w.storedHead;
  }

  /** Rows published and not yet known stored. */
  get unstoredRows(): number {
    return this.unstored.rows;
  }

  protected onPosition(stream: string, token: number): void {
    const w = this.written.get(stream);
    if (w === undefined) return;
    const startToken = this.startToken(stream);
    w.nextToken ??= startToken ?? token + 1;
    // With a start token the input fixes every row's token: a head at or past
    // the next one means an earlier run stored those rows, and pump() counts
    // them as already stored. Without one, another writer took these tokens.
    if (startToken === undefined && token >= w.nextToken) {
      this.log.warn({ stream, head: token, nextToken: w.nextToken }, 'the gateway is ahead of this writer');
      w.nextToken = token + 1;
    }
    const first = w.storedHead < 0;
    w.storedHead = token;
    const dropped = this.unstored.stored(stream, token);
    if (first) this.alreadyStored += dropped; // published with a start token before we knew the head
    this.unstored.rewind(stream);
    w.live = true;
    this.emit('head', stream, token);
    this.send(stream);
    this.pump();
    this.checkFlushed();
  }

  protected onRows(batch: RowBatch): void {
    const w = this.written.get(batch.stream);
    if (w === undefined) return;
    if (batch.token > w.storedHead) w.storedHead = batch.token;
    this.unstored.stored(batch.stream, batch.token);
    this.pump();
    this.checkFlushed();
  }

  protected override onForwarded(cmd: ClientActionCommand): void {
    this.emit('command', cmd);
  }

  protected override onOpen(): void {
    this.writable = true;
  }

  protected override onDrain(): void {
    this.writable = true;
    for (const [stream, w] of this.written) if (w.live) this.send(stream);
  }

  protected override onDisconnected(): void {
    for (const w of this.written.values()) w.live = false;
  }

  protected override onClosed(): void {
    const err = new Error('the writer was closed');
    for (const p of this.pending.splice(0)) p.reject(err);
    if (this.isFlushed()) return;
    for (const w of this.flushWaiters.splice(0)) w.reject(new Error(`the writer was closed with ${this.unstored.rows} rows not known stored`));
  }

  private startToken(stream: string): number | undefined {
    const s = this.startTokens;
    return typeof s === 'number' ? s : s?.[stream];
  }

  /** Moves waiting publishes into the buffer, in call order, while there is room. */
  private pump(): void {
    while (this.pending.length > 0) {
      const p = this.pending[0]!;
      const w = this.written.get(p.stream)!;
      if (w.nextToken === null) w.nextToken = this.startToken(p.stream) ?? null;
      if (w.nextToken === null || !this.unstored.hasRoom(p.rows.length, 0)) return;
      this.pending.shift();
      const token = w.nextToken;
      let lines: Buffer;
      try {
        lines = encodeRows(p.stream, token, p.rows);
      } catch (err) {
        p.reject(err as Error);
        continue;
      }
      w.nextToken = token + 1;
      if (token <= w.storedHead) {
        this.alreadyStored += p.rows.length;
      } else {
        this.unstored.add(p.stream, token, lines, p.rows.length);
        if (w.live) this.send(p.stream);
      }
      p.resolve(token);
    }
    this.checkFlushed();
  }

  private send(stream: string): void {
    while (this.writable) {
      const chunks = this.unstored.takeUnsent(stream);
      if (chunks.length === 0) return;
      this.writable = this.conn.write(chunks, Date.now());
    }
  }

  private isFlushed(): boolean {
    return this.pending.length === 0 && this.unstored.rows === 0;
  }

  private checkFlushed(): void {
    if (this.flushWaiters.length === 0 || !this.isFlushed()) return;
    for (const w of this.flushWaiters.splice(0)) w.resolve();
  }
}
