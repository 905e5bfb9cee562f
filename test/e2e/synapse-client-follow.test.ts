// The Node and browser clients following a current Synapse through the real
// gateway (`serve --synapse-redis`), a recording replayed onto a real
// redis-server: per writer instance ('*'), every pair's rows once, in order,
// byte for byte as the gateway serves them and as Synapse published them,
// across cuts of the client's connection; a writer's reset is told.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { ReplicationClient as BrowserClient } from '../../src/browser/client.js';
import type { WebSocketConstructor } from '../../src/browser/ws-transport.js';
import { ReplicationClient, type RowBatch } from '../../src/index.js';
import { startCuttableProxy } from '../support/cuttable-proxy.js';
import { redisSkip, startRedis, type RedisServer } from '../support/redis-server.js';
import { byPair, loadRecording, synapsePublishes, todayRecordingsSkip, type Recording } from '../support/synapse-today.js';
import { LineClient, httpGet, killAllGateways, startGateway, type GatewayProcess } from './support/gateway-process.js';

after(() => killAllGateways());

const FAST = { pingIntervalMs: 200, pingTimeoutMs: 5000, backoff: { initialMs: 10, maxMs: 50, healthyAfterMs: 0 } };

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function pairTokens(gw: GatewayProcess): Promise<{ connected: boolean; tokens: Set<string> }> {
  const s = (JSON.parse((await httpGet(gw.http!, '/healthz')).body) as { synapse: { connected: boolean; pairs: { stream: string; instance: string; token: number }[] } }).synapse;
  return { connected: s.connected, tokens: new Set(s.pairs.map((p) => `${p.stream}/${p.instance}=${p.token}`)) };
}

/** Publishes the recording's Synapse payloads once the link is up; resolves when the gateway holds the final positions. */
async function replay(gw: GatewayProcess, recording: Recording, publisher: Redis, upTo = Infinity): Promise<void> {
  await until('the Synapse link', async () => (await pairTokens(gw)).connected);
  for (const e of synapsePublishes(recording)) if (e.t < upTo) await publisher.publish(e.channel, e.payload);
  if (upTo !== Infinity) return;
  const expected = Object.entries(recording.wire_final_positions).flatMap(([s, byInstance]) => Object.entries(byInstance).map(([i, t]) => `${s}/${i}=${t}`));
  await until('the final positions', async () => {
    const { tokens } = await pairTokens(gw);
    return expected.every((x) => tokens.has(x));
  });
}

/** What a client got: every delivered line, each batch as one delivery of the lines of one token. */
function linesOf(client: ReplicationClient): { lines: string[]; batches: RowBatch[] } {
  const got = { lines: [] as string[], batches: [] as RowBatch[] };
  client.on('rows', (_s, _t, rows, batch) => {
    got.batches.push(batch);
    for (let i = 0; i < rows.length; i++) got.lines.push(batch.line(i).toString('utf8'));
  });
  return got;
}

