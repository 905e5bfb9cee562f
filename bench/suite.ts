/** Runs one micro-benchmark question on tinybench and reports each case beside the baseline. */
import { Bench } from 'tinybench';

export interface BenchOptions {
  quick: boolean;
}

export interface BenchRow {
  name: string;
  /** Items (lines, ops) per second. */
  perSecond: number;
  /** Bytes per second. */
  bytesPerSecond: number;
  /** Figure divided by the baseline's, measured in the same run. */
  ratio: number;
  baseline: boolean;
}

export interface BenchResult {
  id: string;
  title: string;
  rows: BenchRow[];
}

export interface BenchCase {
  name: string;
  baseline?: boolean;
  fn: () => void;
}

export async function runSuite(opts: BenchOptions, bytesPerRun: number, itemsPerRun: number, cases: BenchCase[]): Promise<BenchRow[]> {
  const bench = new Bench({ time: opts.quick ? 300 : 2000, iterations: opts.quick ? 3 : 8, warmupIterations: 2 });
  for (const c of cases) bench.add(c.name, c.fn);
  await bench.run();
  const seconds = bench.tasks.map((t) => {
    const r = t.result;
    if (!r || r.state !== 'completed') throw new Error(`benchmark case ${t.name} failed: ${r && 'error' in r ? String(r.error) : 'no result'}`);
    // The median is steadier than the mean on shared, noisy machines.
    return r.latency.p50 / 1000;
  });
  const base = cases.findIndex((c) => c.baseline);
  return cases.map((c, i) => ({
    name: c.name,
    perSecond: itemsPerRun / seconds[i]!,
    bytesPerSecond: bytesPerRun / seconds[i]!,
    ratio: seconds[base]! / seconds[i]!,
    baseline: !!c.baseline,
  }));
}
