/**
 * M7: does a PING flood from one connection hold up another subscriber's
 * rows? (issue 15; aim: p99 under 20 ms beside the flood). The gateway runs
 * in this process; the flooder and the probe (a writer and a subscriber
 * timing each row's return) are child processes with their own clocks.
 */
import { chooseEngine, enginesThatRun } from '../../src/bindings/engine-choice.js';
import { HttpListener } from '../../src/bindings/http-app.js';
import { ReplicationServer } from '../../src/server.js';
import { floodPings, floodWsPings, probeLatency, type Latency } from '../load/fairness-run.js';
import type { BenchOptions, BenchResult, BenchRow } from '../suite.js';

export async function benchPingFairness(opts: BenchOptions): Promise<BenchResult> {
  const rows = opts.quick ? 300 : 1000;
  // The flood outlasts the probe (rows 5 ms apart) with a second to spare either side.
  const floodMs = rows * 5 + 2000;
  const server = new ReplicationServer({ writerToken: 'w', streams: ['events'] });
  const listeners: HttpListener[] = [];
  try {
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
    const complete = (l: Latency): Latency => {
      if (l.rows !== rows) throw new Error(`the probe got ${l.rows} of ${rows} rows`);
      return l;
    };
    const quiet = complete(await probeLatency(port, rows));
    const probeBeside = async <T>(flood: Promise<T>): Promise<{ latency: Latency; flood: T }> => {
      await new Promise((r) => setTimeout(r, 1000));
      const latency = complete(await probeLatency(port, rows));
      return { latency, flood: await flood };
    };
    const tcp = await probeBeside(floodPings(port, floodMs));
    const results = [row('no flood (baseline)', quiet, quiet, true), row('beside one TCP connection flooding PINGs', tcp.latency, quiet, false)];
    for (const engine of enginesThatRun()) {
      const http = new HttpListener(server, { engine: chooseEngine(engine), closeGraceMs: 50 });
      listeners.push(http);
      const { port: httpPort } = await http.listen('127.0.0.1', 0);
      const ws = await probeBeside(floodWsPings(`ws://127.0.0.1:${httpPort}/replication`, floodMs));
      const sent = `${(ws.flood.sentBytes / 1e6).toFixed(0)} MB sent`;
      const what = `beside one WebSocket (${engine}) flooding ~1 MB messages of PINGs (${ws.flood.cut === null ? sent : `${sent}, then cut: ${ws.flood.cut}`})`;
      results.push(row(what, ws.latency, quiet, false));
    }
    return {
      id: 'M7',
      title: `PING flood fairness: ${rows} rows 5 ms apart to one subscriber, time from the writer's send to the subscriber's read`,
      rows: results,
    };
  } finally {
    await Promise.all([server.close(), ...listeners.map((l) => l.close())]);
  }
}

/** The ratio is the baseline's p99 over this p99, as for every latency in the report (1.00x: the flood adds nothing; below 1: it delays rows). */
function row(what: string, l: Latency, base: Latency, baseline: boolean): BenchRow {
  return { name: `${what}: p50 ${l.p50} ms, p99 ${l.p99} ms, max ${l.max} ms`, perSecond: 0, bytesPerSecond: 0, ratio: base.p99 / l.p99, baseline };
}
