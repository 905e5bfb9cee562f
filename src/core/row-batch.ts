/**
 * One delivery to a client's caller: the rows of one token of one stream,
 * as they came in `RDATA` lines
 *
 *     RDATA caches batch ["get_user_by_id",["@a:hs"],1490197670513]
 *     RDATA caches 54 ["get_user_by_id",["@b:hs"],1490197670513]
 *
 * Rows stay bytes: `rows[i].row()` parses one, `values()` parses all, and
 * `line(i)` is the received line itself (a view, no LF), for a relay that
 * forwards it unchanged. Rows of today's Synapse dialect name their writer
 * (`RDATA events event_persister1 1040 [...]`): `instance` is it, null for v1.
 */
import type { RdataCommand } from './commands.js';

export class RowBatch {
  constructor(
    readonly stream: string,
    readonly token: number,
    readonly rows: readonly RdataCommand[],
    /** Line i is `lineBufs[i][lineStarts[i], lineEnds[i])`: kept as numbers so no view is made unless asked for. */
    private readonly lineBufs: readonly Buffer[],
    private readonly lineStarts: readonly number[],
    private readonly lineEnds: readonly number[],
    /** The writer instance of today's dialect; null for a v1 stream. */
    readonly instance: string | null = null,
  ) {}

  /** Every row's value, parsed now. */
  values(): unknown[] {
    return this.rows.map((r) => r.row());
  }

  /** The bytes of row i's RDATA line as received, without its LF. */
  line(i: number): Buffer {
    const buf = this.lineBufs[i];
    if (buf === undefined) throw new RangeError(`no row ${i} in a batch of ${this.rows.length}`);
    return buf.subarray(this.lineStarts[i], this.lineEnds[i]);
  }
}

/** Collects the rows of one token as lines arrive; `take` hands them over and starts again. */
export class RowCollector {
  private rows: RdataCommand[] = [];
  private bufs: Buffer[] = [];
  private starts: number[] = [];
  private ends: number[] = [];
  private lineBytes = 0;

  get length(): number {
    return this.rows.length;
  }

  /** Bytes of the lines collected (what a batch that never ends would pin). */
  get bytes(): number {
    return this.lineBytes;
  }

  add(row: RdataCommand, buf: Buffer, start: number, end: number): void {
    this.lineBytes += end - start;
    this.rows.push(row);
    this.bufs.push(buf);
    this.starts.push(start);
    this.ends.push(end);
  }

  /** The collected rows from index `from` on, as one batch; the collector is empty afterwards. */
  take(stream: string, token: number, from = 0, instance: string | null = null): RowBatch {
    const batch =
      from === 0
        ? new RowBatch(stream, token, this.rows, this.bufs, this.starts, this.ends, instance)
        : new RowBatch(
            stream,
            token,
            this.rows.slice(from),
            this.bufs.slice(from),
            this.starts.slice(from),
            this.ends.slice(from),
            instance,
          );
    this.clear();
    return batch;
  }

  clear(): void {
    this.lineBytes = 0;
    this.rows = [];
    this.bufs = [];
    this.starts = [];
    this.ends = [];
  }
}
