// W1 fan-out: one writer, S counting subscribers (one process holding S
// sockets), `rows` rows of ~200 bytes, for the gateway and every baseline
// and peer in the same run. Each (system, S) cell runs `repeat` times,
// interleaved (round by round, all systems) so a noisy moment on the shared
// machine hits every system alike; the median run is reported.
//
// The gateway runs at its default queue limits: at full speed the one
// subscriber process (one core for S sockets) reads slower than the gateway
// writes, and a subscriber whose queue fills reads on from the log, paced by
// its socket, instead of being cut (any ERROR fails the run).
//
// data.cells: [{ system, subscribers, rows, runs, rowsPerSec, mbPerSec,
//   cpuSecondsPer1M, peakRssBytes, readerBusy, rowsPerSecRuns }] (medians over
//   the runs); data.runs: every run.
import { formatRate, formatRatio, median, ratio, round } from './format.js';
import { runWriterToSubscribers } from './load.js';
import { ALL_SYSTEMS, SYSTEM_LABELS, onFreshServer, type SystemName } from './servers.js';
import type { ScenarioContext, ScenarioOutput, SummaryRow } from './types.js';

export interface FanOutRunRecord {
  system: SystemName;
  subscribers: number;
  round: number;
  rows: number;
  deliveredRows: number;
  seconds: number;
  rowsPerSec: number;
  mbPerSec: number;
  serverCpuSeconds: number;
  cpuSecondsPer1M: number;
  peakRssBytes: number;
  subscriberCpuSeconds: number;
  writerRowsPerSec: number | null;
}

export interface FanOutCell {
  system: SystemName;
  subscribers: number;
  rows: number;
  runs: number;
  rowsPerSec: number | null;
  mbPerSec: number | null;
  cpuSecondsPer1M: number | null;
  peakRssBytes: number | null;
  /** The subscriber process's CPU time over the delivery time: near 1, the reader (one core) was the limit. */
  readerBusy: number | null;
  rowsPerSecRuns: number[];
}

/** Aims of BENCH.md for W1, as minimum ratios gateway / baseline, by baseline and S (undefined: no aim). */
function aimFor(baseline: SystemName, s: number): number | undefined {
  switch (baseline) {
    case 'naive-relay':
      return s === 10 ? 20 : undefined;
    case 'nats-server':
    case 'redis-server':
      return s === 10 || s === 50 ? 1.5 : undefined;
    case 'zero-copy-relay':
      return 0.5;
    default:
      return undefined;
  }
}

/** W1 runs the gateway at its default queue limits: a subscriber slower than the writer reads from the log, never cut. */
export const GATEWAY_FAN_OUT_FLAGS = 'defaults (--max-queue-commands 10000 --max-queue-bytes 64MiB)';

