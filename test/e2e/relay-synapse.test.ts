// Relay mode against Synapse's own 2017 code (../shared/synapse-peer):
// master.py -> gateway -> gateway -> worker.py. master.py's SIGUSR2 aborts
// the first relay's upstream connection mid-stream; Synapse's worker still
// gets every row once, with the master's tokens, the rows of a token
// together (Synapse's catch-up sends them as separate numbered lines; the
// relays store such a run as one batch), and its client commands reach the
// master through both relays.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  masterEvent,
  requirePythonPeer,
  startSynapseMaster,
  startSynapseWorker,
  workerEvent,
  type SynapseMaster,
  type SynapseWorker,
} from '../support/synapse-peer.js';
import { startCuttableProxy, type CuttableProxy } from '../support/cuttable-proxy.js';
import { LineClient, delay, httpGet, killAllGateways, parseMetrics, startGateway, type GatewayProcess } from './support/gateway-process.js';

const PREFILL = { events: 20, caches: 10 };
const CACHE_BATCH = 3;
const LIVE_TOKENS = 120;

async function until(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await delay(20);
  }
}

let master: SynapseMaster;
let cutMaster: SynapseMaster | null = null;
let proxy: CuttableProxy | null = null;
let gw1: GatewayProcess;
let gw2: GatewayProcess;
const workers: SynapseWorker[] = [];

before(async () => {
  requirePythonPeer();
  master = await startSynapseMaster({
    streams: ['events', 'caches'],
    prefill: PREFILL,
    batch: { caches: CACHE_BATCH },
    rows: LIVE_TOKENS,
    rate: 80,
    // Live rows wait for the first relay, so the history stays catch-up only.
    waitSubscribers: 1,
  });
  gw1 = await startGateway(['--upstream', `127.0.0.1:${master.port}`, '--upstream-name', 'master.test']);
  gw2 = await startGateway(['--upstream', `127.0.0.1:${gw1.tcp}`]);
});

after(async () => {
  for (const w of workers) await w.stop();
  killAllGateways();
  await master?.stop();
  await cutMaster?.stop();
  await proxy?.close();
});

