// W7 storage: what a --log costs against the memory log, in one run.
//
// Catch-up: a writer stores N rows (1,000,000 in the full run) in a gateway
// on each log kind; a durable log's gateway is then restarted on its
// directory, so every row comes from the files; one subscriber replays them
// all from token 0 and checks every row. Figures: catch-up rows/s and the
// gateway's peak RSS growth during it (as W3).
//
// Ingest: a writer sends N rows as fast as the gateway takes them, per log
// kind and --fsync setting; rows/s from the writer's first row until the
// gateway's head (REPLICATE NOW) says every row is stored.
//
// A log kind is one entry of LOG_KINDS: its --log value, and whether its
// fsync settings are measured (a "redis" kind adds its redis-server here).
//
// data: { rows, catchUp: {kind: {...}}, ingest: {setting: {rowsPerSec, seconds}} }
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatBytes, formatRate, ratio } from './format.js';
import { catchUpFromZero, catchUpRetention, startWriter, streamHead, usageStart, writerResult, type ServerUsage } from './load.js';
import { startServer, type GatewaySettings, type RunningServer } from './servers.js';
import type { ScenarioContext, ScenarioOutput, SummaryRow } from './types.js';

const CATCH_UP_AIM = 1_000_000;
const CATCH_UP_VS_MEMORY_AIM = 0.8;
const INGEST_VS_MEMORY_AIM = 0.8;
const RSS_GROWTH_AIM_BYTES = 64 * 1024 * 1024;

interface LogKind {
  name: string;
  /** The --log value, given a scratch directory of its own. */
  log(dir: string): string;
  /** Restarted before its catch-up, so the rows come from what it keeps, not from this process's memory. */
  restartBeforeCatchUp: boolean;
  /** --fsync settings whose ingest is measured; [] for a log without them. */
  fsyncSettings: string[];
}

const LOG_KINDS: LogKind[] = [
  { name: 'memory', log: () => 'memory', restartBeforeCatchUp: false, fsyncSettings: [] },
  { name: 'file', log: (dir) => `file:${dir}`, restartBeforeCatchUp: true, fsyncSettings: ['always', 'interval:100', 'never'] },
];

interface CatchUpFigures {
  storeRowsPerSec: number;
  storeCpuSeconds: number;
  rowsPerSec: number | null;
  seconds: number;
  usage: ServerUsage;
}