export async function runFanOut(ctx: ScenarioContext): Promise<ScenarioOutput> {
  const { fanOutRows: rows, fanOutSubscribers: counts, fanOutRepeat: repeat, naiveMaxDeliveredRows } = ctx.sizes;
  const systems = ALL_SYSTEMS.filter((s) => ctx.systems.includes(s) && !ctx.unavailable.has(s));
  const skipped = ALL_SYSTEMS.filter((s) => ctx.unavailable.has(s)).map((s) => ({ system: s, reason: ctx.unavailable.get(s)! }));
  const rowsFor = (system: SystemName, s: number) =>
    system === 'naive-relay' ? Math.max(1, Math.min(rows, Math.floor(naiveMaxDeliveredRows / s))) : rows;

  const runs: FanOutRunRecord[] = [];
  for (let pass = 1; pass <= repeat; pass++) {
    for (const s of counts) {
      for (const system of systems) {
        const n = rowsFor(system, s);
        const phase = ctx.progress.phase(`W1 ${SYSTEM_LABELS[system]} S=${s} round ${pass}/${repeat}`, n * s);
        await onFreshServer(system, ctx.workDir, {}, phase, async (server) => {
          const r = await runWriterToSubscribers(ctx, server, { subscribers: s, rows: n, phase });
          const rowsPerSec = r.subscriber.rowsPerSec ?? 0;
          runs.push({
            system,
            subscribers: s,
            round: pass,
            rows: n,
            deliveredRows: r.subscriber.deliveredRows,
            seconds: r.subscriber.seconds,
            rowsPerSec,
            mbPerSec: r.subscriber.mbPerSec ?? 0,
            serverCpuSeconds: round3(r.usage.cpuSeconds),
            cpuSecondsPer1M: round3((r.usage.cpuSeconds / r.subscriber.deliveredRows) * 1e6),
            peakRssBytes: r.usage.peakRssBytes,
            subscriberCpuSeconds: r.subscriber.cpuSeconds,
            writerRowsPerSec: r.writer.rowsPerSec,
          });
          phase.end(`${formatRate(rowsPerSec)} rows/s delivered, every row checked`);
        });
      }
    }
  }

  const cells: FanOutCell[] = [];
  for (const s of counts) {
    for (const system of systems) {
      const mine = runs.filter((r) => r.system === system && r.subscribers === s);
      cells.push({
        system,
        subscribers: s,
        rows: rowsFor(system, s),
        runs: mine.length,
        rowsPerSec: median(mine.map((r) => r.rowsPerSec)),
        mbPerSec: median(mine.map((r) => r.mbPerSec)),
        cpuSecondsPer1M: median(mine.map((r) => r.cpuSecondsPer1M)),
        peakRssBytes: median(mine.map((r) => r.peakRssBytes)),
        readerBusy: median(mine.filter((r) => r.seconds > 0).map((r) => round(r.subscriberCpuSeconds / r.seconds, 2))),
        rowsPerSecRuns: mine.map((r) => r.rowsPerSec),
      });
    }
  }

  return {
    settings: {
      rows,
      subscribers: counts,
      repeat,
      naiveRelayRows: Object.fromEntries(counts.map((s) => [s, rowsFor('naive-relay', s)])),
      gatewayFlags: GATEWAY_FAN_OUT_FLAGS,
      peerWriter: '--raw (wire protocol on a plain socket)',
    },
    summary: summarize(cells, counts),
    skipped,
    notes: [
      `Each cell is the median of ${repeat} run(s); rows/s = rows delivered to all subscribers / (last row read - first row read).`,
      'The gateway runs at its default queue limits (the flags above): at full speed one subscriber process reads slower than the gateway writes, and a subscriber whose queue fills reads from the log instead of being cut (an ERROR would fail the run); W5 measures the stall cut of a reader that stops.',
      'nats-server and redis-server are fed by the writer in --raw mode (wire bytes on a plain socket), so the client libraries do not limit them.',
      `The naive relay carries at most ${naiveMaxDeliveredRows.toLocaleString('en-US')} delivered rows per run (rows per run: ${counts.map((s) => `S=${s}: ${rowsFor('naive-relay', s)}`).join(', ')}), so its S = 50 run takes seconds, not minutes.`,
    ],
    data: { cells, runs },
  };
}

function summarize(cells: FanOutCell[], counts: number[]): SummaryRow[] {
  const out: SummaryRow[] = [];
  const cell = (system: SystemName, s: number) => cells.find((c) => c.system === system && c.subscribers === s);
  for (const s of counts) {
    const gw = cell('gateway', s);
    if (gw === undefined) continue;
    const baselines: SystemName[] = ['naive-relay', 'nats-server', 'redis-server', 'zero-copy-relay'];
    let first = true;
    for (const b of baselines) {
      const base = cell(b, s);
      if (base === undefined) continue;
      const r = ratio(gw.rowsPerSec, base.rowsPerSec);
      const aim = aimFor(b, s);
      out.push({
        scenario: 'W1',
        case: `S=${s}`,
        figure: first ? 'delivered rows/s' : '',
        value: gw.rowsPerSec,
        display: first ? formatRate(gw.rowsPerSec) : '',
        baseline: { name: SYSTEM_LABELS[b], value: base.rowsPerSec, display: formatRate(base.rowsPerSec) },
        ratio: r,
        ratioMeaning: 'gateway / baseline',
        ...(aim !== undefined ? { aim: `≥ ${formatRatio(aim)}`, met: r === null ? null : r >= aim } : {}),
      });
      first = false;
    }
    if (first) {
      out.push({ scenario: 'W1', case: `S=${s}`, figure: 'delivered rows/s', value: gw.rowsPerSec, display: formatRate(gw.rowsPerSec) });
    }
  }
  // Gateway CPU per delivered row, against its own at the smallest S: it should fall as S grows.
  const gwCells = counts.map((s) => cell('gateway', s)).filter((c) => c !== undefined);
  const firstCell = gwCells[0];
  for (const c of gwCells.slice(1)) {
    const r = ratio(firstCell!.cpuSecondsPer1M, c.cpuSecondsPer1M);
    out.push({
      scenario: 'W1',
      case: `S=${c.subscribers}`,
      figure: 'gateway CPU s per 1M delivered rows',
      value: c.cpuSecondsPer1M,
      display: `${c.cpuSecondsPer1M?.toFixed(3)} s`,
      baseline: { name: `gateway at S=${firstCell!.subscribers}`, value: firstCell!.cpuSecondsPer1M, display: `${firstCell!.cpuSecondsPer1M?.toFixed(3)} s` },
      ratio: r,
      ratioMeaning: 'baseline / gateway (above 1: less CPU per row)',
      aim: '> 1× (falls as S grows)',
      met: r === null ? null : r > 1,
    });
  }
  return out;
}

function round3(x: number): number {
  return round(x, 3);
}
