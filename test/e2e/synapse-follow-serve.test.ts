// `serve --synapse-redis ... --synapse-server-name ...` as an operator runs
// it, against a real redis-server onto which a test publisher replays a
// recording of a current Synapse: /healthz shows the link and every
// (stream, instance) at the position Synapse announced; restarted on the
// file log, the gateway resumes from its history, and a writer that moved
// on while it was down is a recorded gap.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { docExamples } from '../support/doc-examples.js';
import { redisSkip, startRedis, type RedisServer } from '../support/redis-server.js';
import { loadRecording, synapsePublishes, todayRecordingsSkip } from '../support/synapse-today.js';
import { makeTestPki } from '../support/test-pki.js';
import { LineClient, httpGet, killAllGateways, parseMetrics, runGateway, startGateway, type GatewayProcess } from './support/gateway-process.js';

after(() => killAllGateways());

interface PairHealth {
  stream: string;
  instance: string;
  token: number | null;
  generation: number;
  gaps: { afterToken: number; uptoToken: number }[];
}

async function synapseHealth(gw: GatewayProcess): Promise<{ connected: boolean; connects: number; pairs: PairHealth[]; stats: Record<string, unknown> }> {
  return (JSON.parse((await httpGet(gw.http!, '/healthz')).body) as { synapse: never }).synapse;
}

