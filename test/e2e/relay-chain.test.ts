// Relay mode end to end: master -> gateway -> gateway -> subscriber, where
// the master is a ReplicationServer in this process that keeps its rows
// across a restart (as a real master keeps them in its database). The
// master is stopped and started again mid-stream; the subscriber, connected
// to the second relay the whole time, gets every row once, in order, with
// the master's tokens and batches whole.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ReplicationServer } from '../../src/server.js';
import { LineClient, delay, httpGet, killAllGateways, parseMetrics, startGateway } from './support/gateway-process.js';

const STREAMS = ['events', 'caches'];
const CACHE_BATCH = 3;

/** The master: its history is replayed into a new server on restart, so tokens and bytes match. */
class Master {
  server: ReplicationServer | null = null;
  readonly history: { stream: string; rows: unknown[] }[] = [];
  port = 0;

  async start(): Promise<void> {
    const server = new ReplicationServer({ serverName: 'master.hs', streams: STREAMS });
    for (const { stream, rows } of this.history) await server.publish(stream, rows);
    const addr = await server.listen({ host: '127.0.0.1', port: this.port });
    this.port = addr.port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    await s?.close();
  }

  get up(): boolean {
    return this.server !== null;
  }

  async publish(stream: string, rows: unknown[]): Promise<void> {
    this.history.push({ stream, rows });
    if (this.server) await this.server.publish(stream, rows);
  }

  head(stream: string): number {
    return this.history.filter((h) => h.stream === stream).length;
  }
}

const eventRow = (t: number): unknown[] => [`$${t}:master.hs`, '!room:master.hs', 'm.room.message', '', null];
const cacheRows = (t: number): unknown[] =>
  Array.from({ length: CACHE_BATCH }, (_, j) => ['get_user_by_id', [`@user${t}_${j}:master.hs`], 1490197670000 + t]);

let master: Master | null = null;

after(async () => {
  killAllGateways();
  await master?.stop();
});

