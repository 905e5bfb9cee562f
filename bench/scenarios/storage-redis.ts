// W7 (Redis rows): the Redis Streams log (`--log redis://...`) on a
// redis-server of its own.
//
// 1. Catch-up: a writer stores N rows (1,000,000 in the full run) through a
//    gateway on the Redis log, then one subscriber asks for them all from
//    token 0; figures as W3's (catch-up rows/s, gateway peak RSS and its
//    growth during the catch-up), read from Redis with XRANGE.
// 2. W1 at S=10 through two gateways on one Redis (the writer on A, the
//    subscribers on B: every row crosses Redis and B's one XREAD loop),
//    against one gateway on the memory log and one gateway on the Redis log,
//    in the same run.
//
// data: { catchUp: { rows, storeRowsPerSec, rowsPerSec, peakRssBytes, peakGrowthBytes, peakReset },
//         fanOut: [{ setup, subscribers, rows, rowsPerSec, writerRowsPerSec, gatewayPeakRssBytes }] }
import { peerAvailable, startPeer, type RunningPeer } from '../peers/peers.js';
import { formatBytes, formatRate, ratio } from './format.js';
import { catchUpFromZero, catchUpRetention, runWriterToSubscribers, startWriter, waitForHead, writerResult } from './load.js';
import { startServer, type GatewaySettings, type RunningServer } from './servers.js';
import type { ScenarioContext, ScenarioOutput, SummaryRow } from './types.js';

const RATE_AIM = 1_000_000;
const RSS_GROWTH_AIM_BYTES = 64 * 1024 * 1024;

let prefixes = 0;

export async function runStorageRedis(ctx: ScenarioContext): Promise<ScenarioOutput> {
  const available = peerAvailable('redis-server');
  if (available !== true) throw new Error(`W7 Redis rows need redis-server: ${available}`);
  const redis = await startPeer('redis-server');
  try {
    const catchUp = await catchUpFromRedis(ctx, redis);
    const fanOut = await fanOutThroughRedis(ctx, redis);
    const single = fanOut.find((c) => c.setup === 'one gateway, memory log')!;
    const summary: SummaryRow[] = [
      {
        scenario: 'W7',
        case: `Redis log: ${formatRate(catchUp.rows)} rows from token 0`,
        figure: 'catch-up rows/s',
        value: catchUp.rowsPerSec,
        display: formatRate(catchUp.rowsPerSec),
        baseline: { name: 'aim (issue 14)', value: RATE_AIM, display: formatRate(RATE_AIM) },
        ratio: ratio(catchUp.rowsPerSec, RATE_AIM),
        ratioMeaning: 'gateway / aim',
        aim: '≥ 1 M rows/s',
        met: catchUp.rowsPerSec === null ? null : catchUp.rowsPerSec >= RATE_AIM,
      },
      {
        scenario: 'W7',
        case: 'Redis log',
        figure: 'gateway peak RSS growth during catch-up',
        value: catchUp.peakGrowthBytes,
        display: formatBytes(catchUp.peakGrowthBytes),
        baseline: { name: 'aim (issue 14)', value: RSS_GROWTH_AIM_BYTES, display: formatBytes(RSS_GROWTH_AIM_BYTES) },
        ratio: ratio(RSS_GROWTH_AIM_BYTES, catchUp.peakGrowthBytes),
        ratioMeaning: 'aim / gateway (above 1: under the aim)',
        aim: '< 64 MiB',
        met: catchUp.peakGrowthBytes < RSS_GROWTH_AIM_BYTES,
      },
      ...fanOut
        .filter((c) => c !== single)
        .map((c) => ({
          scenario: 'W7',
          case: `S=${c.subscribers}, ${c.setup}`,
          figure: 'delivered rows/s',
          value: c.rowsPerSec,
          display: formatRate(c.rowsPerSec),
          baseline: { name: single.setup, value: single.rowsPerSec, display: formatRate(single.rowsPerSec) },
          ratio: ratio(c.rowsPerSec, single.rowsPerSec),
          ratioMeaning: 'this setup / one gateway on the memory log',
        })),
    ];
    return {
      settings: { catchUpRows: catchUp.rows, fanOutRows: fanOut[0]!.rows, subscribers: fanOut[0]!.subscribers, redis: 'redis-server --save "" --appendonly no' },
      summary,
      skipped: [],
      notes: [
        'Redis runs without persistence here: the figures are the log\'s own cost, not the disk\'s.',
        'In the two-gateway case the writer is on A and every subscriber on B, so each row crosses Redis: A\'s append script, then B\'s one XREAD loop.',
        `The RSS before the catch-up (${formatBytes(catchUp.rssBeforeBytes)}) holds no rows: the Redis log keeps them in Redis.`,
        ...(catchUp.peakReset ? [] : ['VmHWM could not be reset (no write access to /proc/<pid>/clear_refs): the peak covers the gateway\'s whole life.']),
      ],
      data: { catchUp, fanOut },
    };
  } finally {
    await redis.stop();
  }
}