async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: last ${JSON.stringify(v).slice(0, 500)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('serve --synapse-redis', { skip: redisSkip() || todayRecordingsSkip() }, () => {
  let redis: RedisServer;
  let dir: string;
  before(async () => {
    redis = await startRedis();
    dir = mkdtempSync(path.join(os.tmpdir(), 'rg-synapse-'));
  });
  after(async () => {
    await redis.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('follows a replayed deployment into the file log, shows it in /healthz, and resumes after a restart', async () => {
    const recording = loadRecording('03_live_other_streams');
    const args = ['--synapse-redis', `redis://127.0.0.1:${redis.port}`, '--synapse-server-name', recording.server_name, '--log', `file:${dir}`];
    const publisher = new Redis({ host: '127.0.0.1', port: redis.port });
    const replicates: string[] = [];
    const watcher = new Redis({ host: '127.0.0.1', port: redis.port });
    watcher.on('message', (_c: string, m: string) => {
      if (m.startsWith('REPLICATE')) replicates.push(m);
    });
    await watcher.subscribe(recording.server_name);
    let gw = await startGateway(args);
    try {
      const h0 = await until('the link', () => synapseHealth(gw), (h) => h.connected);
      assert.equal(h0.connects, 1);
      await until('the gateway REPLICATE', async () => replicates.length, (n) => n === 1);
      for (const e of synapsePublishes(recording)) await publisher.publish(e.channel, e.payload);
      const expected = Object.entries(recording.wire_final_positions).flatMap(([stream, byInstance]) =>
        Object.entries(byInstance).map(([instance, token]) => `${stream}/${instance}=${token}`),
      );
      const positions = (h: { pairs: PairHealth[] }): string[] => h.pairs.map((p) => `${p.stream}/${p.instance}=${p.token}`);
      const h1 = await until('the final positions', () => synapseHealth(gw), (h) => expected.every((x) => positions(h).includes(x)));
      assert.ok(h1.pairs.every((p) => p.gaps.length === 0), 'no gap');
      // docs/synapse.md shows this report: the same fields.
      const [example] = docExamples('json').filter((e) => e.where.startsWith('docs/synapse.md'));
      const documented = (JSON.parse(example!.code) as { synapse: Record<string, unknown> }).synapse;
      assert.deepEqual(Object.keys(documented).sort(), Object.keys(h1).sort());
      assert.deepEqual(Object.keys((documented['pairs'] as object[])[0]!).sort(), Object.keys(h1.pairs[0]!).sort());
      assert.deepEqual(Object.keys(documented['stats'] as object).sort(), Object.keys(h1.stats).sort());
      // /connections shows the same link report, read from the same place.
      const viaConnections = (JSON.parse((await httpGet(gw.http!, '/connections')).body) as { synapse: typeof h1 & { lastMessageAgeMs: unknown } }).synapse;
      const viaHealth = (await synapseHealth(gw)) as typeof h1 & { lastMessageAgeMs: unknown };
      assert.equal(typeof viaConnections.lastMessageAgeMs, 'number');
      assert.deepEqual({ ...viaConnections, lastMessageAgeMs: 0 }, { ...viaHealth, lastMessageAgeMs: 0 });
      assert.ok(expected.every((x) => positions(viaConnections).includes(x)), 'its positions per (stream, instance)');
      assert.equal(viaConnections.stats['gapsOpen'], 0);
      assert.equal(viaConnections.stats['gapsFilled'], 0);
      const metrics = parseMetrics((await httpGet(gw.http!, '/metrics')).body);
      assert.equal(metrics.get('replication_gateway_synapse_connected'), 1);
      assert.equal(metrics.get('replication_gateway_synapse_connects_total'), 1);
      assert.equal(metrics.get('replication_gateway_synapse_gaps_open'), 0);
      assert.equal(metrics.get('replication_gateway_synapse_position{stream="presence",instance="master"}'), recording.wire_final_positions['presence']!['master']);
      const rows = synapsePublishes(recording).filter((e) => e.payload.startsWith('RDATA ')).length;
      assert.equal(metrics.get('replication_gateway_synapse_rows_total'), rows);
      await gw.stop();

      // The writers moved on while the gateway was down: to_device wrote 419 and 420 unheard.
      await publisher.publish(recording.server_name, 'RDATA to_device to_device_writer1 419 ["@alice:example.com"]');
      // The replay's own REPLICATEs (one per Synapse process) are counted too: the gateway's second one comes on top.
      const replicatesBefore = replicates.length;
      gw = await startGateway(args);
      const h2 = await until('the link again', () => synapseHealth(gw), (h) => h.connected);
      // Read back from the file log before any POSITION came.
      assert.deepEqual(expected.filter((x) => !positions(h2).includes(x)), [], `the history resumes where it was: ${JSON.stringify(positions(h2))}`);
      await until('the second REPLICATE', async () => replicates.length, (n) => n === replicatesBefore + 1);
      // What the writers answer to it: presence is where it was, to_device moved on.
      const presence = recording.wire_final_positions['presence']!['master']!;
      const toDevice = recording.wire_final_positions['to_device']!['to_device_writer1']!;
      await publisher.publish(recording.server_name, `POSITION presence master ${presence} ${presence}`);
      await publisher.publish(recording.server_name, `POSITION to_device to_device_writer1 ${toDevice + 1} ${toDevice + 1}`);
      const h3 = await until('the gap', () => synapseHealth(gw), (h) => h.pairs.some((p) => p.stream === 'to_device' && p.gaps.length > 0));
      const pair = (h: { pairs: PairHealth[] }, s: string): PairHealth => h.pairs.find((p) => p.stream === s)!;
      assert.deepEqual(pair(h3, 'to_device').gaps, [{ afterToken: toDevice, uptoToken: toDevice + 1 }]);
      assert.deepEqual(pair(h3, 'presence').gaps, []);
      assert.equal(pair(h3, 'presence').token, presence);
      assert.equal(parseMetrics((await httpGet(gw.http!, '/metrics')).body).get('replication_gateway_synapse_gaps_open'), 1);
      const c3 = (JSON.parse((await httpGet(gw.http!, '/connections')).body) as { synapse: typeof h3 }).synapse;
      assert.deepEqual(pair(c3, 'to_device').gaps, [{ afterToken: toDevice, uptoToken: toDevice + 1 }], '/connections shows the open gap');
      assert.equal(c3.stats['gapsOpen'], 1);
    } finally {
      await gw.stop();
      publisher.disconnect();
      watcher.disconnect();
    }
  });

  it("follows over rediss:// (TLS), trusting a private CA through NODE_EXTRA_CA_CERTS; without it the gateway does not start, and says why", async () => {
    const pki = await makeTestPki();
    const secure = await startRedis({ tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca } });
    const publisher = new Redis({ host: '127.0.0.1', port: secure.port });
    const url = `rediss://127.0.0.1:${secure.tlsPort}`;
    let gw: GatewayProcess | null = null;
    let client: LineClient | null = null;
    try {
      gw = await startGateway(['--synapse-redis', url, '--synapse-server-name', 'tls.example.com'], { env: { NODE_EXTRA_CA_CERTS: pki.ca } });
      await until('the subscription over TLS', () => synapseHealth(gw!), (s) => s.connected);
      await publisher.publish('tls.example.com', 'POSITION events ep1 1 1');
      const row = 'RDATA events ep1 2 ["$over-tls:example.com"]';
      await publisher.publish('tls.example.com', row);
      client = await LineClient.connect(gw.tcp);
      client.send('REPLICATE events ep1 0');
      await client.waitFor((l) => l === 'POSITION events ep1 2 2');
      assert.deepEqual(client.lines.filter((l) => l.startsWith('RDATA ')), [row]);

      const untrusted = await runGateway(['--synapse-redis', url, '--synapse-server-name', 'tls.example.com', '--listen', '127.0.0.1:0', '--http', 'off']);
      assert.notEqual(untrusted.code, 0);
      assert.match(untrusted.stdout + untrusted.stderr, /could not connect to Synapse's Redis at .*certificate/);
    } finally {
      client?.close();
      await gw?.stop();
      publisher.disconnect();
      await secure.close();
      await pki.remove();
    }
  });

  it('refuses --synapse-redis without --synapse-server-name, saying what goes with it', async () => {
    const out = await runGateway(['--synapse-redis', 'redis://127.0.0.1:1', '--listen', '127.0.0.1:0', '--http', 'off']);
    assert.equal(out.code, 2);
    assert.match(out.stderr, /--synapse-redis and --synapse-server-name go together/);
  });
});