describe('the clients follow a current Synapse through serve --synapse-redis', { skip: redisSkip() || todayRecordingsSkip() }, () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.close();
  });

  it("'*' late, over TCP cut several times and over WebSocket: each pair's rows once, in order, as published; live rows too", { timeout: 60_000 }, async (t) => {
    const recording = loadRecording('02_live_multiwriter_events_and_caches');
    const publisher = new Redis({ host: '127.0.0.1', port: redis.port });
    const gw = await startGateway(['--synapse-redis', `redis://127.0.0.1:${redis.port}`, '--synapse-server-name', recording.server_name]);
    t.after(async () => {
      await gw.stop();
      publisher.disconnect();
    });
    await replay(gw, recording, publisher);
    const streams = ['backfill', 'caches', 'events'];

    // What the gateway serves, read raw.
    const raw = await LineClient.connect(gw.tcp);
    t.after(() => raw.close());
    raw.send(...streams.map((s) => `REPLICATE ${s} * 0`));
    const pairs = Object.entries(recording.wire_final_positions).filter(([s]) => streams.includes(s)).flatMap(([s, i]) => Object.keys(i).map((x) => `${s}/${x}`));
    await raw.waitForCount((l) => l.startsWith('POSITION '), pairs.length, 10_000);
    const served = byPair(raw.lines);
    // ...which is what Synapse published, in its order (backfill's descending batch too).
    const published = byPair(synapsePublishes(recording).filter((e) => e.channel === recording.server_name).map((e) => e.payload));
    assert.deepEqual(served, published);

    const proxy = await startCuttableProxy(gw.tcp);
    t.after(() => proxy.close());
    const client = new ReplicationClient({ port: proxy.port, ...FAST, instances: streams.map((stream) => ({ stream, instance: '*', from: 0 })) });
    t.after(() => client.close());
    const tcp = linesOf(client);
    let connects = 0;
    client.on('connected', () => void connects++);
    const page = new BrowserClient({
      url: `ws://127.0.0.1:${gw.http}/replication`,
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      instances: streams.map((stream) => ({ stream, instance: '*', from: 0 })),
      backoff: FAST.backoff,
    });
    t.after(() => page.close());
    const ws: string[] = [];
    page.on('rows', ({ batch }) => {
      for (let i = 0; i < batch.rows.length; i++) ws.push(batch.line(i).toString('utf8'));
    });
    client.start();
    page.start();
    const total = [...served.values()].reduce((n, l) => n + l.length, 0);
    await until('the catch-up over TCP and WebSocket', () => tcp.lines.length >= total && ws.length >= total);

    // A worker that starts now: its history begins at its first POSITION, above the idle writers' positions.
    await publisher.publish(recording.server_name, 'POSITION caches synchrotron2 5130 5130');
    await until('the new writer', () => client.instancePositions()['caches']?.['synchrotron2'] === 5130);
    // Live rows, with the client's connection cut between them: it re-asks each pair from its own position.
    const caches = (instance: string, token: number): string => `RDATA caches ${instance} ${token} ["get_user_by_id",["@live${token}:example.com"],1]`;
    const live = [caches('synchrotron2', 5131), caches('master', 5132), caches('synchrotron1', 5133), caches('master', 5134)];
    for (const [i, line] of live.entries()) {
      proxy.cutAfter(0);
      await until('the reconnect', () => connects === i + 2);
      await publisher.publish(recording.server_name, line);
    }
    await until('the live rows', () => tcp.lines.length >= total + live.length && ws.length >= total + live.length);
    await new Promise((resolve) => setTimeout(resolve, 200)); // anything doubled would come now

    // The raw subscriber, live all along, got them too: once each.
    await raw.until(() => live.every((l) => raw.lines.includes(l)), 'the live rows, raw');
    const expected = byPair(raw.lines);
    for (const [name, got] of [['TCP', byPair(tcp.lines)], ['WebSocket', byPair(ws)]] as const) {
      assert.deepEqual([...got.keys()].sort(), [...expected.keys()].sort(), name);
      for (const [pair, lines] of expected) assert.deepEqual(got.get(pair), lines, `${name} ${pair}: once, in order, byte for byte`);
    }
    // A batch (a state event: `batch` then its numbered row) is one delivery, with its writer.
    const batch = tcp.batches.find((b) => b.rows.length > 1)!;
    assert.ok(batch !== undefined && batch.instance !== null && batch.line(0).toString().includes(' batch '), 'a batch delivered whole');
    const positions = client.instancePositions();
    assert.equal(positions['caches']!['master'], 5134);
    assert.equal(positions['caches']!['synchrotron2'], 5131);
    assert.equal(positions['events']!['event_persister1'], recording.wire_final_positions['events']!['event_persister1']);
    // One `REPLICATE caches * <lowest position>` would be older than synchrotron2's history, and refused as too old.
    assert.ok(proxy.cuts >= live.length && connects === live.length + 1, `reconnected ${connects - 1} times, no refusal`);
  });

  it("a writer's restart (05) reaches the client as rewound, then the new generation's rows", { timeout: 30_000 }, async (t) => {
    const recording = loadRecording('05_typing_writer_restart_reset');
    const exit = recording.events.find((e) => e.kind === 'note' && e.text.startsWith('typing_writer1 process exits'))!.t;
    const publisher = new Redis({ host: '127.0.0.1', port: redis.port });
    const gw = await startGateway(['--synapse-redis', `redis://127.0.0.1:${redis.port}`, '--synapse-server-name', recording.server_name]);
    t.after(async () => {
      await gw.stop();
      publisher.disconnect();
    });
    await replay(gw, recording, publisher, exit);
    const client = new ReplicationClient({ port: gw.tcp, ...FAST, instances: [{ stream: 'typing', instance: '*', from: 0 }] });
    t.after(() => client.close());
    const got = linesOf(client);
    const rewound: [string, number, number, string | null][] = [];
    client.on('rewound', (stream, before, token, instance) => void rewound.push([stream, before, token, instance]));
    const positions: number[] = [];
    client.on('position', (_s, token) => void positions.push(token));
    client.start();
    await until('the catch-up', () => positions.includes(6));
    const before = got.lines.length;
    for (const e of synapsePublishes(recording)) if (e.t > exit) await publisher.publish(e.channel, e.payload);
    await until('the new generation', () => got.lines.some((l) => l.includes('@erin:example.com')));
    assert.deepEqual(rewound, [['typing', 6, 0, 'typing_writer1']]);
    assert.deepEqual(got.lines.slice(before), ['RDATA typing typing_writer1 1 ["!hq:example.com",[]]', 'RDATA typing typing_writer1 2 ["!dev:example.com",["@erin:example.com"]]']);
    assert.deepEqual(client.instancePositions(), { typing: { typing_writer1: 2 } });
  });
});
