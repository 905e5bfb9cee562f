// `serve --synapse-redis` serving what it follows, as an operator runs it:
// a recording of a current Synapse is replayed onto a real redis-server,
// then subscribers connect late over TCP and WebSocket and ask with the
// three-argument REPLICATE (today's lines, byte for byte as published) or
// the v1 form (a single-writer stream, instance dropped).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { pack } from 'msgpackr';
import { MSGPACK_PROTOCOL } from '../../src/bindings/ws-bridge.js';
import { WsPeer } from '../bindings/ws-harness.js';
import { redisSkip, startRedis, type RedisServer } from '../support/redis-server.js';
import { byPair, loadRecording, synapsePublishes, todayRecordingsSkip, type Recording } from '../support/synapse-today.js';
import { LineClient, httpGet, killAllGateways, startGateway, type GatewayProcess } from './support/gateway-process.js';

after(() => killAllGateways());

/** The RDATA payloads the gateway keeps, by `stream/instance`, in order: every one published (backfill's descending rows too). */
function keptRows(recording: Recording): Map<string, string[]> {
  return byPair(synapsePublishes(recording).filter((e) => e.channel === recording.server_name).map((e) => e.payload));
}

/** The token each pair's history starts at: its first POSITION's (every pair in these recordings opens with one). */
function startTokens(recording: Recording): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of synapsePublishes(recording)) {
    const [name, stream, instance, , next] = e.payload.split(' ');
    const key = `${stream}/${instance}`;
    if (name === 'POSITION' && !out.has(key)) out.set(key, Number(next));
  }
  return out;
}

type SynapseReport = { connected: boolean; pairs: { stream: string; instance: string; token: number }[] };
const synapseHealth = async (gw: GatewayProcess): Promise<SynapseReport> => (JSON.parse((await httpGet(gw.http!, '/healthz')).body) as { synapse: SynapseReport }).synapse;

