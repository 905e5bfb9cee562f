/**
 * What the hub's periodic sweep owes one server connection, as a pure
 * decision over its times, and the write-progress record a stall is judged
 * by. The connection only acts on the answer:
 *
 *     line-timeout   half a line held past --line-timeout-ms (pinged or not)
 *     ping-timeout   the keep-alive rule (keep-alive.ts) timed the peer out
 *     stall          the socket is blocked and took nothing for --max-stall-ms
 *     ping           nothing sent for the ping interval, and the socket is not blocked
 */
import { keepAliveAction, type KeepAliveTimes, type KeepAliveTimings } from './keep-alive.js';

export interface SweepLimits extends KeepAliveTimings {
  readonly lineTimeoutMs: number;
  readonly maxStallMs: number;
}

export interface SweepTimes extends KeepAliveTimes {
  /** When the unfinished line held began arriving; null when none is held. */
  readonly lineStartedMs: number | null;
  /** How long the blocked transport has sent nothing; null when it is not blocked. */
  readonly stalledMs: number | null;
}

export type SweepAction = 'line-timeout' | 'ping-timeout' | 'stall' | 'ping' | null;

/** One answer per sweep, the most serious first: a cut wins over a ping. */
export function sweepAction(nowMs: number, times: SweepTimes, limits: SweepLimits): SweepAction {
  // No peer pins up to --max-line-bytes indefinitely, however slowly it trickles (keep-alive alone waits for a PING first).
  if (times.lineStartedMs !== null && nowMs - times.lineStartedMs > limits.lineTimeoutMs) return 'line-timeout';
  const due = keepAliveAction(nowMs, times, limits);
  if (due === 'time-out') return 'ping-timeout';
  if (times.stalledMs !== null) {
    // A blocked socket has bytes queued: a PING behind them would tell the peer nothing sooner.
    return times.stalledMs > limits.maxStallMs ? 'stall' : null;
  }
  return due;
}

/**
 * When a connection last wrote and last saw its transport make progress: a
 * blocked transport whose unsent bytes stop falling is stalled.
 */
export class WriteProgress {
  lastSentMs: number;
  private lastProgressMs: number;
  /** The transport's unsent bytes after the last write or progress seen: less than this is progress. */
  private unsentSeen = 0;

  constructor(nowMs: number) {
    this.lastSentMs = nowMs;
    this.lastProgressMs = nowMs;
  }

  wrote(nowMs: number, unsentBytes: number): void {
    this.lastSentMs = nowMs;
    this.lastProgressMs = nowMs;
    this.unsentSeen = unsentBytes;
  }

  drained(nowMs: number): void {
    this.lastProgressMs = nowMs;
  }

  /** How long the transport has sent nothing, given its unsent bytes now. */
  stalledFor(nowMs: number, unsentBytes: number): number {
    if (unsentBytes < this.unsentSeen) {
      this.unsentSeen = unsentBytes;
      this.lastProgressMs = nowMs;
    }
    return nowMs - this.lastProgressMs;
  }
}