async function redisGateway(ctx: ScenarioContext, redis: RunningPeer, prefix: string, settings: GatewaySettings = {}): Promise<RunningServer> {
  return startServer('gateway', ctx.workDir, { ...settings, log: `redis://127.0.0.1:${redis.port}/${prefix}` });
}

async function catchUpFromRedis(ctx: ScenarioContext, redis: RunningPeer) {
  const rows = ctx.sizes.catchUpRows;
  const settings = catchUpRetention(rows);
  const server = await redisGateway(ctx, redis, `w7-catch-up-${++prefixes}`, settings);
  try {
    const store = ctx.progress.phase(`W7 storing ${rows.toLocaleString('en-US')} rows in the Redis log`, rows);
    const writer = await writerResult(startWriter(server, { rows, phase: store }));
    await waitForHead(server.port, rows, 120_000);
    store.end(`stored at ${formatRate(writer.rowsPerSec)} rows/s`);
    const { result, usage: used } = await catchUpFromZero(ctx, server, rows, 'W7 catch-up from the Redis log, one subscriber');
    return {
      rows,
      storeRowsPerSec: writer.rowsPerSec,
      rowsPerSec: result.rowsPerSec,
      seconds: result.seconds,
      rssBeforeBytes: used.rssBeforeBytes,
      peakRssBytes: used.peakRssBytes,
      peakGrowthBytes: used.peakGrowthBytes,
      peakReset: used.peakReset,
    };
  } finally {
    await server.stop();
  }
}

async function fanOutThroughRedis(ctx: ScenarioContext, redis: RunningPeer) {
  const rows = ctx.sizes.fanOutRows;
  const subscribers = ctx.mode === 'tiny' ? 2 : 10;
  const cells = [];
  const setups: { setup: string; start: () => Promise<RunningServer[]> }[] = [
    { setup: 'one gateway, memory log', start: async () => [await startServer('gateway', ctx.workDir)] },
    { setup: 'one gateway, Redis log', start: async () => [await redisGateway(ctx, redis, `w7-one-${++prefixes}`)] },
    {
      setup: 'two gateways on one Redis',
      start: async () => {
        const prefix = `w7-two-${++prefixes}`;
        const a = await redisGateway(ctx, redis, prefix);
        return [a, await redisGateway(ctx, redis, prefix).catch(async (err: unknown) => {
          await a.stop();
          throw err;
        })];
      },
    },
  ];
  for (const { setup, start } of setups) {
    const servers = await start();
    const phase = ctx.progress.phase(`W7 S=${subscribers}, ${setup}`, rows * subscribers);
    try {
      const run = await runWriterToSubscribers(ctx, servers[0]!, { subscribers, rows, phase, ...(servers[1] ? { subscribeTo: servers[1] } : {}) });
      phase.end(`${formatRate(run.subscriber.rowsPerSec)} rows/s`);
      cells.push({
        setup,
        subscribers,
        rows,
        rowsPerSec: run.subscriber.rowsPerSec,
        writerRowsPerSec: run.writer.rowsPerSec,
        gatewayPeakRssBytes: run.usage.peakRssBytes,
      });
    } catch (err) {
      phase.end('FAILED');
      throw err;
    } finally {
      for (const s of servers) await s.stop();
    }
  }
  return cells;
}
