/**
 * `npm run bench`: every benchmark of BENCH.md that exists so far, each
 * figure beside a baseline measured in the same run.
 *
 *   npm run bench -- --quick          small inputs, under a minute
 *   npm run bench -- --only M1,M2     some benchmarks only
 *   npm run bench -- --json           machine-readable results on stdout
 */
import os from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { benchLineScanner } from './core/line-scanner.bench.js';
import { benchRouteDecode } from './core/route-decode.bench.js';
import { benchRingQueue } from './core/ring-queue.bench.js';
import type { BenchOptions, BenchResult } from './suite.js';

const BENCHMARKS: Record<string, (opts: BenchOptions) => Promise<BenchResult>> = {
  M1: benchLineScanner,
  M2: benchRouteDecode,
  M3: benchRingQueue,
};

function machine(): string {
  return `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, Node ${process.version}`;
}

function formatRate(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(0);
}

function table(result: BenchResult): string {
  const lines = [`${result.id}: ${result.title}`, '| case | per second | bytes/s | vs baseline |', '|---|---|---|---|'];
  for (const r of result.rows) {
    lines.push(`| ${r.name} | ${formatRate(r.perSecond)} | ${formatRate(r.bytesPerSecond)}B/s | ${r.baseline ? 'baseline' : `${r.ratio.toFixed(2)}x`} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      `usage: npm run bench -- [--quick] [--only ${Object.keys(BENCHMARKS).join(',')}] [--json]\n`,
    );
    return;
  }
  const ids = values.only ? values.only.split(',').map((s) => s.trim().toUpperCase()) : Object.keys(BENCHMARKS);
  const unknown = ids.filter((id) => !(id in BENCHMARKS));
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark ${unknown.join(', ')}: choose from ${Object.keys(BENCHMARKS).join(', ')}\n`);
    process.exit(2);
  }
  const opts: BenchOptions = { quick: values.quick };
  const resultsDir = path.join(process.cwd(), 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const results: BenchResult[] = [];
  process.stderr.write(`# ${machine()}${opts.quick ? ' (quick)' : ''}\n`);
  for (const id of ids) {
    const started = Date.now();
    process.stderr.write(`[bench] ${id} running...\n`);
    const result = await BENCHMARKS[id]!(opts);
    process.stderr.write(`[bench] ${id} done in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    results.push(result);
    writeFileSync(path.join(resultsDir, `${id}.json`), JSON.stringify({ machine: machine(), quick: opts.quick, ...result }, null, 2));
    if (!values.json) process.stdout.write(`\n${table(result)}\n`);
  }
  if (values.json) process.stdout.write(`${JSON.stringify({ machine: machine(), quick: opts.quick, results })}\n`);
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
