// bench/results/<id>.json: one file per benchmark, written by bench/main.ts
// after each one, read by bench/report.ts. The scenario files (W1-W8) are
// described in bench/scenarios/types.ts; the micro-benchmark files (M1-M7)
// carry the tinybench rows of bench/suite.ts.
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BenchRow } from '../suite.js';
import type { Mode, SkippedSystem, SummaryRow } from '../scenarios/types.js';

export interface Machine {
  cpu: string;
  cores: number;
  node: string;
  platform: string;
  release: string;
  memoryBytes: number;
}

interface ResultCommon {
  id: string;
  title: string;
  ok: boolean;
  error?: string;
  mode: Mode;
  /** true in --quick and --tiny runs (kept for readers of the older M files). */
  quick: boolean;
  command: string;
  /** ISO time the benchmark started; every file of one run shares `runStartedAt`. */
  startedAt: string;
  runStartedAt: string;
  seconds: number;
  machine: Machine;
}

export interface MicroResultFile extends ResultCommon {
  kind: 'micro';
  rows: BenchRow[];
}

export interface ScenarioResultFile extends ResultCommon {
  kind: 'scenario';
  /** Set when the scenario is not built yet and was reported as skipped. */
  skippedReason?: string;
  settings: Record<string, unknown>;
  summary: SummaryRow[];
  skipped: SkippedSystem[];
  notes: string[];
  data: Record<string, unknown>;
}

export type ResultFile = MicroResultFile | ScenarioResultFile;

export function machine(): Machine {
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown CPU',
    cores: os.cpus().length,
    node: process.version,
    platform: os.platform(),
    release: os.release(),
    memoryBytes: os.totalmem(),
  };
}

export function machineLine(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores, ${(m.memoryBytes / 1024 ** 3).toFixed(0)} GiB, ${m.platform} ${m.release}, Node ${m.node}`;
}

/** Every result file in `dir`, by id; files from before this format (no `kind`) are read as micro results. */
export function readResults(dir: string): Map<string, ResultFile> {
  const out = new Map<string, ResultFile>();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names.filter((n) => /^[MW]\d+[A-Z]?\.json$/.test(n)).sort()) {
    const parsed = JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as Partial<ResultFile> & { id: string };
    if (parsed.kind === undefined) (parsed as Partial<MicroResultFile>).kind = 'micro';
    out.set(parsed.id, parsed as ResultFile);
  }
  return out;
}
