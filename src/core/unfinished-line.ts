/**
 * The unfinished line a connection's scanner holds: since when it has been
 * arriving (the line timeout), and its share of the hub's budget of
 * unfinished lines (partial-line-budget.ts), told only when it changes.
 */
import type { LineHolder, PartialLineBudget } from './partial-line-budget.js';

export class UnfinishedLine implements LineHolder {
  /** When the line held began arriving; null when none is held. */
  startedAt: number | null = null;
  heldLineBytes = 0;

  constructor(
    private readonly budget: PartialLineBudget,
    /** Closes the connection for the budget; it releases what it held before returning. */
    readonly cutForLineBudget: (message: string) => void,
  ) {}

  /** A chunk of `chunkBytes` was scanned: the scanner held `heldBefore` bytes before it and `held` now. May cut (it holds the most). */
  afterChunk(nowMs: number, heldBefore: number, chunkBytes: number, held: number): void {
    // Bytes consumed means a line ended in this chunk: what is held now began in it.
    if (held === 0) this.startedAt = null;
    else if (this.startedAt === null || heldBefore + chunkBytes > held) this.startedAt = nowMs;
    if (held !== this.heldLineBytes) this.hold(held);
  }

  /** The connection leaves: nothing is held any more. */
  release(): void {
    this.startedAt = null;
    if (this.heldLineBytes !== 0) this.hold(0);
  }

  private hold(held: number): void {
    const before = this.heldLineBytes;
    this.heldLineBytes = held;
    this.budget.changed(this, before, held);
  }
}
