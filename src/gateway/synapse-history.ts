/**
 * The history the gateway keeps of a followed Synapse deployment: one
 * stream log (src/core/stream-log.ts) per (stream, writer instance) pair and
 * generation, holding the lines exactly as Synapse published them:
 *
 *     RDATA events event_persister1 batch ["ev",[...]]    one entry: the batch and
 *     RDATA events event_persister1 1034 ["state",[...]]  its numbered row
 *     (advance to 1035)                                   a POSITION: no line
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

/** Stream and instance names become directory names: only these characters. */
const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export function filePairLogs(dir: string, options: Omit<FileLogOptions, 'startToken'>): PairLogSource {
  const root = path.join(dir, 'synapse');
  const opened: FileStreamLog[] = [];
  const open = async (stream: string, instance: string, generation: number, startToken?: number): Promise<FileStreamLog> => {
    const log = await FileStreamLog.open(stream, path.join(root, stream, instance, String(generation)), options);
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
    return (await fs.promises.readdir(dir)).filter((n) => SAFE_NAME.test(n)).sort();
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

type PairOp = { kind: 'append'; entry: LogEntry } | { kind: 'restart'; token: number };

/** One (stream, instance): its current log (null while it opens), what waits for it, and its record. */
export class PairHistory {
  log: StreamLog | null = null;
  readonly waiting: PairOp[] = [];
  readonly gaps: RecordedGap[] = [];
  lateRows = 0;
  appendErrors = 0;

  constructor(
    readonly stream: string,
    readonly instance: string,
    public generation: number,
  ) {}
}

export interface SynapseHistoryStats {
  rows: number;
  lateRows: number;
  refusedLines: number;
  gapsOpen: number;
  commands: Record<string, number>;
}

/** Told when a pair's log is there or replaced (a reset): the serving side listens to it. */
export type PairLogListener = (pair: PairHistory, log: StreamLog) => void;

export class SynapseHistory implements FollowerSink {
  private readonly pairs = new Map<string, PairHistory>();
  private rows = 0;
  private lateRows = 0;
  private refusedLines = 0;
  private readonly commandCounts: Record<string, number> = {};
  private pairListener: PairLogListener = () => {};

  constructor(
    private readonly source: PairLogSource,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes the pairs the store holds; returns them so the follower is told where each stands. */
  async load(): Promise<PairHistory[]> {
    const out: PairHistory[] = [];
    for (const stored of await this.source.existing()) {
      const pair = new PairHistory(stored.stream, stored.instance, stored.generation);
      pair.log = stored.log;
      this.pairs.set(key(stored.stream, stored.instance), pair);
      out.push(pair);
    }
    return out;
  }

  onPairLog(listener: PairLogListener): void {
    this.pairListener = listener;
  }

  pair(stream: string, instance: string): PairHistory | undefined {
    return this.pairs.get(key(stream, instance));
  }

  all(): PairHistory[] {
    return [...this.pairs.values()];
  }

  stats(): SynapseHistoryStats {
    let gapsOpen = 0;
    for (const p of this.pairs.values()) gapsOpen += p.gaps.length;
    return { rows: this.rows, lateRows: this.lateRows, refusedLines: this.refusedLines, gapsOpen, commands: { ...this.commandCounts } };
  }

  close(): Promise<void> {
    return this.source.close();
  }

  // ---------------------------------------------------------------- FollowerSink

  started(stream: string, instance: string, token: number): void {
    if (!SAFE_NAME.test(stream) || !SAFE_NAME.test(instance)) {
      this.logger.error({ stream, instance }, 'a Synapse stream or instance name with characters the gateway does not store (letters, digits, _ . - only): its rows are not kept');
      return;
    }
    const pair = new PairHistory(stream, instance, 1);
    this.pairs.set(key(stream, instance), pair);
    this.openLog(pair, token);
  }

  group(stream: string, instance: string, token: number, bytes: Buffer, lines: number): void {
    const pair = this.pairs.get(key(stream, instance));
    if (pair === undefined) return;
    this.rows += lines;
    this.apply(pair, { kind: 'append', entry: { firstToken: token, lastToken: token, bytes, lines, rows: lines } });
  }

  advanced(stream: string, instance: string, token: number): void {
    const pair = this.pairs.get(key(stream, instance));
    if (pair !== undefined) this.apply(pair, { kind: 'append', entry: advanceEntry(token) });
  }

  gap(stream: string, instance: string, afterToken: number, uptoToken: number): void {
    const pair = this.pairs.get(key(stream, instance));
    if (pair === undefined) return;
    pair.gaps.push({ afterToken, uptoToken, at: this.now() });
    this.logger.warn(
      { stream, instance, afterToken, uptoToken },
      'gap in a Synapse stream: rows in this range were published while the gateway did not hear them; catch-up from before it is refused as too old',
    );
    this.apply(pair, { kind: 'restart', token: uptoToken });
  }

  reset(stream: string, instance: string, fromToken: number, token: number): void {
    const pair = this.pairs.get(key(stream, instance));
    if (pair === undefined) return;
    pair.generation++;
    this.logger.warn({ stream, instance, fromToken, token, generation: pair.generation }, 'a Synapse writer restarted its stream from a lower token: a new generation of the pair begins');
    pair.log = null;
    pair.waiting.length = 0;
    pair.gaps.length = 0;
    this.openLog(pair, token);
  }

  late(stream: string, instance: string, token: number): void {
    const pair = this.pairs.get(key(stream, instance));
    this.lateRows++;
    if (pair !== undefined) pair.lateRows++;
    this.logger.info({ stream, instance, token }, 'a Synapse row at or below its writer\'s position (backfill publishes descending): not in the token-ordered history');
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
    if (log === null) {
      pair.waiting.push(op);
      return;
    }
    if (op.kind === 'restart') {
      if (op.token > log.lastAppended) log.restartAt(op.token);
      return;
    }
    // The follower's tokens rise per pair; a log restarted at a gap's end can already be at this advance.
    if (op.entry.lastToken <= log.lastAppended) return;
    try {
      const stored = log.append(op.entry);
      if (isPending(stored)) stored.catch((err: unknown) => this.appendFailed(pair, err));
    } catch (err) {
      this.appendFailed(pair, err);
    }
  }

  private appendFailed(pair: PairHistory, err: unknown): void {
    pair.appendErrors++;
    this.logger.error({ stream: pair.stream, instance: pair.instance, err: (err as Error).message }, 'could not store rows of a Synapse stream');
  }
}

function key(stream: string, instance: string): string {
  return `${stream}\u0000${instance}`;
}
