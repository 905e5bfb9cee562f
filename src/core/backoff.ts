/**
 * How long a client waits before it reconnects (PROTOCOL.md, Reliability:
 * "A reconnecting client backs off (Synapse: up to 5 s between tries)").
 *
 * Exponential with "equal jitter": the n-th try after a failure waits between
 * half and all of min(maxMs, initialMs * multiplier^n), so clients cut off
 * together do not come back in step, and no delay is ever near zero.
 *
 * A connection counts as healthy when it saw `SERVER` (with the expected name)
 * and stayed up for at least `healthyAfterMs`; only then does the count start
 * again from `initialMs`. A connection that is accepted and cut at once (a
 * server in a crash loop, a full gateway) keeps growing the delay.
 *
 * A refusal (`SERVER` named someone else, a bad credential, an unknown or
 * forbidden stream), for a client told to keep trying, waits `refusedMs`
 * instead: it is a configuration error that a quick retry will not fix.
 */

export interface BackoffOptions {
  /** First delay after a healthy connection ends (default 100 ms). */
  initialMs?: number;
  /** The cap (default 5000 ms, as Synapse's ReconnectingClientFactory). */
  maxMs?: number;
  multiplier?: number;
  /** Uptime, after SERVER, that resets the delay (default 5000 ms). */
  healthyAfterMs?: number;
  /** Delay after a refusal (default 30000 ms, jittered the same way). */
  refusedMs?: number;
  /** A source of numbers in [0, 1) (default Math.random); tests inject their own. */
  random?: () => number;
}

/** What the client knows about the connection that just ended (or failed to open). */
export interface ConnectionOutcome {
  now: number;
  /** When the transport opened, or null when it never did. */
  openedAtMs: number | null;
  /** SERVER arrived and its name was the expected one. */
  serverSeen: boolean;
  /** A wrong SERVER name or an access refusal ended it. */
  refused: boolean;
}

export const DEFAULT_BACKOFF_MAX_MS = 5000;

export class Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly multiplier: number;
  readonly healthyAfterMs: number;
  readonly refusedMs: number;
  private readonly random: () => number;
  /** Failed tries since the last healthy connection. */
  private tries = 0;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 100;
    this.maxMs = options.maxMs ?? DEFAULT_BACKOFF_MAX_MS;
    this.multiplier = options.multiplier ?? 2;
    this.healthyAfterMs = options.healthyAfterMs ?? 5000;
    this.refusedMs = options.refusedMs ?? 30_000;
    this.random = options.random ?? Math.random;
  }

  /** Failed tries counted so far. */
  get attempts(): number {
    return this.tries;
  }

  /** The delay before the next try, after `outcome`. */
  next(outcome: ConnectionOutcome): number {
    if (outcome.refused) {
      this.tries++;
      return this.jitter(this.refusedMs);
    }
    if (isHealthy(outcome, this.healthyAfterMs)) this.tries = 0;
    const ceiling = Math.min(this.maxMs, this.initialMs * this.multiplier ** this.tries);
    this.tries++;
    return this.jitter(ceiling);
  }

  reset(): void {
    this.tries = 0;
  }

  private jitter(ceiling: number): number {
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }
}

function isHealthy(outcome: ConnectionOutcome, healthyAfterMs: number): boolean {
  return outcome.openedAtMs !== null && outcome.serverSeen && outcome.now - outcome.openedAtMs >= healthyAfterMs;
}
