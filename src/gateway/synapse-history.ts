/**
 * The history the gateway keeps of a followed Synapse deployment: one
 * stream log (src/core/stream-log.ts) per (stream, writer instance) pair and
 * generation, holding the lines exactly as Synapse published them:
 *
 *     RDATA events event_persister1 batch ["ev",[...]]    one entry: the batch and
 *     RDATA events event_persister1 1034 ["state",[...]]  its numbered row
 *     (advance to 1035)                                   a POSITION: no line
 *     RDATA backfill event_persister2 7 [...]             a backfill batch, published
 *     RDATA backfill event_persister2 6 [...]             descending: 6 stored after 7, at 7
 *
 * It is the follower's sink (src/core/synapse-follower.ts). A gap it cannot
 * fill restarts the pair's log at the gap's end, so a catch-up across it is
 * refused as too old, never served with a hole; a reset (the writer went
 * back) begins the pair's next generation. Logs come from a PairLogSource:
 * memory, or file logs under `<dir>/synapse/<stream>/<instance>/<generation>`.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { TodayCommand } from '../core/dialects/synapse-today.js';
import type { ProtocolError } from '../core/errors.js';
import { advanceEntry, isPending, MemoryStreamLog, type LogEntry, type StreamLog } from '../core/stream-log.js';
import type { FollowerSink } from '../core/synapse-follower.js';
import { SYNAPSE_NAME } from '../core/synapse-name.js';
import { updateGroups, type StreamUpdates } from '../core/synapse-catch-up.js';
import { FileStreamLog, type FileLogOptions } from '../bindings/file-log.js';

/** A pair's log found in the store when the gateway starts. */
export interface StoredPair {
  stream: string;
  instance: string;
  generation: number;
  log: StreamLog;
}

/** Where pair logs come from: a log opens now (memory) or later (file). */
export interface PairLogSource {
  /** The pairs the store holds from before (their newest generation each). */
  existing(): Promise<StoredPair[]>;
  open(stream: string, instance: string, generation: number, startToken: number): StreamLog | Promise<StreamLog>;
  close(): Promise<void>;
}

export function memoryPairLogs(options: { retentionRows: number; retentionBytes: number }): PairLogSource {
  return {
    existing: async () => [],
    open: (_stream, _instance, _generation, startToken) => new MemoryStreamLog({ ...options, startToken }),
    close: async () => {},
  };
}

export function filePairLogs(dir: string, options: Omit<FileLogOptions, 'startToken'>): PairLogSource {
  const root = path.join(dir, 'synapse');
  const opened: FileStreamLog[] = [];
  const open = async (stream: string, instance: string, generation: number, startToken?: number): Promise<FileStreamLog> => {
    const log = await FileStreamLog.open(stream, path.join(root, stream, instance, String(generation)), { ...options, descendingRows: true });
    opened.push(log);
    // restartAt writes the start down (an empty segment named after it); a startToken option would be forgotten by a restart with no rows yet.
    if (startToken !== undefined && startToken > log.head) log.restartAt(startToken);
    return log;
  };
  return {
    async existing() {
      const found: StoredPair[] = [];
      for (const stream of await names(root)) {
        for (const instance of await names(path.join(root, stream))) {
          const generations = (await names(path.join(root, stream, instance))).filter((g) => /^[0-9]{1,9}$/.test(g)).map(Number);
          if (generations.length === 0) continue;
          const generation = Math.max(...generations);
          found.push({ stream, instance, generation, log: await open(stream, instance, generation) });
        }
      }
      return found;
    },
    open: (stream, instance, generation, startToken) => open(stream, instance, generation, startToken),
    async close() {
      await Promise.all(opened.map((l) => l.close()));
    },
  };
}