describe("relay chain between Synapse's own master and worker", () => {
  it('delivers every row once with the master\'s tokens while the master aborts the relay mid-stream', async () => {
    const lastEvents = PREFILL.events + LIVE_TOKENS;
    const lastCaches = PREFILL.caches + LIVE_TOKENS;
    const worker = await startSynapseWorker({
      port: gw2.tcp,
      name: 'synapse.app.e2e',
      expectServer: 'master.test',
      streams: { events: 0, caches: 0 },
      until: { events: lastEvents, caches: lastCaches },
      maxConnections: 1,
      maxSeconds: 25,
    });
    workers.push(worker);
    // Abort the relay's upstream connection twice while live rows flow.
    await master.events.waitFor(masterEvent('generate_start'), 10_000);
    await delay(400);
    master.signal('SIGUSR2');
    await gw1.logs.waitFor((e) => e['msg'] === 'upstream connection lost', 5_000);
    await until(() => gw1.logs.all().filter((e) => e['msg'] === 'upstream connected').length >= 2, 'the relay reconnected');
    await delay(150);
    master.signal('SIGUSR2');
    assert.equal(await worker.exited, 0, `worker reached its tokens (stderr: ${worker.stderrPath})`);

    const aborts = master.events.all().filter((e) => e.event === 'abort_connections');
    assert.equal(aborts.length, 2);
    const rdata = worker.events.all().filter(workerEvent('rdata'));
    const byStream = (s: string): { token: number; rows: unknown[][] }[] => rdata.filter((e) => e.stream === s);
    // events: tokens 1..last, once each, the master's rows.
    const events = byStream('events');
    assert.deepEqual(events.map((e) => e.token), Array.from({ length: lastEvents }, (_, i) => i + 1));
    for (const e of events) {
      assert.equal(e.rows.length, 1);
      assert.equal(e.rows[0]![0], `$${e.token}:example.com`);
    }
    // caches: every token's three rows delivered together, once.
    const caches = byStream('caches');
    assert.deepEqual(caches.map((e) => e.token), Array.from({ length: lastCaches }, (_, i) => i + 1));
    for (const e of caches) {
      assert.deepEqual(
        e.rows.map((r) => (r[1] as string[])[0]),
        Array.from({ length: CACHE_BATCH }, (_, j) => `@user${e.token}_${j}:example.com`),
        `caches token ${e.token}`,
      );
    }
    // The worker's own connection was never dropped.
    const done = worker.events.all().find(workerEvent('done'))!;
    assert.equal(done.connections, 1);
    assert.equal(worker.events.all().filter(workerEvent('connection_lost')).length, 0);
    // The first relay counted the aborts and is connected again.
    const m = parseMetrics((await httpGet(gw1.http!, '/metrics')).body);
    assert.ok(m.get('replication_gateway_relay_upstream_disconnects_total')! >= 2);
    assert.equal(m.get('replication_gateway_relay_upstream_connected'), 1);
  });

  it('carries client commands from the worker to the master through both relays', async () => {
    const userAgent = 'Mozilla/5.0 (X11)';
    const worker = await startSynapseWorker({
      port: gw2.tcp,
      name: 'synapse.app.commands',
      streams: { events: 'NOW' },
      userSync: ['@alice:example.com'],
      federationAck: [12],
      removePusher: [{ appId: 'm.http', pushKey: 'key1', userId: '@bob:example.com' }],
      invalidateCache: [{ cacheFunc: 'get_user_by_id', keys: ['@carol:example.com'] }],
      userIp: [{ userId: '@dave:example.com', accessToken: 'tok', ip: '10.0.0.1', userAgent, deviceId: 'DEV', lastSeen: 1490197670513 }],
      maxSeconds: 20,
      stdin: true,
    });
    workers.push(worker);
    const recv = async (cmd: string) =>
      master.events.waitFor((e) => masterEvent('recv')(e) && e.cmd === cmd, 10_000, `recv ${cmd}`);
    const userSync = await recv('USER_SYNC');
    assert.match(String(userSync.line), /^USER_SYNC @alice:example\.com start \d+$/);
    assert.equal((await recv('FEDERATION_ACK')).line, 'FEDERATION_ACK 12');
    assert.equal((await recv('REMOVE_PUSHER')).line, 'REMOVE_PUSHER m.http key1 @bob:example.com');
    const invalidate = await recv('INVALIDATE_CACHE');
    assert.equal(invalidate.line, 'INVALIDATE_CACHE get_user_by_id ["@carol:example.com"]');
    // ujson escapes '/' as '\/': the line reaches the master as the worker wrote it.
    const userIp = await recv('USER_IP');
    assert.equal(userIp.line, 'USER_IP @dave:example.com ["tok","10.0.0.1","Mozilla\\/5.0 (X11)","DEV",1490197670513]');
    // The master's effects ran: Synapse parsed what came through the relays.
    await master.events.waitFor((e) => e.event === 'store.invalidate_cache', 5_000);
    await master.events.waitFor((e) => e.event === 'store.insert_client_ip', 5_000);
    // All of it came on the relay's connection: its NAME labels the master's log.
    assert.match(String(userSync.conn), /^replication-gateway@/);
    worker.send({ op: 'quit' });
    assert.equal(await worker.exited, 0);
  });

  it("batches Synapse's numbered catch-up runs whole, though the upstream connection is cut inside them", async () => {
    const TOKENS = 200;
    cutMaster = await startSynapseMaster({ streams: ['caches'], prefill: { caches: TOKENS }, batch: { caches: CACHE_BATCH } });
    proxy = await startCuttableProxy(cutMaster.port);
    // Cut the first connections after these many bytes from the master: inside lines, inside runs.
    const cutsAt = [1_234, 3_333, 5_001, 7_777];
    proxy.onConnection = () => {
      const bytes = cutsAt[proxy!.accepted - 1];
      if (bytes !== undefined) proxy!.cutAfter(bytes);
    };
    const gw = await startGateway(['--upstream', `127.0.0.1:${proxy.port}`, '--streams', 'caches'], { timeoutMs: 20_000 });
    assert.equal(proxy.cuts, cutsAt.length);
    const sub = await LineClient.connect(gw.tcp);
    sub.send('REPLICATE caches 0');
    await sub.waitFor((l) => l.startsWith('POSITION caches'), 5_000);
    const rdata = sub.lines.filter((l) => l.startsWith('RDATA'));
    assert.equal(rdata.length, TOKENS * CACHE_BATCH);
    rdata.forEach((line, i) => {
      const t = Math.floor(i / CACHE_BATCH) + 1;
      const j = i % CACHE_BATCH;
      const framing = j === CACHE_BATCH - 1 ? String(t) : 'batch';
      assert.match(line, new RegExp(`^RDATA caches ${framing} \\["get_user_by_id",\\["@user${t}_${j}:example\\.com"\\],\\d+\\]$`));
    });
    assert.equal(sub.lines.at(-1), `POSITION caches ${TOKENS}`);
    sub.close();
    await gw.stop();
  });
});
