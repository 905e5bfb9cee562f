/**
 * One budget for the bytes every connection holds in unfinished lines
 * (`--max-partial-line-bytes`): each connection may hold up to
 * `--max-line-bytes`, so many stalled peers together could pin far more
 * memory than any one limit says. Past the budget, the connections holding
 * the most are cut first, until the total is back under it:
 *
 *     > ERROR unfinished lines of all connections over their budget of 268435456 bytes: the connections holding the most are closed first, and this one held 1048000 bytes
 *
 * Connections report only when what they hold changes (once per chunk at
 * most), and only the connections holding something are looked at, only
 * when the budget is crossed: nothing is scanned per chunk.
 */

export interface LineHolder {
  /** Bytes of the unfinished line it holds now. */
  readonly heldLineBytes: number;
  /** Cut for the budget; it reports holding 0 before this returns. */
  cutForLineBudget(message: string): void;
}

export class PartialLineBudget {
  private total = 0;
  private readonly holders = new Set<LineHolder>();

  constructor(private readonly maxBytes: () => number) {}

  /** Bytes held in unfinished lines by all connections. */
  get heldBytes(): number {
    return this.total;
  }

  /** `holder` held `before` bytes and holds `after` now. */
  changed(holder: LineHolder, before: number, after: number): void {
    this.total += after - before;
    if (after === 0) this.holders.delete(holder);
    else if (before === 0) this.holders.add(holder);
    if (after > before && this.total > this.maxBytes()) this.shed();
  }

  /** Cuts the largest holders until the total fits; rare, so a sort is fine here. */
  private shed(): void {
    const max = this.maxBytes();
    const largestFirst = [...this.holders].sort((a, b) => b.heldLineBytes - a.heldLineBytes);
    for (const holder of largestFirst) {
      if (this.total <= max) return;
      holder.cutForLineBudget(
        `unfinished lines of all connections over their budget of ${max} bytes: the connections holding the most are closed first, and this one held ${holder.heldLineBytes} bytes`,
      );
    }
  }
}
