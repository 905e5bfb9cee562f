/**
 * `npm run bench`: every benchmark of BENCH.md that exists so far, each
 * figure beside a baseline measured in the same run.
 *
 *   npm run bench                          the full run (under 15 minutes on 2 cores)
 *   npm run bench -- --quick               small sizes, under a minute
 *   npm run bench -- --only W1,M2          some benchmarks only
 *   npm run bench -- --rows N              W1's rows per run
 *   npm run bench -- --subscribers 1,10,50 W1's subscriber counts
 *   npm run bench -- --json                machine-readable results on stdout
 *
 * Micro-benchmarks (M1-M7) run in this process on tinybench; scenarios
 * (W1-W8) run the gateway, the baselines and the peers, a writer and a
 * subscriber as separate processes over 127.0.0.1 (bench/scenarios/).
 * Progress goes to stderr, the summary table to stdout, one result file per
 * benchmark to bench/results/<id>.json (or --results-dir). Exit 1 if any
 * benchmark failed, e.g. a subscriber missed a row; 2 on bad arguments.
 * `node dist/bench/report.js` then turns the results into docs/benchmarks.md.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { benchHubIngest } from './core/hub-ingest.bench.js';
import { benchJsonValidator } from './core/json-validator.bench.js';
import { benchLineScanner } from './core/line-scanner.bench.js';
import { benchPingFairness } from './core/ping-fairness.bench.js';
import { benchRingQueue } from './core/ring-queue.bench.js';
import { benchRouteDecode } from './core/route-decode.bench.js';
import { benchEncode } from './workers/encode.bench.js';
import { machine, machineLine, type MicroResultFile, type ResultFile, type ScenarioResultFile } from './report/result-file.js';
import { renderSummary } from './report/summary-table.js';
import { killAllChildren } from './scenarios/children.js';
import { Progress } from './scenarios/progress.js';
import { SCENARIOS, SIZES } from './scenarios/registry.js';
import { ALL_SYSTEMS, PEERS, systemAvailable, type SystemName } from './scenarios/servers.js';
import type { Mode, ScenarioContext, Sizes } from './scenarios/types.js';
import type { BenchOptions, BenchResult } from './suite.js';

const MICRO: Record<string, (opts: BenchOptions) => Promise<BenchResult>> = {
  M1: benchLineScanner,
  M2: benchRouteDecode,
  M3: benchRingQueue,
  M4: benchEncode,
  M5: benchJsonValidator,
  M6: benchHubIngest,
  M7: benchPingFairness,
};
const ALL_IDS = [...Object.keys(MICRO), ...SCENARIOS.map((s) => s.id)];

const USAGE = `usage: npm run bench -- [options]   (or: node dist/bench/main.js [options])

  --quick                small sizes, under a minute
  --tiny                 a few thousand rows, S = 2, no nats/redis (what the tests run)
  --only IDS             comma list of ${ALL_IDS.join(',')}
  --rows N               W1: rows per run (default 200000; quick 30000)
  --subscribers LIST     W1: subscriber counts, e.g. 1,10,50
  --repeat N             W1, W6: runs per cell, the median is reported (default 5; quick 1)
  --systems LIST         which of ${ALL_SYSTEMS.join(',')} to run (default all)
  --no-peers             skip nats-server and redis-server
  --json                 print every result as one JSON object on stdout instead of tables
  --results-dir DIR      where <id>.json files go (default bench/results; env BENCH_RESULTS_DIR)
                         env BENCH_GATEWAY_NODE_ARGS: node options for the gateway process only, e.g.
                         '--cpu-prof --cpu-prof-dir=/tmp/prof' (one .cpuprofile per gateway started)
  --drop-row K           test only: the first gateway subscriber connection ignores token K,
                         so the delivery check must fail the run
  -h, --help             this text
`;

function usageError(message: string): never {
  process.stderr.write(`${message}\n${USAGE}`);
  process.exit(2);
}

function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < 1) usageError(`${name} must be a whole number from 1, got ${value}`);
  return n;
}

function list(value: string | undefined): string[] | undefined {
  return value === undefined ? undefined : value.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

/** How the run was started, as the person typed it (recorded in every result and in the docs). */
function commandLine(argv: string[]): string {
  const args = argv.map((a) => (/^[\w.,=/:-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
  if (process.env.npm_lifecycle_event === 'bench') return `npm run bench${args ? ` -- ${args}` : ''}`;
  return `node dist/bench/main.js${args ? ` ${args}` : ''}`;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        quick: { type: 'boolean', default: false },
        tiny: { type: 'boolean', default: false },
        only: { type: 'string' },
        rows: { type: 'string' },
        subscribers: { type: 'string' },
        repeat: { type: 'string' },
        systems: { type: 'string' },
        'no-peers': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        'results-dir': { type: 'string' },
        'drop-row': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    usageError((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (values.quick && values.tiny) usageError('--quick and --tiny are different sizes: choose one');
  const mode: Mode = values.tiny ? 'tiny' : values.quick ? 'quick' : 'full';

  const ids = list(values.only)?.map((s) => s.toUpperCase()) ?? ALL_IDS;
  const unknown = ids.filter((id) => !ALL_IDS.includes(id));
  if (unknown.length > 0) usageError(`unknown benchmark ${unknown.join(', ')}: choose from ${ALL_IDS.join(', ')}`);

  const sizes: Sizes = { ...SIZES[mode] };
  const rows = positiveInt('--rows', values.rows);
  if (rows !== undefined) sizes.fanOutRows = rows;
  const repeat = positiveInt('--repeat', values.repeat);
  if (repeat !== undefined) sizes.fanOutRepeat = repeat;
  const counts = list(values.subscribers);
  if (counts !== undefined) {
    sizes.fanOutSubscribers = counts.map((c) => positiveInt('--subscribers', c)!);
    if (sizes.fanOutSubscribers.length === 0) usageError('--subscribers needs at least one count');
  }
  const systems = (list(values.systems) ?? [...ALL_SYSTEMS]) as SystemName[];
  const badSystems = systems.filter((s) => !ALL_SYSTEMS.includes(s));
  if (badSystems.length > 0) usageError(`unknown system ${badSystems.join(', ')}: choose from ${ALL_SYSTEMS.join(', ')}`);
  if (!systems.includes('gateway')) systems.unshift('gateway');
  const dropRow = positiveInt('--drop-row', values['drop-row']);

  const unavailable = new Map<SystemName, string>();
  for (const peer of PEERS) {
    if (!systems.includes(peer)) continue;
    if (values['no-peers'] || mode === 'tiny') unavailable.set(peer, `skipped by ${values['no-peers'] ? '--no-peers' : '--tiny'}`);
    else {
      const ok = systemAvailable(peer);
      if (ok !== true) unavailable.set(peer, ok);
    }
  }

  const resultsDir = path.resolve(values['results-dir'] ?? process.env.BENCH_RESULTS_DIR ?? path.join('bench', 'results'));
  mkdirSync(resultsDir, { recursive: true });
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'rg-bench-'));
  const progress = new Progress();
  const interrupted = (signal: NodeJS.Signals) => {
    process.stderr.write(`\nbench: ${signal}: stopping the child processes\n`);
    killAllChildren();
    rmSync(workDir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  const m = machine();
  const command = commandLine(argv);
  const runStartedAt = new Date().toISOString();
  progress.line(`${machineLine(m)}; ${mode} run: ${command}`);
  for (const [system, reason] of unavailable) progress.line(`${system}: ${reason}`);

  const ctx: ScenarioContext = {
    mode,
    sizes,
    systems,
    unavailable,
    workDir,
    progress,
    ...(dropRow !== undefined ? { dropRow } : {}),
  };
  const results: ResultFile[] = [];
  try {
    for (const id of ids) {
      const started = Date.now();
      const common = {
        id,
        mode,
        quick: mode !== 'full',
        command,
        startedAt: new Date(started).toISOString(),
        runStartedAt,
        machine: m,
      };
      let result: ResultFile;
      const micro = MICRO[id];
      if (micro !== undefined) {
        progress.line(`${id}: running`);
        try {
          const r = await micro({ quick: mode !== 'full' });
          result = { ...common, kind: 'micro', title: r.title, ok: true, seconds: secondsSince(started), rows: r.rows } satisfies MicroResultFile;
        } catch (err) {
          result = { ...common, kind: 'micro', title: id, ok: false, error: message(err), seconds: secondsSince(started), rows: [] };
        }
      } else {
        const scenario = SCENARIOS.find((s) => s.id === id)!;
        const base = { ...common, kind: 'scenario' as const, title: scenario.title, settings: {}, summary: [], skipped: [], notes: [], data: {} };
        if (scenario.skippedReason !== undefined) {
          progress.line(`${id} ${scenario.title}: skipped (${scenario.skippedReason})`);
          result = { ...base, ok: true, skippedReason: scenario.skippedReason, seconds: 0 } satisfies ScenarioResultFile;
        } else {
          progress.line(`${id} ${scenario.title}: running`);
          try {
            const out = await scenario.run(ctx);
            result = { ...base, ...out, ok: true, seconds: secondsSince(started) };
          } catch (err) {
            result = { ...base, ok: false, error: message(err), seconds: secondsSince(started) };
          }
        }
      }
      if (!result.ok) progress.line(`${id} FAILED: ${result.error}`);
      else progress.line(`${id} done in ${result.seconds.toFixed(1)} s`);
      writeFileSync(path.join(resultsDir, `${id}.json`), JSON.stringify(result, null, 2) + '\n');
      results.push(result);
    }
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }

  const failed = results.filter((r) => !r.ok);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ machine: m, mode, command, runStartedAt, results })}\n`);
  } else {
    process.stdout.write(`\n# ${machineLine(m)}\n# ${command} (${mode}); results in ${path.relative(process.cwd(), resultsDir) || '.'}\n\n`);
    process.stdout.write(`${renderSummary(results, 'text')}\n`);
    if (mode === 'full' && failed.length === 0) process.stdout.write(`\nTo publish: node dist/bench/report.js  (writes docs/benchmarks.md)\n`);
  }
  progress.line(`finished in ${((Date.now() - Date.parse(runStartedAt)) / 1000).toFixed(1)} s`);
  if (failed.length > 0) {
    for (const r of failed) process.stderr.write(`bench: ${r.id} FAILED: ${r.error}\n`);
    process.exitCode = 1;
  }
}

function secondsSince(started: number): number {
  return Math.round((Date.now() - started) / 100) / 10;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