/** Rows/s from the writer's first row until the head says all `rows` are stored. */
async function ingest(
  ctx: ScenarioContext,
  settings: GatewaySettings,
  rows: number,
  label: string,
): Promise<{ rowsPerSec: number; seconds: number; cpuSeconds: number; server: RunningServer }> {
  const server = await startServer('gateway', ctx.workDir, settings);
  try {
    const phase = ctx.progress.phase(`W7 ingest, ${label}`, rows);
    const usage = usageStart(server.pid);
    const written = await writerResult(startWriter(server, { rows, phase }));
    while ((await streamHead(server.port)) < rows) await sleep(2);
    const seconds = (Date.now() - written.firstRowAt) / 1000;
    const { cpuSeconds } = usage();
    phase.end(`${formatRate(rows / seconds)} rows/s, gateway CPU ${cpuSeconds.toFixed(2)} s`);
    return { rowsPerSec: rows / seconds, seconds, cpuSeconds, server };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

async function catchUp(ctx: ScenarioContext, kind: LogKind, dir: string, rows: number, base: GatewaySettings): Promise<CatchUpFigures> {
  const settings = { ...base, log: kind.log(dir) };
  const stored = await ingest(ctx, settings, rows, `${kind.name} log (to catch up from)`);
  let server = stored.server;
  try {
    if (kind.restartBeforeCatchUp) {
      await server.stop();
      server = await startServer('gateway', ctx.workDir, settings);
    }
    const { result, usage: used } = await catchUpFromZero(ctx, server, rows, `W7 catch-up from the ${kind.name} log, token 0`);
    return { storeRowsPerSec: stored.rowsPerSec, storeCpuSeconds: stored.cpuSeconds, rowsPerSec: result.rowsPerSec, seconds: result.seconds, usage: used };
  } finally {
    await server.stop();
  }
}

export async function runStorage(ctx: ScenarioContext): Promise<ScenarioOutput> {
  const rows = ctx.sizes.catchUpRows;
  const base: GatewaySettings = catchUpRetention(rows);
  const summary: SummaryRow[] = [];
  const catchUps: Record<string, CatchUpFigures> = {};
  const ingests: Record<string, IngestFigures> = {};
  const scratch = (name: string): string => mkdtempSync(path.join(ctx.workDir, `w7-${name}-`));

  for (const kind of LOG_KINDS) {
    const dir = scratch(kind.name);
    try {
      catchUps[kind.name] = await catchUp(ctx, kind, dir, rows, base);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const memory = catchUps['memory']!;
  for (const kind of LOG_KINDS) {
    const c = catchUps[kind.name]!;
    const vsMemory = kind.name === 'memory' ? null : ratio(c.rowsPerSec, memory.rowsPerSec);
    summary.push({
      scenario: 'W7',
      case: `catch-up of ${formatRate(rows)} rows, ${kind.name} log`,
      figure: 'catch-up rows/s',
      value: c.rowsPerSec,
      display: formatRate(c.rowsPerSec),
      ...(kind.name === 'memory'
        ? { baseline: { name: 'aim (BENCH.md)', value: CATCH_UP_AIM, display: formatRate(CATCH_UP_AIM) }, ratio: ratio(c.rowsPerSec, CATCH_UP_AIM), ratioMeaning: 'memory / aim' }
        : { baseline: { name: 'memory log', value: memory.rowsPerSec, display: formatRate(memory.rowsPerSec) }, ratio: vsMemory, ratioMeaning: `${kind.name} / memory` }),
      aim: kind.name === 'memory' ? '≥ 1 M rows/s' : `≥ ${CATCH_UP_VS_MEMORY_AIM}× memory and ≥ 1 M rows/s`,
      met: c.rowsPerSec === null ? null : c.rowsPerSec >= CATCH_UP_AIM && (kind.name === 'memory' || (vsMemory !== null && vsMemory >= CATCH_UP_VS_MEMORY_AIM)),
    });
    summary.push({
      scenario: 'W7',
      case: '',
      figure: `gateway peak RSS growth during the ${kind.name} catch-up`,
      value: c.usage.peakGrowthBytes,
      display: formatBytes(c.usage.peakGrowthBytes),
      baseline: { name: 'aim (BENCH.md)', value: RSS_GROWTH_AIM_BYTES, display: formatBytes(RSS_GROWTH_AIM_BYTES) },
      ratio: ratio(RSS_GROWTH_AIM_BYTES, c.usage.peakGrowthBytes),
      ratioMeaning: 'aim / gateway (above 1: under the aim)',
      aim: '< 64 MiB',
      met: c.usage.peakGrowthBytes < RSS_GROWTH_AIM_BYTES,
    });
  }

  // Ingest, each setting on a fresh gateway and directory, memory first: the baseline of the same run.
  ingests['memory'] = memoryIngest(memory, rows);
  for (const kind of LOG_KINDS) {
    for (const fsync of kind.fsyncSettings) {
      const dir = scratch(`${kind.name}-${fsync.replace(':', '')}`);
      try {
        const run = await ingest(ctx, { ...base, log: kind.log(dir), fsync }, rows, `${kind.name} log, --fsync ${fsync}`);
        await run.server.stop();
        ingests[`${kind.name} ${fsync}`] = { rowsPerSec: run.rowsPerSec, seconds: run.seconds, cpuSeconds: run.cpuSeconds };
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  const memoryRate = ingests['memory']!.rowsPerSec;
  for (const [setting, r] of Object.entries(ingests)) {
    if (setting === 'memory') continue;
    const vs = ratio(r.rowsPerSec, memoryRate);
    const aimed = setting.endsWith('interval:100');
    summary.push({
      scenario: 'W7',
      case: `ingest of ${formatRate(rows)} rows, ${setting.replace(' ', ' log, --fsync ')}`,
      figure: 'writer rows/s stored',
      value: r.rowsPerSec,
      display: formatRate(r.rowsPerSec),
      baseline: { name: 'memory log', value: memoryRate, display: formatRate(memoryRate) },
      ratio: vs,
      ratioMeaning: `${setting} / memory`,
      ...(aimed ? { aim: `≥ ${INGEST_VS_MEMORY_AIM}× memory`, met: vs === null ? null : vs >= INGEST_VS_MEMORY_AIM } : {}),
    });
  }

  return {
    settings: { rows, gatewayFlags: `--retention-rows ${base.retentionRows} --retention-bytes ${base.retentionBytes}`, logKinds: LOG_KINDS.map((k) => k.name) },
    summary,
    skipped: [],
    notes: [
      'Catch-up from a durable log runs on a gateway restarted on its directory, so every row is read from the files (through the OS page cache: the files were just written).',
      `Memory-log ingest is the store phase of its catch-up run (${formatRate(memoryRate)} rows/s); every other setting stores the same rows on a fresh gateway and directory.`,
      'Ingest rows/s run from the writer\'s first row until `REPLICATE events NOW` answers the last token: stored, not only sent.',
    ],
    data: {
      rows,
      catchUp: Object.fromEntries(
        Object.entries(catchUps).map(([k, c]) => [
          k,
          {
            rowsPerSec: c.rowsPerSec,
            seconds: c.seconds,
            storeRowsPerSec: c.storeRowsPerSec,
            rssBeforeBytes: c.usage.rssBeforeBytes,
            peakRssBytes: c.usage.peakRssBytes,
            peakGrowthBytes: c.usage.peakGrowthBytes,
            cpuSeconds: c.usage.cpuSeconds,
          } satisfies StorageCatchUpData,
        ]),
      ),
      ingest: ingests,
    },
  };
}

function memoryIngest(memory: CatchUpFigures, rows: number): IngestFigures {
  return { rowsPerSec: memory.storeRowsPerSec, seconds: rows / memory.storeRowsPerSec, cpuSeconds: memory.storeCpuSeconds };
}

export interface IngestFigures {
  rowsPerSec: number;
  seconds: number;
  /** The gateway's CPU seconds from the writer's start until every row was stored (less load-dependent than rows/s). */
  cpuSeconds: number;
}

export interface StorageCatchUpData {
  rowsPerSec: number | null;
  seconds: number;
  storeRowsPerSec: number;
  rssBeforeBytes: number;
  peakRssBytes: number;
  peakGrowthBytes: number;
  cpuSeconds: number;
}
