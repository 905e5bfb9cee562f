// W4 idle connections: C subscribers (10,000 in the full run, one process)
// connect and subscribe, then a writer sends 1 row/s for a few seconds
// (quick and tiny runs: 5 rows/s, so they take less time).
// Figures: the server's RSS per connection (RSS once all are subscribed and
// a second has passed, minus the RSS before the first connected, over C)
// and the p99 writer-to-subscriber latency of those rows over all C
// connections. The gateway runs with its defaults; the zero-copy relay
// (bare Node sockets), nats-server and redis-server hold the same
// connections as the baselines. (One setting is not the default: every
// connection comes from 127.0.0.1, so --max-connections-per-address is
// raised to hold them all.)
//
// data.systems: [{ system, connections, rssBeforeBytes, rssConnectedBytes, bytesPerConnection, p50, p99, p999, max, connectSeconds }]
import { setTimeout as sleep } from 'node:timers/promises';
import { readMemory } from '../load/proc-stats.js';
import { formatBytes, formatMs, ratio } from './format.js';
import { firstFailure, startSubscriber, startWriter, subscriberResult, waitSubscribed, writerResult, type StartedSubscriber } from './load.js';
import { SYSTEM_LABELS, startServer, type SystemName } from './servers.js';
import type { ScenarioContext, ScenarioOutput, SummaryRow } from './types.js';

const PER_CONNECTION_AIM_BYTES = 20 * 1024;
// The naive relay holds sockets like the zero-copy one (both plain node:net); one Node baseline is enough.
const SYSTEMS: SystemName[] = ['gateway', 'zero-copy-relay', 'nats-server', 'redis-server'];

/** One system's figures, as stored in the results file (the report reads the same type). */
export interface IdleRecord {
  system: SystemName;
  connections: number;
  rssBeforeBytes: number;
  rssConnectedBytes: number;
  bytesPerConnection: number;
  connectSeconds: number;
  p50: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
}

export async function runIdle(ctx: ScenarioContext): Promise<ScenarioOutput> {
  const { idleConnections: count, idleRows: rows, idleRate: rate } = ctx.sizes;
  const systems = SYSTEMS.filter((s) => ctx.systems.includes(s) && !ctx.unavailable.has(s));
  const skipped = SYSTEMS.filter((s) => ctx.unavailable.has(s)).map((s) => ({ system: s, reason: ctx.unavailable.get(s)! }));
  const records: IdleRecord[] = [];
  const settleMs = ctx.mode === 'full' ? 1000 : 200; // before reading RSS: start-up and the last connects settle
  for (const system of systems) {
    const phase = ctx.progress.phase(`W4 ${SYSTEM_LABELS[system]} ${count.toLocaleString('en-US')} idle connections`, rows * count);
    // All from 127.0.0.1, with the writer: past the default limit per address (10,000) in the full run.
    const server = await startServer(system, ctx.workDir, { maxConnectionsPerAddress: count + 1 });
    let stopAfter: StartedSubscriber | undefined;
    try {
      await sleep(settleMs);
      const rssBeforeBytes = readMemory(server.pid).rssBytes;
      const connectStarted = Date.now();
      const sub = startSubscriber(ctx, server, { count, expect: rows, extra: ['--latency'], phase, timeoutS: 120 });
      stopAfter = sub;
      await waitSubscribed(sub);
      const connectSeconds = (Date.now() - connectStarted) / 1000;
      phase.note(`all ${count} subscribed`);
      await sleep(settleMs);
      const rssConnectedBytes = readMemory(server.pid).rssBytes;
      const writer = startWriter(server, { rows, extra: ['--rate', String(rate)] });
      const result = await firstFailure(subscriberResult(sub), writer);
      await writerResult(writer);
      const l = result.latencyMs;
      const rec: IdleRecord = {
        system,
        connections: count,
        rssBeforeBytes,
        rssConnectedBytes,
        bytesPerConnection: Math.round((rssConnectedBytes - rssBeforeBytes) / count),
        connectSeconds: Math.round(connectSeconds * 1000) / 1000,
        p50: l?.p50 ?? null,
        p99: l?.p99 ?? null,
        p999: l?.p999 ?? null,
        max: l?.max ?? null,
      };
      records.push(rec);
      phase.end(`${formatBytes(rec.bytesPerConnection)} per connection, p99 ${formatMs(rec.p99)}, p99.9 ${formatMs(rec.p999)}`);
    } catch (err) {
      phase.end('FAILED');
      throw err;
    } finally {
      if (stopAfter?.child.alive()) await stopAfter.child.stop(1000);
      await server.stop();
    }
  }

  const summary: SummaryRow[] = [];
  const gw = records.find((r) => r.system === 'gateway');
  if (gw !== undefined) {
    const others = records.filter((r) => r.system !== 'gateway');
    const figures: { figure: string; key: 'bytesPerConnection' | 'p99'; show: (n: number | null) => string; aim: string; met: boolean | null }[] = [
      {
        figure: 'gateway RSS per idle connection',
        key: 'bytesPerConnection',
        show: formatBytes,
        aim: '< 20 KiB',
        met: gw.bytesPerConnection < PER_CONNECTION_AIM_BYTES,
      },
      { figure: `delivery latency p99 (${rate} row/s)`, key: 'p99', show: formatMs, aim: '', met: null },
    ];
    for (const f of figures) {
      const base = others.length > 0 ? others : [undefined];
      base.forEach((b, i) => {
        const row: SummaryRow = {
          scenario: 'W4',
          case: i === 0 ? `${count.toLocaleString('en-US')} connections` : '',
          figure: i === 0 ? f.figure : '',
          value: gw[f.key],
          display: i === 0 ? f.show(gw[f.key]) : '',
        };
        if (b !== undefined) {
          row.baseline = { name: SYSTEM_LABELS[b.system], value: b[f.key], display: f.show(b[f.key]) };
          row.ratio = ratio(b[f.key], gw[f.key]);
          row.ratioMeaning = 'baseline / gateway (above 1: the gateway uses less)';
        }
        if (i === 0 && f.aim !== '') {
          row.aim = f.aim;
          row.met = f.met;
        }
        summary.push(row);
      });
    }
  }
  return {
    settings: { connections: count, rows, rate, gatewayFlags: `--max-connections-per-address ${count + 1}` },
    summary,
    skipped,
    notes: [
      'RSS per connection = (RSS a second after the last connection subscribed - RSS before the first connected) / connections; it includes what each connection\'s first reads and writes left allocated.',
      'Latency p99 is over every row at every connection: one row fanned out to all connections at once, read by one subscriber process.',
    ],
    data: { systems: records },
  };
}