async function linkUp(gw: GatewayProcess): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await synapseHealth(gw)).connected) {
    if (Date.now() > deadline) throw new Error('the Synapse link did not come up');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Replays the recording's publishes (those of `part`, default all) once the gateway hears the channel; resolves when /healthz shows the final positions. */
async function replayInto(gw: GatewayProcess, recording: Recording, publisher: Redis, part: (t: number) => boolean = () => true): Promise<void> {
  const deadline = Date.now() + 15_000;
  const health = () => synapseHealth(gw);
  await linkUp(gw);
  for (const e of synapsePublishes(recording)) if (part(e.t)) await publisher.publish(e.channel, e.payload);
  const expected = Object.entries(recording.wire_final_positions).flatMap(([stream, byInstance]) => Object.entries(byInstance).map(([instance, token]) => `${stream}/${instance}=${token}`));
  for (;;) {
    const have = new Set((await health()).pairs.map((p) => `${p.stream}/${p.instance}=${p.token}`));
    if (expected.every((x) => have.has(x))) return;
    if (Date.now() > deadline) throw new Error(`the final positions did not come: missing ${expected.filter((x) => !have.has(x)).join(' ')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function waitFrames(peer: WsPeer, pred: (f: unknown[]) => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!peer.frames.some(pred)) {
    if (Date.now() > deadline) throw new Error(`no such frame: got ${JSON.stringify(peer.frames.slice(-5))}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('serve --synapse-redis serves its history to subscribers', { skip: redisSkip() || todayRecordingsSkip() }, () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.close();
  });

  it('a late TCP subscriber of every instance gets each pair once, in order, byte for byte; reconnecting with its last token it gets only the rest; v1 is refused a two-writer stream', async () => {
    const recording = loadRecording('02_live_multiwriter_events_and_caches');
    const publisher = new Redis({ host: '127.0.0.1', port: redis.port });
    const gw = await startGateway(['--synapse-redis', `redis://127.0.0.1:${redis.port}`, '--synapse-server-name', recording.server_name]);
    const clients: LineClient[] = [];
    try {
      await replayInto(gw, recording, publisher);
      const kept = keptRows(recording);
      const streams = [...new Set([...kept.keys()].map((k) => k.split('/')[0]!))].sort();
      assert.deepEqual(streams, ['backfill', 'caches', 'events']);

      const late = await LineClient.connect(gw.tcp);
      clients.push(late);
      late.send(...streams.map((s) => `REPLICATE ${s} * 0`));
      // One POSITION per pair of those streams closes its catch-up (pairs without rows too: caches of every process).
      const pairs = [...new Set(synapsePublishes(recording).map((e) => e.payload.split(' ')).filter((w) => w[0] === 'POSITION' && streams.includes(w[1]!)).map((w) => `${w[1]}/${w[2]}`))];
      await late.waitForCount((l) => l.startsWith('POSITION '), pairs.length, 10_000);
      const got = byPair(late.lines);
      assert.deepEqual([...got.keys()].sort(), [...kept.keys()].sort());
      for (const [pair, rows] of kept) assert.deepEqual(got.get(pair), rows, `${pair}: every row once, in order, as published`);
      for (const l of late.lines.filter((x) => x.startsWith('POSITION '))) assert.match(l, /^POSITION \S+ \S+ (\d+) \1$/, 'POSITION s i head head');
      const final = (s: string, i: string): number => recording.wire_final_positions[s]![i]!;
      assert.ok(late.lines.includes(`POSITION events event_persister1 ${final('events', 'event_persister1')} ${final('events', 'event_persister1')}`));

      // A subscriber that had read up to the 4th row of event_persister1 comes back with that token.
      const rows = kept.get('events/event_persister1')!.filter((r) => !r.split(' ')[3]!.startsWith('batch'));
      const lastToken = Number(rows[3]!.split(' ')[3]);
      const back = await LineClient.connect(gw.tcp);
      clients.push(back);
      back.send(`REPLICATE events event_persister1 ${lastToken}`);
      await back.waitFor((l) => l.startsWith('POSITION '));
      const rest = kept.get('events/event_persister1')!.slice(kept.get('events/event_persister1')!.indexOf(rows[3]!) + 1);
      assert.deepEqual(back.lines.filter((l) => l.startsWith('RDATA ')), rest);

      // Live: both hear the writer's next row and its next advance, once.
      const head = final('events', 'event_persister1');
      const next = `RDATA events event_persister1 ${head + 2} ["ev",["$live:example.com","!hq:example.com","m.room.message",null,null,null,null,false,false]]`;
      await publisher.publish(recording.server_name, next);
      await publisher.publish(recording.server_name, `POSITION events event_persister1 ${head + 2} ${head + 3}`);
      const advance = `POSITION events event_persister1 ${head + 3} ${head + 3}`;
      for (const c of [late, back]) {
        await c.waitFor((l) => l === advance);
        assert.deepEqual(c.lines.filter((l) => l === next || l === advance), [next, advance]);
      }

      // /connections names a pair's subscription by stream and instance, the lag metrics as stream/instance.
      const connections = await httpGet(gw.http!, '/connections');
      assert.equal(connections.status, 200);
      assert.match(connections.body, /"stream":"events","instance":"event_persister1"/);
      assert.match((await httpGet(gw.http!, '/metrics')).body, /stream="events\/event_persister1"/);

      const v1 = await LineClient.connect(gw.tcp);
      clients.push(v1);
      v1.send('REPLICATE events 1030');
      assert.equal(
        await v1.waitFor((l) => l.startsWith('ERROR')),
        'ERROR stream events has 2 writer instances (event_persister1, event_persister2): ask for one with REPLICATE events <instance> <token> (or * for all)',
      );
      await v1.closed;
      const typo = await LineClient.connect(gw.tcp);
      clients.push(typo);
      typo.send('REPLICATE events event_persister9 NOW');
      assert.match(await typo.waitFor((l) => l.startsWith('ERROR')), /^ERROR stream events has no writer instance event_persister9: its instances are event_persister1, event_persister2;/);
      const old = await LineClient.connect(gw.tcp);
      clients.push(old);
      old.send('REPLICATE events event_persister2 1000');
      assert.equal(
        await old.waitFor((l) => l.startsWith('ERROR')),
        `ERROR token 1000 is older than the oldest retained token 1030 (stream=events instance=event_persister2 oldest=1030 head=${final('events', 'event_persister2')})`,
      );
    } finally {
      for (const c of clients) c.close();
      await gw.stop();
      publisher.disconnect();
    }
  });

  it('a v1 subscriber of a single-writer stream gets v1 lines; a WebSocket subscriber gets today\'s lines, then live rows', async () => {
    const recording = loadRecording('03_live_other_streams');
    const publisher = new Redis({ host: '127.0.0.1', port: redis.port });
    const gw = await startGateway(['--synapse-redis', `redis://127.0.0.1:${redis.port}`, '--synapse-server-name', recording.server_name]);
    const clients: LineClient[] = [];
    let ws: WsPeer | null = null;
    try {
      await replayInto(gw, recording, publisher);
      const kept = keptRows(recording);
      const starts = startTokens(recording);

      const worker = await LineClient.connect(gw.tcp);
      clients.push(worker);
      worker.send(`REPLICATE typing ${starts.get('typing/typing_writer1')}`, `REPLICATE to_device ${starts.get('to_device/to_device_writer1')}`);
      await worker.waitForCount((l) => l.startsWith('POSITION '), 2);
      const v1 = (rows: string[], instance: string): string[] => rows.map((r) => r.replace(` ${instance} `, ' '));
      assert.deepEqual(worker.lines.filter((l) => l.startsWith('RDATA typing ')), v1(kept.get('typing/typing_writer1')!, 'typing_writer1'));
      // to_device has a batch across users: `batch` rows then the numbered one, as Synapse framed them.
      assert.deepEqual(worker.lines.filter((l) => l.startsWith('RDATA to_device ')), v1(kept.get('to_device/to_device_writer1')!, 'to_device_writer1'));
      assert.ok(worker.lines.some((l) => l.startsWith('RDATA to_device batch ')));
      const typingHead = recording.wire_final_positions['typing']!['typing_writer1']!;
      assert.ok(worker.lines.includes(`POSITION typing ${typingHead}`));

      ws = await WsPeer.open(`ws://127.0.0.1:${gw.http}/replication`);
      ws.send('REPLICATE presence master 0\nREPLICATE receipts * 0\n');
      await ws.line(/^POSITION receipts master /);
      await ws.line(/^POSITION presence master /);
      const got = byPair(ws.lines);
      // Presence rows carry non-ASCII status messages as \u escapes (an astral character as a surrogate pair): the same bytes.
      assert.deepEqual(got.get('presence/master'), kept.get('presence/master'));
      assert.deepEqual(got.get('receipts/master'), kept.get('receipts/master'));

      const next = `RDATA typing typing_writer1 ${typingHead + 1} ["!hq:example.com",["@alice:example.com"]]`;
      await publisher.publish(recording.server_name, next);
      await worker.waitFor((l) => l === `RDATA typing ${typingHead + 1} ["!hq:example.com",["@alice:example.com"]]`);
      const receipts = recording.wire_final_positions['receipts']!['master']!;
      const receipt = `RDATA receipts master ${receipts + 1} ["!hq:example.com","m.read","@bob:example.com","$x:example.com",null,{"ts":1}]`;
      await publisher.publish(recording.server_name, receipt);
      await ws.line(receipt);
      assert.equal(ws.lines.filter((l) => l === receipt).length, 1);

      // MessagePack frames translate v1 lines: a binary connection reads a single-writer stream in v1 form, and is told to use text for today's.
      const binary = await WsPeer.open(`ws://127.0.0.1:${gw.http}/replication`, { protocol: MSGPACK_PROTOCOL });
      binary.send(pack(['REPLICATE', 'typing', 'NOW']));
      await waitFrames(binary, (f) => f[0] === 'POSITION');
      assert.deepEqual(binary.frames.find((f) => f[0] === 'POSITION'), ['POSITION', 'typing', typingHead + 1]);
      binary.send(pack(['REPLICATE', 'typing', 'typing_writer1', 'NOW']));
      await waitFrames(binary, (f) => f[0] === 'ERROR');
      assert.match(String(binary.frames.find((f) => f[0] === 'ERROR')![1]), /^today's Synapse lines \(REPLICATE with an instance\) are served as text, not MessagePack frames/);
      await binary.waitClosed();
    } finally {
      for (const c of clients) c.close();
      ws?.terminate();
      await gw.stop();
      publisher.disconnect();
    }
  });
  it('a writer restart (05): live subscribers, today and v1, get POSITION at the new generation\'s start, then its rows; an old token joins at the head', async () => {
    const recording = loadRecording('05_typing_writer_restart_reset');
    const exit = recording.events.find((e) => e.kind === 'note' && e.text.startsWith('typing_writer1 process exits'))!.t;
    const publisher = new Redis({ host: '127.0.0.1', port: redis.port });
    const gw = await startGateway(['--synapse-redis', `redis://127.0.0.1:${redis.port}`, '--synapse-server-name', recording.server_name]);
    const clients: LineClient[] = [];
    try {
      await linkUp(gw);
      for (const e of synapsePublishes(recording)) if (e.t < exit) await publisher.publish(e.channel, e.payload);
      const today = await LineClient.connect(gw.tcp);
      const v1 = await LineClient.connect(gw.tcp);
      clients.push(today, v1);
      today.send('REPLICATE typing typing_writer1 0');
      v1.send('REPLICATE typing 0');
      await today.waitFor((l) => l === 'POSITION typing typing_writer1 6 6');
      await v1.waitFor((l) => l === 'POSITION typing 6');
      const before = today.lines.length;
      for (const e of synapsePublishes(recording)) if (e.t > exit) await publisher.publish(e.channel, e.payload);
      await today.waitFor((l) => l.includes('@erin:example.com'));
      assert.deepEqual(today.lines.slice(before), [
        'POSITION typing typing_writer1 0 0',
        'RDATA typing typing_writer1 1 ["!hq:example.com",[]]',
        'RDATA typing typing_writer1 2 ["!dev:example.com",["@erin:example.com"]]',
      ]);
      await v1.waitFor((l) => l.includes('@erin:example.com'));
      assert.deepEqual(v1.lines.slice(v1.lines.indexOf('POSITION typing 6') + 1), ['POSITION typing 0', 'RDATA typing 1 ["!hq:example.com",[]]', 'RDATA typing 2 ["!dev:example.com",["@erin:example.com"]]']);
      const old = await LineClient.connect(gw.tcp);
      clients.push(old);
      old.send('REPLICATE typing typing_writer1 6');
      assert.equal(await old.waitFor((l) => l.startsWith('POSITION ')), 'POSITION typing typing_writer1 2 2');
    } finally {
      for (const c of clients) c.close();
      await gw.stop();
      publisher.disconnect();
    }
  });

  for (const [name, stream] of [
    ['03_live_other_streams', 'device_lists'],
    ['02_live_multiwriter_events_and_caches', 'backfill'],
  ] as const) {
    it(`restarted on the file log, the gateway serves the history it read back before Synapse says anything (${stream}${stream === 'backfill' ? ", its descending row in place" : ''})`, async () => {
      const recording = loadRecording(name);
      const channel = `restart.${recording.server_name}`;
      const dir = mkdtempSync(path.join(os.tmpdir(), 'rg-synapse-serve-'));
      const args = ['--synapse-redis', `redis://127.0.0.1:${redis.port}`, '--synapse-server-name', channel, '--log', `file:${dir}`];
      const publisher = new Redis({ host: '127.0.0.1', port: redis.port });
      // Its own channel: the other tests' replays do not reach it.
      const renamed = { ...recording, server_name: channel, events: recording.events.map((e) => (e.kind === 'publish' && e.channel === recording.server_name ? { ...e, channel } : e)) };
      const instances = new Set(synapsePublishes(recording).map((e) => e.payload.split(' ')).filter((w) => (w[0] === 'RDATA' || w[0] === 'POSITION') && w[1] === stream).map((w) => w[2]));
      let gw = await startGateway(args);
      let client: LineClient | null = null;
      try {
        await replayInto(gw, renamed, publisher);
        await gw.stop();
        gw = await startGateway(args);
        client = await LineClient.connect(gw.tcp);
        client.send(`REPLICATE ${stream} * 0`);
        await client.waitForCount((l) => l.startsWith(`POSITION ${stream} `), instances.size, 10_000);
        const got = byPair(client.lines);
        for (const [pair, rows] of keptRows(recording)) if (pair.startsWith(`${stream}/`)) assert.deepEqual(got.get(pair), rows, pair);
      } finally {
        client?.close();
        await gw.stop();
        publisher.disconnect();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
