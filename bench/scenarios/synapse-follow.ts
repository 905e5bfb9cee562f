// W9: following a current Synapse deployment (issue 17). A writer publishes
// rows on a redis-server's channel as a Synapse event persister does, in
// today's dialect, one PUBLISH per row (pipelined, raw RESP):
//
//   PUBLISH w9.example.com "RDATA events w9_writer 7 [...]"
//
// 1. Ingest: a gateway following that channel (--synapse-redis) and, on the
//    same channel in the same run, a bare subscriber (bench/load/subscriber.js
//    --protocol redis: raw RESP, counting and checking tokens, nothing else).
//    Each figure is rows over the time from the writer's first publish to that
//    reader's last row: the bare one's last row read, the gateway's pair
//    reaching the last token in its /healthz (polled every POLL_MS).
// 2. Delivery: a fresh gateway following the channel, S = 10 TCP subscribers
//    asking `REPLICATE events w9_writer 0` (today's lines, byte for byte).
//
// Before the rows, the scenario publishes `POSITION events w9_writer 0 0` (what
// a Synapse writer answers to the follower's `REPLICATE `), so the gateway
// knows the pair and holds none of its rows back.
//
// data: { rows, ingest: { bareRowsPerSec, gatewayRowsPerSec, gatewayCpuSeconds },
//         delivery: { subscribers, rowsPerSec, gatewayCpuSeconds, gatewayPeakRssBytes } }
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { peerAvailable, startPeer, type RunningPeer } from '../peers/peers.js';
import { epochMs } from '../load/rows.js';
import { formatRate, ratio } from './format.js';
import { catchUpRetention, firstFailure, startSubscriber, startWriter, subscriberResult, usageStart, waitSubscribed, writerResult } from './load.js';
import { onFreshServer, type GatewaySettings, type RunningServer } from './servers.js';
import type { ScenarioContext, ScenarioOutput } from './types.js';

const SERVER_NAME = 'w9.example.com';
const STREAM = 'events';
const INSTANCE = 'w9_writer';
const POLL_MS = 5;
const INGEST_AIM = 0.7;
const TIMEOUT_MS = 120_000;

export async function runSynapseFollow(ctx: ScenarioContext): Promise<ScenarioOutput> {
  const available = peerAvailable('redis-server');
  if (available !== true) throw new Error(`W9 needs redis-server: ${available}`);
  const rows = ctx.sizes.fanOutRows;
  const subscribers = ctx.mode === 'tiny' ? 2 : 10;
  const redis = await startPeer('redis-server');
  try {
    const channel = redisAsServer(redis);
    const ingest = await measureIngest(ctx, redis, channel, rows);
    const delivery = await measureDelivery(ctx, redis, channel, rows, subscribers);
    const ingestRatio = ratio(ingest.gatewayRowsPerSec, ingest.bareRowsPerSec);
    return {
      settings: { rows, subscribers, redis: 'redis-server --save "" --appendonly no --client-output-buffer-limit pubsub 0 0 0', channel: SERVER_NAME },
      summary: [
        {
          scenario: 'W9',
          case: 'ingest from Redis pub/sub',
          figure: 'rows/s',
          value: ingest.gatewayRowsPerSec,
          display: formatRate(ingest.gatewayRowsPerSec),
          baseline: { name: 'bare raw-RESP subscriber', value: ingest.bareRowsPerSec, display: formatRate(ingest.bareRowsPerSec) },
          ratio: ingestRatio,
          ratioMeaning: 'gateway / bare subscriber',
          aim: `≥ ${INGEST_AIM}× the bare subscriber`,
          met: ingestRatio === null ? null : ingestRatio >= INGEST_AIM,
        },
        {
          scenario: 'W9',
          case: `S=${subscribers} TCP subscribers, REPLICATE ${STREAM} ${INSTANCE} 0`,
          figure: 'delivered rows/s',
          value: delivery.rowsPerSec,
          display: formatRate(delivery.rowsPerSec),
          baseline: { name: 'bare raw-RESP subscriber (ingest run)', value: ingest.bareRowsPerSec, display: formatRate(ingest.bareRowsPerSec) },
          ratio: ratio(delivery.rowsPerSec, ingest.bareRowsPerSec),
          ratioMeaning: 'per-subscriber rows/s / bare subscriber',
        },
      ],
      skipped: [],
      notes: [
        'Redis runs without persistence and with no pub/sub output-buffer limit: a reader slower than the writer is buffered, not cut, so each figure is that reader\'s own pace.',
        'The bare subscriber and the gateway read the same publishes in the same run; the gateway parses today\'s dialect, stores each row in the pair\'s memory log and keeps the exact published bytes.',
      ],
      data: { rows, ingest, delivery: { subscribers, ...delivery } },
    };
  } finally {
    await redis.stop();
  }
}

