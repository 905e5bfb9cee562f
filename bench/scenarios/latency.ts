// Steady-rate latency: a writer at a steady rate, S subscribers, for the
// gateway (default settings, as deployed) and each baseline and peer. Every
// row carries the time the writer produced it; the subscriber takes now
// minus that for every row it reads, so the figure is writer-to-subscriber
// latency across two processes and the server (both clocks are the
// machine's, performance.timeOrigin-based).
//
// W2: 20,000 rows/s to S = 10 (full run). W10: 1,000 busy subscribers at
// 2,000 rows/s (2 M deliveries/s, near what two cores carry; at 20,000 rows/s
// every system, the bare relay included, only builds a backlog), with
// delivered rows/s, CPU per delivered row, RSS and the reader's CPU.
//
// data.systems: [{ system, rate, rows, subscribers, p50, p99, p999, max, mean, samples, serverCpuSeconds, ... }]
import { formatMs, ratio } from './format.js';
import { runWriterToSubscribers } from './load.js';
import { ALL_SYSTEMS, SYSTEM_LABELS, onFreshServer, type SystemName } from './servers.js';
import type { ScenarioContext, ScenarioOutput, SummaryRow } from './types.js';

const W2_P99_AIM_MS = 5;
/** W10's aim (issue 18): p99 at most this many times the zero-copy relay's. */
const W10_P99_OF_RELAY = 1.2;

/** One system's figures, as stored in the results file (the report reads the same type). */
export interface LatencyRecord {
  system: SystemName;
  rate: number;
  rows: number;
  subscribers: number;
  p50: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
  mean: number | null;
  samples: number;
  serverCpuSeconds: number;
  deliveredRowsPerSec: number | null;
  serverPeakRssBytes: number;
  readerCpuSeconds: number;
}

type Quantile = 'p50' | 'p99' | 'p999';

interface SteadyRate {
  id: 'W2' | 'W10';
  rate: number;
  seconds: number;
  subscribers: number;
  systems: readonly SystemName[];
  /** Sets the aim of a latency row (`b`: the system it is compared with, if any). */
  aim(key: Quantile, row: SummaryRow, gw: LatencyRecord, b: LatencyRecord | undefined): void;
  /** Rows after the latency ones. */
  more?(gw: LatencyRecord, records: LatencyRecord[]): SummaryRow[];
}

export function runLatency(ctx: ScenarioContext): Promise<ScenarioOutput> {
  const { latencyRate: rate, latencySeconds: seconds, latencySubscribers: subscribers } = ctx.sizes;
  return runSteadyRate(ctx, { id: 'W2', rate, seconds, subscribers, systems: ALL_SYSTEMS, aim: w2Aim });
}

export function runBusySubscribers(ctx: ScenarioContext): Promise<ScenarioOutput> {
  const { busyRate: rate, busySeconds: seconds, busySubscribers: subscribers } = ctx.sizes;
  // The naive relay parses every row for every subscriber: at S = 1,000 it only builds a backlog.
  const systems = ALL_SYSTEMS.filter((x) => x !== 'naive-relay');
  return runSteadyRate(ctx, { id: 'W10', rate, seconds, subscribers, systems, aim: w10Aim, more: w10CpuRows });
}

