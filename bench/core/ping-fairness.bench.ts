/**
 * M7: does a PING flood from one connection hold up another subscriber's
 * rows? (issue 15; aim: p99 under 20 ms beside the flood). The gateway runs
 * in this process; the flooder and the probe (a writer and a subscriber
 * timing each row's return) are child processes with their own clocks.
 */
import { ReplicationServer } from '../../src/server.js';
import { floodPings, probeLatency, type Latency } from '../load/fairness-run.js';
import type { BenchOptions, BenchResult, BenchRow } from '../suite.js';

export async function benchPingFairness(opts: BenchOptions): Promise<BenchResult> {
  const rows = opts.quick ? 300 : 1000;
  const server = new ReplicationServer({ writerToken: 'w', streams: ['events'] });
  try {
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
    const quiet = await probeLatency(port, rows);
    // The flood outlasts the probe (rows 5 ms apart) with a second to spare either side.
    const flood = floodPings(port, rows * 5 + 2000);
    await new Promise((r) => setTimeout(r, 1000));
    const flooded = await probeLatency(port, rows);
    await flood;
    for (const l of [quiet, flooded]) if (l.rows !== rows) throw new Error(`the probe got ${l.rows} of ${rows} rows`);
    return {
      id: 'M7',
      title: `PING flood fairness: ${rows} rows 5 ms apart to one subscriber, time from the writer's send to the subscriber's read`,
      rows: [row('no flood (baseline)', quiet, quiet, true), row('beside one connection flooding PINGs', flooded, quiet, false)],
    };
  } finally {
    await server.close();
  }
}

/** The ratio is the baseline's p99 over this p99, as for every latency in the report (1.00x: the flood adds nothing; below 1: it delays rows). */
function row(what: string, l: Latency, base: Latency, baseline: boolean): BenchRow {
  return { name: `${what}: p50 ${l.p50} ms, p99 ${l.p99} ms, max ${l.max} ms`, perSecond: 0, bytesPerSecond: 0, ratio: base.p99 / l.p99, baseline };
}
