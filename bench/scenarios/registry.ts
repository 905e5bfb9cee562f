// The end-to-end scenarios of BENCH.md in run order, and their sizes for
// each mode: full (the published figures, under 15 minutes on 2 cores),
// quick (under a minute with the micro-benchmarks) and tiny (the test's:
// a few thousand rows, S = 2).
import { runCatchUp } from './catch-up.js';
import { runFanOut } from './fan-out.js';
import { runIdle } from './idle.js';
import { runBusySubscribers, runLatency } from './latency.js';
import { runMassReconnect } from './mass-reconnect.js';
import { runSlowConsumer } from './slow-consumer.js';
import { runStorage } from './storage.js';
import { runStorageRedis } from './storage-redis.js';
import { runSynapseFollow } from './synapse-follow.js';
import { runWebSocket } from './websocket.js';
import type { Mode, Scenario, Sizes } from './types.js';

export const SCENARIOS: Scenario[] = [
  { id: 'W1', title: 'fan-out: 1 writer, S TCP subscribers', run: runFanOut },
  { id: 'W2', title: 'latency at a steady rate', run: runLatency },
  { id: 'W3', title: 'catch-up from token 0', run: runCatchUp },
  { id: 'W4', title: 'idle connections', run: runIdle },
  { id: 'W5', title: 'slow consumer', run: runSlowConsumer },
  { id: 'W6', title: 'WebSocket fan-out (text and msgpack) vs TCP', run: runWebSocket },
  { id: 'W7', title: 'storage: catch-up from each log, writer ingest per --fsync setting, vs the memory log', run: runStorage },
  { id: 'W7R', title: 'storage, W7\'s Redis rows: catch-up from the Redis log; W1 S=10 through two gateways on one Redis', run: runStorageRedis },
  { id: 'W8', title: 'mass reconnect while a writer goes on', run: runMassReconnect },
  { id: 'W9', title: 'following a current Synapse: ingest from Redis pub/sub vs a bare subscriber; delivery to S TCP subscribers', run: runSynapseFollow },
  { id: 'W10', title: '1,000 busy subscribers at a steady rate', run: runBusySubscribers },
];

export const SIZES: Record<Mode, Sizes> = {
  full: {
    fanOutRows: 200_000,
    fanOutSubscribers: [1, 10, 50],
    fanOutRepeat: 5,
    naiveMaxDeliveredRows: 2_000_000,
    latencyRate: 20_000,
    latencySeconds: 10,
    latencySubscribers: 10,
    busyRate: 2_000,
    busySeconds: 20,
    busySubscribers: 1_000,
    catchUpRows: 1_000_000,
    idleConnections: 10_000,
    idleRows: 5,
    idleRate: 1,
    slowSubscribers: 10,
    slowRows: 200_000,
    slowRate: 100_000,
    slowPauseMarginMs: 3000,
    reconnectSubscribers: 100,
    reconnectBehindRows: 100_000,
    reconnectRate: 10_000,
    reconnectSeconds: 10,
  },
  quick: {
    fanOutRows: 20_000,
    fanOutSubscribers: [1, 10, 50],
    fanOutRepeat: 1,
    naiveMaxDeliveredRows: 200_000,
    latencyRate: 20_000,
    latencySeconds: 0.5,
    latencySubscribers: 10,
    busyRate: 2_000,
    busySeconds: 1,
    busySubscribers: 200,
    catchUpRows: 200_000,
    idleConnections: 500,
    idleRows: 2,
    idleRate: 5,
    slowSubscribers: 10,
    slowRows: 60_000,
    slowRate: 100_000,
    slowPauseMarginMs: 1000,
    reconnectSubscribers: 20,
    reconnectBehindRows: 20_000,
    reconnectRate: 10_000,
    reconnectSeconds: 1,
  },
  tiny: {
    fanOutRows: 3_000,
    fanOutSubscribers: [2],
    fanOutRepeat: 1,
    naiveMaxDeliveredRows: 6_000,
    latencyRate: 2_000,
    latencySeconds: 1,
    latencySubscribers: 2,
    busyRate: 200,
    busySeconds: 1,
    busySubscribers: 5,
    catchUpRows: 5_000,
    idleConnections: 20,
    idleRows: 2,
    idleRate: 5,
    slowSubscribers: 3,
    slowRows: 60_000,
    slowRate: 200_000,
    slowPauseMarginMs: 1000,
    reconnectSubscribers: 3,
    reconnectBehindRows: 2_000,
    reconnectRate: 2_000,
    reconnectSeconds: 1,
  },
};
