// Progress on stderr while a scenario runs, for the person watching: what
// runs (scenario, system, S), rows done / total, and the time it has taken.
// At most one line a second per phase, plus a heartbeat while nothing moves
// (connecting 10,000 sockets, waiting out a pause), so a run never looks hung.

const UPDATE_EVERY_MS = 1000;
const HEARTBEAT_MS = 3000;

export class Progress {
  private readonly runStartedAt = Date.now();

  constructor(private readonly quiet = false) {}

  /** One line, prefixed with the time since the run started. */
  line(text: string): void {
    if (this.quiet) return;
    const s = ((Date.now() - this.runStartedAt) / 1000).toFixed(1).padStart(6);
    process.stderr.write(`[bench ${s} s] ${text}\n`);
  }

  /** A phase of a scenario whose progress is counted in rows (total 0: not counted). */
  phase(label: string, totalRows = 0): Phase {
    return new Phase(this, label, totalRows);
  }
}

export class Phase {
  private readonly startedAt = Date.now();
  private done = 0;
  private lastPrintAt = 0;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly progress: Progress,
    private readonly label: string,
    private readonly totalRows: number,
  ) {
    this.print('started');
    this.heartbeat = setInterval(() => {
      if (Date.now() - this.lastPrintAt >= HEARTBEAT_MS) this.print(this.rowsText());
    }, HEARTBEAT_MS).unref();
  }

  /** Rows done so far (e.g. from the subscriber's progress line). */
  rows(done: number): void {
    this.done = done;
    if (Date.now() - this.lastPrintAt >= UPDATE_EVERY_MS) this.print(this.rowsText());
  }

  note(text: string): void {
    this.print(text);
  }

  end(text = 'done'): void {
    clearInterval(this.heartbeat);
    this.print(text);
  }

  private rowsText(): string {
    if (this.totalRows === 0) return this.done > 0 ? `${this.done.toLocaleString('en-US')} rows` : 'waiting';
    const pct = Math.min(100, Math.floor((this.done / this.totalRows) * 100));
    return `${this.done.toLocaleString('en-US')} / ${this.totalRows.toLocaleString('en-US')} rows (${pct}%)`;
  }

  private print(text: string): void {
    this.lastPrintAt = Date.now();
    const elapsed = ((Date.now() - this.startedAt) / 1000).toFixed(1);
    this.progress.line(`${this.label}: ${text}, ${elapsed} s`);
  }
}

/** Rows delivered so far, from a bench/load/subscriber.js progress line, or null. */
export function subscriberRows(line: string): number | null {
  const m = /^subscriber: (\d+) rows delivered/.exec(line);
  return m ? Number(m[1]) : null;
}

/** Rows sent so far, from a bench/load/writer.js progress line, or null. */
export function writerRows(line: string): number | null {
  const m = /^writer: (\d+)\/\d+ rows/.exec(line);
  return m ? Number(m[1]) : null;
}