async function names(dir: string): Promise<string[]> {
  try {
    return (await fs.promises.readdir(dir)).filter((n) => SYNAPSE_NAME.test(n)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** A gap the gateway could not fill: rows of the pair in (afterToken, uptoToken] may be missing from its history. */
export interface RecordedGap {
  afterToken: number;
  uptoToken: number;
  at: number;
}

type PairOp =
  | { kind: 'append'; entry: LogEntry; run: boolean }
  | { kind: 'descending'; token: number; bytes: Buffer; lines: number }
  | { kind: 'fill'; afterToken: number; uptoToken: number };

/** One page of an instance's rows of a stream in (fromToken, uptoToken], from its HTTP replication endpoint. */
export type FetchUpdates = (stream: string, fromToken: number, uptoToken: number) => Promise<StreamUpdates>;

/** Pages fetched for one gap before it is given up as unfillable: ~100 rows a page. */
export const MAX_FILL_PAGES = 10_000;

/** One (stream, instance): its current log (null while it opens), what waits for it, and its record. */
export class PairHistory {
  log: StreamLog | null = null;
  readonly waiting: PairOp[] = [];
  readonly gaps: RecordedGap[] = [];
  gapsFilled = 0;
  /** A gap is being filled over HTTP: what comes after it waits. */
  filling = false;
  /**
   * Token of the live group appended last, when nothing else was appended
   * after it: a descending row is stored after it, at its token. Null after
   * anything else (an advance, a fill's rows, a restart), so a row the fill
   * already stored is never stored twice.
   */
  runHead: number | null = null;

  constructor(
    readonly stream: string,
    readonly instance: string,
    public generation: number,
  ) {}
}

export interface SynapseHistoryStats {
  /** Rows stored, descending ones included. */
  rows: number;
  /** Rows stored after a higher token of their writer (backfill's descending batches). */
  descendingRows: number;
  /** Rows at or below their writer's position that were not stored (a replay of what the history holds). */
  lateRows: number;
  refusedLines: number;
  gapsOpen: number;
  gapsFilled: number;
  commands: Record<string, number>;
}

/** Told when a pair's log is there or replaced (a reset): the serving side listens to it. */
export type PairLogListener = (pair: PairHistory, log: StreamLog) => void;

export class SynapseHistory implements FollowerSink {
  /** By stream, then writer instance. */
  private readonly pairs = new Map<string, Map<string, PairHistory>>();
  private rows = 0;
  private descendingRows = 0;
  private lateRows = 0;
  private refusedLines = 0;
  private readonly commandCounts: Record<string, number> = {};
  private pairListener: PairLogListener = () => {};

  constructor(
    private readonly source: PairLogSource,
    private readonly logger: Logger,
    /** The HTTP endpoint of an instance (--synapse-replication-url), or null: its gaps are recorded. */
    private readonly endpoint: (instance: string) => FetchUpdates | null = () => null,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes the pairs the store holds; returns them so the follower is told where each stands. */
  async load(): Promise<PairHistory[]> {
    const out: PairHistory[] = [];
    for (const stored of await this.source.existing()) {
      const pair = new PairHistory(stored.stream, stored.instance, stored.generation);
      pair.log = stored.log;
      this.add(pair);
      out.push(pair);
    }
    return out;
  }

  onPairLog(listener: PairLogListener): void {
    this.pairListener = listener;
  }

  /** Looked up per row: by stream, then instance (no key string made per row). */
  pair(stream: string, instance: string): PairHistory | undefined {
    return this.pairs.get(stream)?.get(instance);
  }

  private add(pair: PairHistory): void {
    let byInstance = this.pairs.get(pair.stream);
    if (byInstance === undefined) {
      byInstance = new Map();
      this.pairs.set(pair.stream, byInstance);
    }
    byInstance.set(pair.instance, pair);
  }

  all(): PairHistory[] {
    return [...this.pairs.values()].flatMap((byInstance) => [...byInstance.values()]);
  }

  stats(): SynapseHistoryStats {
    let gapsOpen = 0;
    let gapsFilled = 0;
    for (const p of this.all()) {
      gapsOpen += p.gaps.length;
      gapsFilled += p.gapsFilled;
    }
    return { rows: this.rows, descendingRows: this.descendingRows, lateRows: this.lateRows, refusedLines: this.refusedLines, gapsOpen, gapsFilled, commands: { ...this.commandCounts } };
  }

  close(): Promise<void> {
    return this.source.close();
  }

  // ---------------------------------------------------------------- FollowerSink

  started(stream: string, instance: string, token: number): void {
    if (!SYNAPSE_NAME.test(stream) || !SYNAPSE_NAME.test(instance)) {
      this.logger.error({ stream, instance }, 'a Synapse stream or instance name with characters the gateway does not store (letters, digits, _ . - only): its rows are not kept');
      return;
    }
    const pair = new PairHistory(stream, instance, 1);
    this.add(pair);
    this.openLog(pair, token);
  }

  group(stream: string, instance: string, token: number, bytes: Buffer, lines: number): void {
    const pair = this.pair(stream, instance);
    if (pair === undefined) return;
    this.rows += lines;
    const entry = { firstToken: token, lastToken: token, bytes, lines, rows: lines };
    // The usual case, per row: the log is there and nothing waits before this entry.
    if (pair.log !== null && !pair.filling) this.append(pair, pair.log, entry, true);
    else this.apply(pair, { kind: 'append', entry, run: true });
  }

  advanced(stream: string, instance: string, token: number): void {
    const pair = this.pair(stream, instance);
    if (pair !== undefined) this.apply(pair, { kind: 'append', entry: advanceEntry(token), run: false });
  }

  gap(stream: string, instance: string, afterToken: number, uptoToken: number): void {
    const pair = this.pair(stream, instance);
    if (pair !== undefined) this.apply(pair, { kind: 'fill', afterToken, uptoToken });
  }

  reset(stream: string, instance: string, fromToken: number, token: number): void {
    const pair = this.pair(stream, instance);
    if (pair === undefined) return;
    pair.generation++;
    this.logger.warn({ stream, instance, fromToken, token, generation: pair.generation }, 'a Synapse writer restarted its stream from a lower token: a new generation of the pair begins');
    pair.log = null;
    pair.runHead = null;
    pair.filling = false;
    pair.waiting.length = 0;
    pair.gaps.length = 0;
    this.openLog(pair, token);
  }

  descending(stream: string, instance: string, token: number, bytes: Buffer, lines: number): void {
    const pair = this.pair(stream, instance);
    if (pair !== undefined) this.apply(pair, { kind: 'descending', token, bytes, lines });
  }

  late(stream: string, instance: string, token: number): void {
    this.notStored(stream, instance, token);
  }

  command(cmd: TodayCommand): void {
    this.commandCounts[cmd.name] = (this.commandCounts[cmd.name] ?? 0) + 1;
  }

  refused(line: Buffer, err: ProtocolError): void {
    this.refusedLines++;
    this.logger.warn({ err: err.message, code: err.code, line: line.subarray(0, 200).toString('utf8').trimEnd() }, 'ignored a line on the Synapse channel that is not today\'s dialect');
  }

  // ---------------------------------------------------------------- logs

  private openLog(pair: PairHistory, startToken: number): void {
    const generation = pair.generation;
    const opened = this.source.open(pair.stream, pair.instance, generation, startToken);
    if (!isPending(opened)) {
      this.ready(pair, opened);
      return;
    }
    opened.then(
      (log) => {
        if (pair.generation === generation) this.ready(pair, log);
      },
      (err: unknown) => this.logger.error({ stream: pair.stream, instance: pair.instance, err: (err as Error).message }, 'could not open the log of a Synapse stream: its rows are not kept'),
    );
  }

  private ready(pair: PairHistory, log: StreamLog): void {
    pair.log = log;
    this.pairListener(pair, log);
    const ops = pair.waiting.splice(0);
    for (const op of ops) this.apply(pair, op);
  }

  private apply(pair: PairHistory, op: PairOp): void {
    const log = pair.log;
    if (log === null || pair.filling) {
      pair.waiting.push(op);
      return;
    }
    if (op.kind === 'fill') {
      const fetch = this.endpoint(pair.instance);
      if (fetch === null) this.recordGap(pair, log, op.afterToken, op.uptoToken, 'no --synapse-replication-url for this instance');
      else void this.fill(pair, log, fetch, op.afterToken, op.uptoToken);
      return;
    }
    if (op.kind === 'descending') this.appendDescending(pair, log, op.token, op.bytes, op.lines);
    else this.append(pair, log, op.entry, op.run);
  }

  /** `run`: the entry is a live group, which a descending row may follow. */
  private append(pair: PairHistory, log: StreamLog, entry: LogEntry, run: boolean): void {
    pair.runHead = null;
    // The follower's tokens rise per pair; a log restarted at a gap's end, or filled past it, can already be there.
    if (entry.lastToken <= log.lastAppended) return;
    if (this.store(pair, log, entry) && run) pair.runHead = entry.lastToken;
  }

  /** A descending row goes right after the group it descends from, at that group's token (the log's order is arrival order). */
  private appendDescending(pair: PairHistory, log: StreamLog, token: number, bytes: Buffer, lines: number): void {
    const head = pair.runHead;
    if (head === null || head !== log.lastAppended) return this.notStored(pair.stream, pair.instance, token);
    if (!this.store(pair, log, { firstToken: head, lastToken: head, bytes, lines, rows: lines })) return;
    this.rows += lines;
    this.descendingRows += lines;
  }

  /** Whether the log took the entry (a later failure is reported when it comes). */
  private store(pair: PairHistory, log: StreamLog, entry: LogEntry): boolean {
    try {
      const stored = log.append(entry);
      if (isPending(stored)) stored.catch((err: unknown) => this.appendFailed(pair, err));
      return true;
    } catch (err) {
      this.appendFailed(pair, err);
      return false;
    }
  }

  private notStored(stream: string, instance: string, token: number): void {
    this.lateRows++;
    this.logger.info({ stream, instance, token }, "a Synapse row at or below its writer's position, not descending from the rows just before it (a replay): not stored");
  }

  /** The rows of (afterToken, uptoToken] from the instance's endpoint, page by page, stored before anything that came after. */
  private async fill(pair: PairHistory, log: StreamLog, fetch: FetchUpdates, afterToken: number, uptoToken: number): Promise<void> {
    pair.filling = true;
    const generation = pair.generation;
    try {
      let from = afterToken;
      let pages = 0;
      for (;;) {
        const page = await fetch(pair.stream, from, uptoToken);
        if (pair.generation !== generation) return;
        for (const g of updateGroups(pair.stream, pair.instance, page.updates)) {
          if (g.token > uptoToken) break;
          this.rows += g.lines;
          this.append(pair, log, { firstToken: g.token, lastToken: g.token, bytes: g.bytes, lines: g.lines, rows: g.lines }, false);
        }
        if (!page.limited) break;
        if (page.uptoToken <= from || ++pages >= MAX_FILL_PAGES) throw new Error(`the endpoint's pages stopped advancing at ${page.uptoToken}`);
        from = page.uptoToken;
      }
      this.append(pair, log, advanceEntry(uptoToken), false);
      pair.gapsFilled++;
      this.logger.info({ stream: pair.stream, instance: pair.instance, afterToken, uptoToken }, 'filled a gap in a Synapse stream from its writer\'s replication endpoint');
    } catch (err) {
      if (pair.generation !== generation) return;
      this.recordGap(pair, log, Math.max(afterToken, Math.min(log.lastAppended, uptoToken)), uptoToken, (err as Error).message);
    } finally {
      if (pair.generation === generation) {
        pair.filling = false;
        for (const op of pair.waiting.splice(0)) this.apply(pair, op);
      }
    }
  }

  /** A gap that stays: catch-up from before its end is refused as too old. */
  private recordGap(pair: PairHistory, log: StreamLog, afterToken: number, uptoToken: number, why: string): void {
    pair.gaps.push({ afterToken, uptoToken, at: this.now() });
    this.logger.warn(
      { stream: pair.stream, instance: pair.instance, afterToken, uptoToken, why },
      'gap in a Synapse stream: rows in this range were published while the gateway did not hear them; catch-up from before it is refused as too old',
    );
    pair.runHead = null;
    if (uptoToken > log.lastAppended) log.restartAt(uptoToken);
  }

  private appendFailed(pair: PairHistory, err: unknown): void {
    this.logger.error({ stream: pair.stream, instance: pair.instance, err: (err as Error).message }, 'could not store rows of a Synapse stream');
  }
}