async function runSteadyRate(ctx: ScenarioContext, spec: SteadyRate): Promise<ScenarioOutput> {
  const { id, rate, seconds, subscribers: s } = spec;
  const rows = Math.max(1, Math.round(rate * seconds));
  const systems = spec.systems.filter((x) => ctx.systems.includes(x) && !ctx.unavailable.has(x));
  const skipped = spec.systems.filter((x) => ctx.unavailable.has(x)).map((x) => ({ system: x, reason: ctx.unavailable.get(x)! }));
  const records: LatencyRecord[] = [];
  for (const system of systems) {
    const phase = ctx.progress.phase(`${id} ${SYSTEM_LABELS[system]} ${rate} rows/s S=${s}`, rows * s);
    await onFreshServer(system, ctx.workDir, {}, phase, async (server) => {
      const r = await runWriterToSubscribers(ctx, server, {
        subscribers: s,
        rows,
        phase,
        subscriberExtra: ['--latency'],
        writerExtra: ['--rate', String(rate)],
      });
      const l = r.subscriber.latencyMs;
      records.push({
        system,
        rate,
        rows,
        subscribers: s,
        p50: l?.p50 ?? null,
        p99: l?.p99 ?? null,
        p999: l?.p999 ?? null,
        max: l?.max ?? null,
        mean: l?.mean ?? null,
        samples: l?.count ?? 0,
        serverCpuSeconds: Math.round(r.usage.cpuSeconds * 1000) / 1000,
        deliveredRowsPerSec: r.subscriber.rowsPerSec,
        serverPeakRssBytes: r.usage.peakRssBytes,
        readerCpuSeconds: Math.round(r.subscriber.cpuSeconds * 1000) / 1000,
      });
      phase.end(`p50 ${formatMs(l?.p50)}, p99 ${formatMs(l?.p99)}, p99.9 ${formatMs(l?.p999)}`);
    });
  }

  const summary: SummaryRow[] = [];
  const gw = records.find((r) => r.system === 'gateway');
  if (gw !== undefined) {
    const quantiles: [Quantile, string][] = [['p50', 'p50'], ['p99', 'p99'], ['p999', 'p99.9']];
    for (const [key, name] of quantiles) {
      const others = records.filter((r) => r.system !== 'gateway' && r.system !== 'naive-relay');
      const base = others.length > 0 ? others : [undefined];
      base.forEach((b, i) => {
        const row: SummaryRow = {
          scenario: id,
          case: `${rate / 1000}k rows/s, S=${s}`,
          figure: i === 0 ? `latency ${name}` : '',
          value: gw[key],
          display: i === 0 ? formatMs(gw[key]) : '',
        };
        if (b !== undefined) {
          row.baseline = { name: SYSTEM_LABELS[b.system], value: b[key], display: formatMs(b[key]) };
          row.ratio = ratio(b[key], gw[key]);
          row.ratioMeaning = 'baseline / gateway (above 1: the gateway is faster)';
        }
        spec.aim(key, row, gw, b);
        summary.push(row);
      });
    }
    summary.push(...(spec.more?.(gw, records) ?? []));
  }
  return {
    settings: { rate, seconds, rows, subscribers: s, gatewayFlags: 'defaults' },
    summary,
    skipped,
    notes: [
      'Latency is read time in the subscriber process minus the send time the writer put in the row; both processes are on this machine.',
      id === 'W2'
        ? `The aim (BENCH.md) is p99 under ${W2_P99_AIM_MS} ms for the gateway; the peers and relays carry the same rows at the same rate.`
        : `The aims (issue 18): p99 at most ${W10_P99_OF_RELAY}× the zero-copy relay's, and ahead of nats-server and redis-server on p99 and on server CPU per delivered row.`,
    ],
    data: { systems: records },
  };
}

function w2Aim(key: Quantile, row: SummaryRow, gw: LatencyRecord): void {
  if (key !== 'p99' || row.figure === '') return;
  row.aim = `< ${W2_P99_AIM_MS} ms`;
  row.met = gw.p99 === null ? null : gw.p99 < W2_P99_AIM_MS;
}

const isPeer = (r: LatencyRecord): boolean => r.system === 'nats-server' || r.system === 'redis-server';

function w10Aim(key: Quantile, row: SummaryRow, gw: LatencyRecord, b: LatencyRecord | undefined): void {
  if (key !== 'p99' || b === undefined) return;
  if (b.system === 'zero-copy-relay') {
    row.aim = `≤ ${W10_P99_OF_RELAY}× this`;
    row.met = gw.p99 === null || b.p99 === null ? null : gw.p99 <= W10_P99_OF_RELAY * b.p99;
  } else if (isPeer(b)) {
    row.aim = 'ahead';
    row.met = row.ratio === null || row.ratio === undefined ? null : row.ratio >= 1;
  }
}

/** Server CPU per delivered row, in µs. */
function cpuPerDelivery(r: LatencyRecord): number | null {
  return r.samples > 0 ? (r.serverCpuSeconds / r.samples) * 1e6 : null;
}

function w10CpuRows(gw: LatencyRecord, records: LatencyRecord[]): SummaryRow[] {
  const gwCpu = cpuPerDelivery(gw);
  const fmtUs = (v: number | null): string => (v === null ? 'n/a' : `${v.toFixed(2)} µs`);
  const others = records.filter((r) => r.system !== 'gateway');
  return (others.length > 0 ? others : [undefined]).map((b, i) => {
    const row: SummaryRow = {
      scenario: 'W10',
      case: `${gw.rate / 1000}k rows/s, S=${gw.subscribers}`,
      figure: i === 0 ? 'server CPU per delivered row' : '',
      value: gwCpu,
      display: i === 0 ? fmtUs(gwCpu) : '',
    };
    if (b !== undefined) {
      const v = cpuPerDelivery(b);
      row.baseline = { name: SYSTEM_LABELS[b.system], value: v, display: fmtUs(v) };
      row.ratio = ratio(v, gwCpu);
      row.ratioMeaning = 'baseline / gateway (above 1: the gateway uses less CPU)';
      if (isPeer(b)) {
        row.aim = 'ahead';
        row.met = row.ratio === null ? null : row.ratio >= 1;
      }
    }
    return row;
  });
}
