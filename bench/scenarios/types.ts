// What an end-to-end scenario (W1-W8) gets from the runner and gives back.
// The runner (bench/main.ts) wraps a ScenarioOutput into the result file
// bench/results/<id>.json:
//
//   {
//     "id": "W1", "title": "...", "ok": true, "error": "..." (only when !ok),
//     "mode": "full" | "quick" | "tiny", "command": "npm run bench -- ...",
//     "startedAt": ISO time, "seconds": wall time of the scenario,
//     "machine": { "cpu", "cores", "node", "platform", "release", "memoryBytes" },
//     "settings": { the sizes and server flags used },
//     "summary": [ SummaryRow, ... ],   (the stdout table's rows)
//     "skipped": [ { "system", "reason" } ],
//     "notes": [ "..." ],
//     "data": { scenario-specific figures; W1: "cells", see fan-out.ts }
//   }
//
// A scenario that is not built yet (W7) is written with "ok": true,
// "skippedReason" and no figures.
import type { Progress } from './progress.js';
import type { SystemName } from './servers.js';

export type Mode = 'full' | 'quick' | 'tiny';

/** Sizes of every scenario for one mode; --rows and --subscribers override W1's. */
export interface Sizes {
  /** W1: rows per run, subscriber counts, runs per cell (the median is reported). */
  fanOutRows: number;
  fanOutSubscribers: number[];
  fanOutRepeat: number;
  /** W1: the naive relay delivers at most this many rows per run (rows are cut to fit), so S = 50 stays minutes, not tens. */
  naiveMaxDeliveredRows: number;
  /** W2: writer rate (rows/s), seconds at that rate, subscribers. */
  latencyRate: number;
  latencySeconds: number;
  latencySubscribers: number;
  /** W10: writer rate (rows/s), seconds at that rate, subscribers (all busy). */
  busyRate: number;
  busySeconds: number;
  busySubscribers: number;
  /** W3: rows stored before the catch-up. */
  catchUpRows: number;
  /** W4: idle connections, rows written at idleRate rows/s (1 in the full run). */
  idleConnections: number;
  idleRows: number;
  idleRate: number;
  /** W5: subscribers (one of them slow), rows, writer rate (rows/s), how long after the writer ends the slow one stays paused. */
  slowSubscribers: number;
  slowRows: number;
  slowRate: number;
  slowPauseMarginMs: number;
  /** W8: subscribers, rows each is behind, writer rate (rows/s) and seconds while they reconnect. */
  reconnectSubscribers: number;
  reconnectBehindRows: number;
  reconnectRate: number;
  reconnectSeconds: number;
}

export interface ScenarioContext {
  mode: Mode;
  sizes: Sizes;
  /** Systems asked for (--systems / --no-peers); a scenario skips the ones not available here. */
  systems: SystemName[];
  /** Why a system asked for is not run (not installed, --no-peers). */
  unavailable: Map<SystemName, string>;
  /** Scratch directory for ready files and server logs; removed after the run. */
  workDir: string;
  progress: Progress;
  /** Test-only fault (--drop-row K): the first gateway subscriber connection ignores token K. */
  dropRow?: number;
}

export interface SummaryRow {
  /** Scenario id and case, e.g. `W1`, `S=10`. */
  scenario: string;
  case: string;
  /** What is measured, e.g. `delivered rows/s`. */
  figure: string;
  /** The gateway's figure, raw and as printed. */
  value: number | null;
  display: string;
  /** What it is compared with in the same run (a peer), or the aim of BENCH.md when there is none. */
  baseline?: { name: string; value: number | null; display: string };
  /** value / baseline (or baseline / value for figures where lower is better), as the `ratioMeaning` says. */
  ratio?: number | null;
  ratioMeaning?: string;
  /** The aim of BENCH.md and whether this run met it. */
  aim?: string;
  met?: boolean | null;
}

export interface SkippedSystem {
  system: string;
  reason: string;
}

export interface ScenarioOutput {
  settings: Record<string, unknown>;
  summary: SummaryRow[];
  skipped: SkippedSystem[];
  notes: string[];
  data: Record<string, unknown>;
}

export interface Scenario {
  id: string;
  title: string;
  /** Set for a scenario that is reported as skipped (with this reason) instead of run. */
  skippedReason?: string;
  run(ctx: ScenarioContext): Promise<ScenarioOutput>;
}

/** A row lost, repeated or reordered, or a subscriber that did not finish: the run fails. */
export class DeliveryError extends Error {
  readonly code = 'DELIVERY';
}
