// W2 latency: a writer at a steady rate (20,000 rows/s in the full run),
// S = 10 subscribers, for the gateway (default settings, as deployed) and
// each baseline and peer. Every row carries the time the writer produced
// it; the subscriber takes now minus that for every row it reads, so the
// figure is writer-to-subscriber latency across two processes and the
// server (both clocks are the machine's, performance.timeOrigin-based).
//
// data.systems: [{ system, rate, rows, subscribers, p50, p99, p999, max, mean, samples, cpuSeconds }]
import { formatMs, ratio } from './format.js';
import { runWriterToSubscribers } from './load.js';
import { ALL_SYSTEMS, SYSTEM_LABELS, onFreshServer, type SystemName } from './servers.js';
import type { ScenarioContext, ScenarioOutput, SummaryRow } from './types.js';

const P99_AIM_MS = 5;

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
}

export async function runLatency(ctx: ScenarioContext): Promise<ScenarioOutput> {
  const { latencyRate: rate, latencySeconds: seconds, latencySubscribers: s } = ctx.sizes;
  const rows = Math.max(1, Math.round(rate * seconds));
  const systems = ALL_SYSTEMS.filter((x) => ctx.systems.includes(x) && !ctx.unavailable.has(x));
  const skipped = ALL_SYSTEMS.filter((x) => ctx.unavailable.has(x)).map((x) => ({ system: x, reason: ctx.unavailable.get(x)! }));
  const records: LatencyRecord[] = [];
  for (const system of systems) {
    const phase = ctx.progress.phase(`W2 ${SYSTEM_LABELS[system]} ${rate} rows/s S=${s}`, rows * s);
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
      });
      phase.end(`p50 ${formatMs(l?.p50)}, p99 ${formatMs(l?.p99)}, p99.9 ${formatMs(l?.p999)}`);
    });
  }

  const summary: SummaryRow[] = [];
  const gw = records.find((r) => r.system === 'gateway');
  if (gw !== undefined) {
    const quantiles: ['p50' | 'p99' | 'p999', string][] = [['p50', 'p50'], ['p99', 'p99'], ['p999', 'p99.9']];
    for (const [key, name] of quantiles) {
      const others = records.filter((r) => r.system !== 'gateway' && r.system !== 'naive-relay');
      const base = others.length > 0 ? others : [undefined];
      base.forEach((b, i) => {
        const row: SummaryRow = {
          scenario: 'W2',
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
        if (i === 0 && key === 'p99') {
          row.aim = `< ${P99_AIM_MS} ms`;
          row.met = gw.p99 === null ? null : gw.p99 < P99_AIM_MS;
        }
        summary.push(row);
      });
    }
  }
  return {
    settings: { rate, seconds, rows, subscribers: s, gatewayFlags: 'defaults' },
    summary,
    skipped,
    notes: [
      'Latency is read time in the subscriber process minus the send time the writer put in the row; both processes are on this machine.',
      `The aim (BENCH.md) is p99 under ${P99_AIM_MS} ms for the gateway; the peers and relays carry the same rows at the same rate.`,
    ],
    data: { systems: records },
  };
}