/** The redis-server as the writer's and the bare subscriber's server: today's rows on the deployment's channel. */
function redisAsServer(redis: RunningPeer): RunningServer {
  const today = ['--channel', SERVER_NAME, '--stream', STREAM, '--instance', INSTANCE];
  return {
    system: 'redis-server',
    port: redis.port,
    pid: redis.pid,
    writerArgs: ['--protocol', 'redis', '--raw', ...today],
    subscriberArgs: ['--protocol', 'redis', '--from', '0', ...today],
    logLines: () => [],
    stop: () => redis.stop(),
  };
}

/** A gateway following the channel (onFreshServer starts a fresh one for each measurement). */
function following(redis: RunningPeer, rows: number): GatewaySettings {
  return { http: true, ...catchUpRetention(rows), synapse: { redis: `redis://127.0.0.1:${redis.port}`, serverName: SERVER_NAME } };
}

/** Once the gateway has subscribed, announces the pair as its writer would, and waits until the gateway knows it. */
async function announcePair(gateway: RunningServer, redis: RunningPeer): Promise<void> {
  await until(gateway, (h) => h.connected === true, 'subscribed to the Synapse channel');
  const publisher = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true });
  await publisher.connect();
  await publisher.publish(SERVER_NAME, `POSITION ${STREAM} ${INSTANCE} 0 0`);
  publisher.disconnect();
  await until(gateway, (h) => pairToken(h) === 0, `the pair (${STREAM}, ${INSTANCE}) at 0`);
}

function measureIngest(ctx: ScenarioContext, redis: RunningPeer, channel: RunningServer, rows: number) {
  const phase = ctx.progress.phase('W9 ingest from Redis pub/sub, gateway beside a bare subscriber', rows);
  return onFreshServer('gateway', ctx.workDir, following(redis, rows), phase, async (gateway) => {
    await announcePair(gateway, redis);
    const bare = startSubscriber(ctx, channel, { count: 1, expect: rows, phase });
    await waitSubscribed(bare);
    const usage = usageStart(gateway.pid);
    const writer = startWriter(channel, { rows });
    const gatewayDone = until(gateway, (h) => pairToken(h) === rows, `the gateway's pair at ${rows}`).then(() => epochMs());
    const bareResult = await firstFailure(subscriberResult(bare), writer);
    const gatewayDoneAt = await gatewayDone;
    const used = usage();
    const w = await writerResult(writer);
    const perSec = (lastAt: number | null) => (lastAt === null || lastAt <= w.firstRowAt ? null : (rows * 1000) / (lastAt - w.firstRowAt));
    const result = {
      bareRowsPerSec: perSec(bareResult.lastRowAt),
      gatewayRowsPerSec: perSec(gatewayDoneAt),
      writerRowsPerSec: w.rowsPerSec,
      gatewayCpuSeconds: used.cpuSeconds,
    };
    phase.end(`gateway ${formatRate(result.gatewayRowsPerSec)} rows/s, bare subscriber ${formatRate(result.bareRowsPerSec)} rows/s`);
    return result;
  });
}

function measureDelivery(ctx: ScenarioContext, redis: RunningPeer, channel: RunningServer, rows: number, subscribers: number) {
  const phase = ctx.progress.phase(`W9 S=${subscribers} TCP subscribers of the followed stream`, rows * subscribers);
  return onFreshServer('gateway', ctx.workDir, following(redis, rows), phase, async (gateway) => {
    await announcePair(gateway, redis);
    const sub = startSubscriber(ctx, gateway, { count: subscribers, expect: rows, extra: ['--instance', INSTANCE, '--from', '0'], phase });
    await waitSubscribed(sub);
    const usage = usageStart(gateway.pid);
    const writer = startWriter(channel, { rows });
    const result = await firstFailure(subscriberResult(sub), writer);
    const used = usage();
    await writerResult(writer);
    phase.end(`${formatRate(result.rowsPerSec)} rows/s`);
    return { rowsPerSec: result.rowsPerSec, gatewayCpuSeconds: used.cpuSeconds, gatewayPeakRssBytes: used.peakRssBytes };
  });
}

interface SynapseHealth {
  connected?: boolean;
  pairs?: { stream: string; instance: string; token: number | null }[];
}

function pairToken(h: SynapseHealth): number | null {
  return h.pairs?.find((p) => p.stream === STREAM && p.instance === INSTANCE)?.token ?? null;
}

/** Polls the gateway's /healthz until its Synapse link report satisfies `ok`. */
async function until(gateway: RunningServer, ok: (h: SynapseHealth) => boolean, what: string): Promise<void> {
  const deadline = Date.now() + TIMEOUT_MS;
  let last: SynapseHealth = {};
  while (Date.now() < deadline) {
    // 503 while the link is down still carries the report.
    const body = (await (await fetch(`http://127.0.0.1:${gateway.httpPort}/healthz`)).json()) as { synapse?: SynapseHealth };
    last = body.synapse ?? {};
    if (ok(last)) return;
    await sleep(POLL_MS);
  }
  throw new Error(`W9: ${what}: not within ${TIMEOUT_MS} ms; the gateway reports ${JSON.stringify(last).slice(0, 400)}`);
}
