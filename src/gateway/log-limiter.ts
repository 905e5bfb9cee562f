/**
 * Rate limits for log lines a peer can cause (connects, disconnects,
 * protocol errors, slow-consumer cuts): a token bucket per category, so a
 * flood of bad clients costs a bounded number of lines. What was held back
 * is counted and reported in one line per category and period.
 */

export interface LogLimiterOptions {
  /** Lines per second let through per category, on average (default 20). */
  perSecond?: number;
  /** Lines let through at once after a quiet spell (default 100). */
  burst?: number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
  suppressed: number;
}

export class LogLimiter {
  private readonly perSecond: number;
  private readonly burst: number;
  private readonly buckets = new Map<string, Bucket>();

  constructor(options: LogLimiterOptions = {}) {
    this.perSecond = options.perSecond ?? 20;
    this.burst = options.burst ?? 100;
  }

  /** May a line of `category` be logged at `now` (ms)? A refusal is counted. */
  allow(category: string, now: number): boolean {
    let b = this.buckets.get(category);
    if (b === undefined) this.buckets.set(category, (b = { tokens: this.burst, updatedAt: now, suppressed: 0 }));
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.updatedAt) / 1000) * this.perSecond);
    b.updatedAt = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return true;
    }
    b.suppressed++;
    return false;
  }

  /** Lines held back per category since the last call (categories with none are left out). */
  takeSuppressed(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [category, b] of this.buckets) {
      if (b.suppressed > 0) out[category] = b.suppressed;
      b.suppressed = 0;
    }
    return out;
  }
}