describe('relay chain with a restarting master', () => {
  it('delivers every row once, in order, with the master\'s tokens, across a master restart', async () => {
    master = new Master();
    // History before anyone relays: reachable only by catch-up.
    for (let t = 1; t <= 30; t++) await master.publish('events', [eventRow(t)]);
    for (let t = 1; t <= 10; t++) await master.publish('caches', cacheRows(t));
    await master.start();

    const gw1 = await startGateway(['--upstream', `127.0.0.1:${master.port}`, '--streams', STREAMS.join(',')]);
    const gw2 = await startGateway(['--upstream', `127.0.0.1:${gw1.tcp}`, '--streams', STREAMS.join(',')]);
    const sub = await LineClient.connect(gw2.tcp);
    sub.send('NAME chain-subscriber', 'REPLICATE events 0', 'REPLICATE caches 0');
    // The relays take the master's name.
    assert.equal(await sub.waitFor((l) => l.startsWith('SERVER')), 'SERVER master.hs');

    // Live rows while the master restarts in the middle.
    const LAST_EVENT = 150;
    const LAST_CACHE = 50;
    let e = 30;
    let c = 10;
    let restarted = false;
    let sawDown = false;
    while (e < LAST_EVENT || c < LAST_CACHE) {
      if (e < LAST_EVENT) await master.publish('events', [eventRow(++e)]);
      if (e % 3 === 0 && c < LAST_CACHE) await master.publish('caches', cacheRows(++c));
      if (e === 80 && !restarted) {
        restarted = true;
        await master.stop();
        // Rows keep being written "to the database" while the master is down.
        for (let i = 0; i < 10; i++) {
          await master.publish('events', [eventRow(++e)]);
          await master.publish('caches', cacheRows(++c));
        }
        const deadline = Date.now() + 5_000;
        while (!sawDown && Date.now() < deadline) {
          const h = await httpGet(gw1.http!, '/healthz');
          sawDown = h.status === 503 && (JSON.parse(h.body) as { status: string }).status === 'upstream_down';
          if (!sawDown) await delay(20);
        }
        await master.start();
      }
      await delay(2);
    }
    assert.ok(sawDown, 'the first relay reported the upstream down on /healthz');

    await sub.until(
      () => sub.lines.includes(`RDATA events ${LAST_EVENT} ${JSON.stringify(eventRow(LAST_EVENT))}`) &&
        sub.lines.some((l) => l.startsWith(`RDATA caches ${LAST_CACHE} `)),
      'the last rows at the subscriber',
      15_000,
    );

    // Exactly the master's lines, in order, per stream; batches framed.
    const expected = (stream: string): string[] => {
      const out: string[] = [];
      let t = 0;
      for (const h of master!.history) {
        if (h.stream !== stream) continue;
        t++;
        h.rows.forEach((row, j) => out.push(`RDATA ${stream} ${j < h.rows.length - 1 ? 'batch' : t} ${JSON.stringify(row)}`));
      }
      return out;
    };
    const rdata = (stream: string): string[] => sub.lines.filter((l) => l.startsWith(`RDATA ${stream} `));
    assert.deepEqual(rdata('events'), expected('events'));
    assert.deepEqual(rdata('caches'), expected('caches'));
    // The subscriber's connection stayed up: one SERVER, no ERROR.
    assert.equal(sub.lines.filter((l) => l.startsWith('SERVER')).length, 1);
    assert.equal(sub.lines.filter((l) => l.startsWith('ERROR')).length, 0);

    // The first relay saw the restart; both are connected again.
    const m1 = parseMetrics((await httpGet(gw1.http!, '/metrics')).body);
    assert.equal(m1.get('replication_gateway_relay_upstream_connected'), 1);
    assert.ok(m1.get('replication_gateway_relay_upstream_connects_total')! >= 2);
    assert.ok(m1.get('replication_gateway_relay_upstream_disconnects_total')! >= 1);
    assert.equal(m1.get('replication_gateway_relay_upstream_state{state="connected"}'), 1);
    assert.equal(m1.get('replication_gateway_relay_lag_tokens{stream="events"}'), 0);
    assert.ok(m1.has('replication_gateway_relay_lag_seconds{stream="events"}'));
    assert.ok(m1.has('replication_gateway_relay_upstream_last_received_age_seconds'));
    assert.equal(m1.get('replication_gateway_stream_head_token{stream="caches"}'), master.head('caches'));
    const h2 = JSON.parse((await httpGet(gw2.http!, '/healthz')).body) as { ok: boolean; upstream: { connected: boolean; serverName: string; lastCommandAgeSeconds: number } };
    assert.equal(h2.ok, true);
    assert.equal(h2.upstream.serverName, 'master.hs');
    assert.ok(h2.upstream.lastCommandAgeSeconds < 10);

    sub.close();
    assert.equal((await gw2.stop()).code, 0);
    assert.equal((await gw1.stop()).code, 0);
  });

  it('forwards client commands upstream, and holds them while the upstream is away', async () => {
    const seen: string[] = [];
    const startMaster = async (port: number): Promise<ReplicationServer> => {
      const m = new ReplicationServer({ serverName: 'cmd.hs', streams: ['events'] });
      m.on('command', (cmd) => seen.push(`${cmd.name}${cmd.name === 'USER_SYNC' ? ` ${cmd.userId} ${cmd.state}` : ''}`));
      await m.listen({ host: '127.0.0.1', port });
      return m;
    };
    let m = await startMaster(0);
    const port = m.address()!.port;
    const gw = await startGateway(['--upstream', `127.0.0.1:${port}`, '--streams', 'events']);
    const waitSeen = async (n: number): Promise<void> => {
      const deadline = Date.now() + 8_000;
      while (seen.length < n && Date.now() < deadline) await delay(20);
    };
    try {
      const sub = await LineClient.connect(gw.tcp);
      sub.send('REPLICATE events NOW', 'USER_SYNC @u:hs start 1', 'FEDERATION_ACK 7', 'INVALIDATE_CACHE f ["k\\/1"]');
      await waitSeen(3);
      assert.deepEqual(seen, ['USER_SYNC @u:hs start', 'FEDERATION_ACK', 'INVALIDATE_CACHE']);
      await m.close();
      seen.length = 0;
      sub.send('FEDERATION_ACK 8');
      await delay(100);
      m = await startMaster(port);
      // On reconnect: the syncing user again, then what was held.
      await waitSeen(2);
      assert.deepEqual(seen, ['USER_SYNC @u:hs start', 'FEDERATION_ACK']);
      assert.equal(sub.lines.filter((l) => l.startsWith('SERVER')).length, 1);
      sub.close();
      await waitSeen(3);
      assert.deepEqual(seen.at(-1), 'USER_SYNC @u:hs end');
    } finally {
      await gw.stop();
      await m.close();
    }
  });

  it("starts a stream from NOW when the upstream gateway no longer retains its beginning, keeping the others' history", async () => {
    const m = new ReplicationServer({ serverName: 'evicted.hs', streams: ['events', 'caches'], retentionRows: 10 });
    for (let t = 1; t <= 30; t++) await m.publish('events', [[`$${t}:evicted.hs`]]);
    await m.publish('caches', [['f', ['k']]]);
    const addr = await m.listen({ host: '127.0.0.1', port: 0 });
    const gw = await startGateway(['--upstream', `127.0.0.1:${addr.port}`, '--streams', 'events,caches']);
    try {
      const restart = await gw.logs.waitFor((e) => e['msg'] === 'stream followed from NOW: the relay serves it from this token on', 1_000);
      assert.deepEqual([restart['stream'], restart['token']], ['events', 30]);
      await m.publish('events', [['$31:evicted.hs']]);
      const sub = await LineClient.connect(gw.tcp);
      sub.send('REPLICATE events 30', 'REPLICATE caches 0');
      await sub.waitFor((l) => l === 'RDATA events 31 ["$31:evicted.hs"]');
      // caches came from 0, with its history (the two streams' lines may come in either order).
      await sub.waitFor((l) => l === 'RDATA caches 1 ["f",["k"]]');
      const old = await LineClient.connect(gw.tcp);
      old.send('REPLICATE events 20');
      assert.equal(
        await old.waitFor((l) => l.startsWith('ERROR')),
        'ERROR token 20 is older than the oldest retained token 30 (stream=events oldest=30 head=31)',
      );
      sub.close();
      old.close();
    } finally {
      await gw.stop();
      await m.close();
    }
  });

  it('authenticates to an upstream gateway that requires AUTH (--upstream-token)', async () => {
    const m = new ReplicationServer({ serverName: 'auth.hs', streams: ['events'] });
    await m.publish('events', [['$1:auth.hs']]);
    await m.publish('events', [['$2a:auth.hs'], ['$2b:auth.hs']]);
    const addr = await m.listen({ host: '127.0.0.1', port: 0 });
    const gw1 = await startGateway(['--upstream', `127.0.0.1:${addr.port}`, '--streams', 'events', '--subscriber-token', 'inner']);
    const gw2 = await startGateway(['--upstream', `127.0.0.1:${gw1.tcp}`, '--upstream-token', 'inner', '--streams', 'events', '--subscriber-token', 'outer']);
    try {
      const sub = await LineClient.connect(gw2.tcp);
      sub.send('AUTH outer', 'REPLICATE events 0');
      await sub.waitFor((l) => l.startsWith('POSITION events'));
      assert.deepEqual(sub.lines.filter((l) => l.startsWith('RDATA')), [
        'RDATA events 1 ["$1:auth.hs"]',
        'RDATA events batch ["$2a:auth.hs"]',
        'RDATA events 2 ["$2b:auth.hs"]',
      ]);
      sub.close();
    } finally {
      await gw2.stop();
      await gw1.stop();
      await m.close();
    }
  });
});
