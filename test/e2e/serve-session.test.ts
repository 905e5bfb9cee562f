// `replication-gateway serve` as an operator meets it: the ready file, a
// netcat-style session, rows from a writer, /metrics, /healthz, the
// congestion log, and SIGTERM/SIGINT; on each --ws-engine that runs here.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, it } from 'node:test';
import { describeEachEngine } from '../bindings/ws-harness.js';
import { packageVersion } from '../support/project-root.js';
import { LineClient, delay, httpGet, killAllGateways, parseMetrics, startGateway, type GatewayProcess } from './support/gateway-process.js';

after(() => killAllGateways());

/** The samples of one metric name: labels text -> value. */
function series(metrics: Map<string, number>, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const [key, value] of metrics) {
    if (key === name) out.set('', value);
    else if (key.startsWith(`${name}{`)) out.set(key.slice(name.length), value);
  }
  return out;
}

describeEachEngine('serve, one gateway with a writer and subscribers', ({ engine }) => {
  let gw: GatewayProcess;
  let kept: LineClient[] = [];

  it('writes the ready file once listening, with the ports of the listening log line', async () => {
    gw = await startGateway(['--ws-engine', engine, '--writer-token', 'w3', '--streams', 'events,caches']);
    const ready = JSON.parse(readFileSync(gw.readyFile, 'utf8')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(ready).sort(), ['http', 'pid', 'tcp']);
    assert.equal(ready['pid'], gw.pid);
    const listening = await gw.logs.waitFor((e) => e['msg'] === 'listening', 5_000);
    assert.deepEqual(listening['tcp'], { host: '127.0.0.1', port: ready['tcp'] });
    assert.deepEqual(listening['http'], { host: '127.0.0.1', port: ready['http'] });
    assert.equal(gw.logs.all().filter((e) => e['msg'] === 'listening').length, 1);
  });

  it('shows a person with netcat SERVER, PING and a POSITION per stream', async () => {
    const nc = await LineClient.connect(gw.tcp);
    await nc.waitForCount(() => true, 2);
    assert.equal(nc.lines[0], 'SERVER localhost');
    assert.match(nc.lines[1]!, /^PING \d{13}$/);
    nc.send('REPLICATE ALL NOW');
    assert.deepEqual(await nc.waitForCount((l) => l.startsWith('POSITION'), 2), ['POSITION events 0', 'POSITION caches 0']);
    nc.close();
  });

  it("carries a writer's rows and batches to a subscriber byte for byte", async () => {
    const sub = await LineClient.connect(gw.tcp);
    sub.send('NAME e2e-subscriber', 'REPLICATE events 0', 'REPLICATE caches 0');
    await sub.waitForCount((l) => l.startsWith('POSITION'), 2);
    const writer = await LineClient.connect(gw.tcp);
    const rows = [
      'RDATA events 1 ["$1:hs","!r:hs","m.room.message","",null]',
      'RDATA caches batch ["get_user_by_id",["@a:hs"],1490197670513]',
      'RDATA caches batch ["get_user_by_id",["@b:hs"],1490197670513]',
      'RDATA caches 1 ["get_user_by_id",["@c:hs"],1490197670513]',
      'RDATA events 2 ["$2:hs","!r:hs","m.room.message","",null]',
    ];
    writer.send('NAME e2e-writer', 'AUTH w3', ...rows);
    const got = await sub.waitForCount((l) => l.startsWith('RDATA'), rows.length);
    assert.deepEqual(got, rows);
    sub.send('FEDERATION_ACK 2');
    assert.equal(await writer.waitFor((l) => l.startsWith('FEDERATION_ACK')), 'FEDERATION_ACK 2');
    // A protocol error, for the disconnect counter.
    const bad = await LineClient.connect(gw.tcp);
    bad.send('HELLO there');
    assert.match(await bad.waitFor((l) => l.startsWith('ERROR')), /unknown command/);
    await bad.closed;
    // Kept open for the metrics below and the shutdown at the end.
    kept = [sub, writer];
  });

  it('serves /metrics with the named series', async () => {
    const res = await httpGet(gw.http!, '/metrics');
    assert.equal(res.status, 200);
    assert.match(res.contentType, /^text\/plain/);
    const m = parseMetrics(res.body);
    const has = (name: string): Map<string, number> => {
      const s = series(m, name);
      assert.ok(s.size > 0, `series ${name} present`);
      return s;
    };
    assert.ok((has('replication_gateway_connections').get('{transport="tcp",role="writer"}') ?? 0) >= 1);
    assert.ok((has('replication_gateway_connections').get('{transport="tcp",role="anonymous"}') ?? 0) >= 1);
    assert.equal(has('replication_gateway_commands_in_total').get('{command="RDATA"}'), 5);
    assert.equal(has('replication_gateway_commands_in_total').get('{command="FEDERATION_ACK"}'), 1);
    assert.ok(has('replication_gateway_commands_in_total').get('{command="REPLICATE"}')! >= 1);
    assert.ok(has('replication_gateway_commands_out_total').get('{command="RDATA"}')! >= 5);
    assert.ok(has('replication_gateway_commands_out_total').get('{command="SERVER"}')! >= 4);
    assert.ok(has('replication_gateway_commands_out_total').get('{command="POSITION"}')! >= 4);
    assert.equal(has('replication_gateway_commands_out_total').get('{command="FEDERATION_ACK"}'), 1);
    assert.ok(has('replication_gateway_sent_bytes_total').get('{transport="tcp"}')! > 0);
    for (const name of ['outbound_queue_commands', 'outbound_queue_commands_max', 'outbound_queue_bytes', 'outbound_queue_bytes_max']) {
      has(`replication_gateway_${name}`);
    }
    assert.equal(has('replication_gateway_stream_head_token').get('{stream="events"}'), 2);
    assert.equal(has('replication_gateway_stream_head_token').get('{stream="caches"}'), 1);
    assert.equal(has('replication_gateway_stream_rows_written_total').get('{stream="caches"}'), 3);
    assert.equal(has('replication_gateway_catchups_in_progress').get('{stream="events"}'), 0);
    assert.ok(has('replication_gateway_disconnects_total').get('{reason="protocol_error"}')! >= 1);
    const lagRows = has('replication_gateway_subscriber_lag_rows');
    const subLag = [...lagRows].filter(([labels]) => /name="e2e-subscriber",stream="events"/.test(labels));
    assert.deepEqual(subLag.map(([, v]) => v), [0]);
    has('replication_gateway_subscriber_lag_seconds');
    has('replication_gateway_connections_opened_total');
    has('replication_gateway_info');
    assert.ok(res.body.includes(`version="${packageVersion()}"`), 'replication_gateway_info names the version');
  });

  it('answers /healthz with 200 and how long since each writer last sent anything', async () => {
    const res = await httpGet(gw.http!, '/healthz');
    assert.equal(res.status, 200);
    const h = JSON.parse(res.body) as {
      ok: boolean;
      status: string;
      version: string;
      log: { kind: string; ok: boolean; problem: string | null; links: Record<string, unknown> };
      writers: { name: string; lastCommandAgeSeconds: number }[];
      streams: Record<string, { head: number; oldest: number; lastWriteAgeSeconds: number | null }>;
      upstream: unknown;
    };
    assert.equal(h.ok, true);
    assert.equal(h.status, 'ok');
    assert.equal(h.upstream, null);
    assert.equal(h.version, packageVersion());
    assert.deepEqual(h.log, { kind: 'memory', ok: true, problem: null, links: {} });
    assert.equal(h.writers.length, 1);
    assert.equal(h.writers[0]!.name, 'e2e-writer');
    assert.ok(h.writers[0]!.lastCommandAgeSeconds >= 0 && h.writers[0]!.lastCommandAgeSeconds < 30);
    assert.equal(h.streams['events']!.head, 2);
    assert.equal(h.streams['events']!.oldest, 0, 'written from token 1: complete from 0');
    assert.equal((await httpGet(gw.http!, '/nowhere')).status, 404);
  });

  it('stops on SIGTERM: every client gets ERROR server shutting down, exit 0, ready file gone', async () => {
    const [sub, writer] = kept;
    const extra = await LineClient.connect(gw.tcp);
    await extra.waitFor((l) => l.startsWith('SERVER'));
    const t0 = Date.now();
    const exit = await gw.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(Date.now() - t0 < 5_000, 'stopped within 5 s');
    for (const c of [sub!, writer!, extra]) {
      await c.closed;
      assert.equal(c.lines.at(-1), 'ERROR server shutting down');
    }
    assert.equal(existsSync(gw.readyFile), false);
    const msgs = gw.logs.all().map((e) => e['msg']);
    assert.ok(msgs.includes('shutting down') && msgs.includes('stopped'), JSON.stringify(msgs));
  });
});

describeEachEngine('serve, a stream whose first row comes after token 1', ({ engine }) => {
  it('refuses a catch-up from before its first row as too old, and says the oldest token on /metrics and /healthz', async () => {
    const gw = await startGateway(['--ws-engine', engine, '--writer-token', 'w', '--streams', 'events']);
    try {
      const writer = await LineClient.connect(gw.tcp);
      writer.send('AUTH w', 'RDATA events 500 ["$500:hs","!r:hs","m.room.message","",null]');
      const live = await LineClient.connect(gw.tcp);
      live.send('REPLICATE events 499');
      assert.deepEqual(await live.waitForCount((l) => l.startsWith('RDATA') || l.startsWith('POSITION'), 2), [
        'RDATA events 500 ["$500:hs","!r:hs","m.room.message","",null]',
        'POSITION events 500',
      ]);
      const early = await LineClient.connect(gw.tcp);
      early.send('REPLICATE events 0');
      // Tokens 1..499 were never seen here: unknown, not empty.
      assert.equal(
        await early.waitFor((l) => l.startsWith('ERROR')),
        'ERROR token 0 is older than the oldest retained token 499 (stream=events oldest=499 head=500)',
      );
      await early.closed;
      const m = parseMetrics((await httpGet(gw.http!, '/metrics')).body);
      assert.equal(m.get('replication_gateway_stream_oldest_token{stream="events"}'), 499);
      const h = JSON.parse((await httpGet(gw.http!, '/healthz')).body) as { streams: Record<string, { head: number; oldest: number }> };
      assert.deepEqual(h.streams['events'], { ...h.streams['events'], head: 500, oldest: 499 });
      writer.close();
      live.close();
    } finally {
      await gw.stop();
    }
  });
});

describeEachEngine('serve, congestion and signals', ({ engine }) => {
  it('cuts a subscriber that stops reading after --max-stall-ms, logs it and keeps it in /congestion', async () => {
    const gw = await startGateway(['--ws-engine', engine, '--writer-token', 'w', '--streams', 'events', '--max-queue-commands', '50', '--max-queue-bytes', '16KiB', '--max-stall-ms', '500']);
    try {
      const slow = await LineClient.connect(gw.tcp);
      slow.send('NAME slowpoke', 'REPLICATE events NOW');
      await slow.waitFor((l) => l.startsWith('POSITION'));
      slow.socket.pause();
      const writer = await LineClient.connect(gw.tcp);
      writer.send('AUTH w');
      const pad = 'x'.repeat(400);
      let token = 0;
      const deadline = Date.now() + 15_000;
      let cut: { cuts: Record<string, unknown>[] } = { cuts: [] };
      while (cut.cuts.length === 0 && Date.now() < deadline) {
        const lines: string[] = [];
        for (let i = 0; i < 2000; i++) lines.push(`RDATA events ${++token} ["${pad}"]`);
        writer.send(...lines);
        await delay(20);
        cut = JSON.parse((await httpGet(gw.http!, '/congestion')).body) as typeof cut;
      }
      assert.equal(cut.cuts.length, 1);
      const c = cut.cuts[0]!;
      assert.equal(c['name'], 'slowpoke');
      assert.match(String(c['address']), /^127\.0\.0\.1:\d+$/);
      // Past the queue limits it read from the log; what was queued at the cut stayed within them.
      assert.ok((c['queuedCommands'] as number) <= 50 && (c['queuedBytes'] as number) <= 16 * 1024, JSON.stringify(c));
      assert.equal(c['stream'], 'events', 'the stream it was reading from the log, behind');
      assert.equal(typeof c['lastTokenSent'], 'number');
      assert.equal(c['limit'], 'stall');
      const logged = await gw.logs.waitFor((e) => String(e['msg']).startsWith('slow consumer cut'), 5_000);
      assert.equal(logged['peerName'], 'slowpoke');
      assert.equal(logged['name'], 'replication-gateway', "the logger's name key is not overwritten by the peer's NAME");
      const m = parseMetrics((await httpGet(gw.http!, '/metrics')).body);
      assert.equal(m.get('replication_gateway_disconnects_total{reason="slow_consumer"}'), 1);
      assert.ok(m.has(`replication_gateway_slow_consumer_cuts_total{limit="${c['limit'] as string}"}`));
      slow.socket.resume();
      await slow.closed;
      assert.equal(slow.lines.at(-1), 'ERROR Failed to keep up');
      writer.close();
    } finally {
      await gw.stop();
    }
  });

  it('exits 0 within --shutdown-timeout-ms when a client never reads, and at once on a second signal', async () => {
    const gw = await startGateway(['--ws-engine', engine, '--shutdown-timeout-ms', '400']);
    const stuck = await LineClient.connect(gw.tcp);
    await stuck.waitFor((l) => l.startsWith('SERVER'));
    stuck.socket.pause(); // never sees the close: the gateway's socket stays half-open
    const t0 = Date.now();
    const exit = await gw.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(Date.now() - t0 < 3_000, `exited after ${Date.now() - t0} ms`);
    stuck.close();

    const gw2 = await startGateway(['--ws-engine', engine, '--shutdown-timeout-ms', '20000']);
    const stuck2 = await LineClient.connect(gw2.tcp);
    await stuck2.waitFor((l) => l.startsWith('SERVER'));
    stuck2.socket.pause();
    gw2.child.kill('SIGTERM');
    await gw2.logs.waitFor((e) => e['msg'] === 'shutting down', 5_000);
    await delay(200);
    assert.equal(gw2.child.exitCode, null, 'still flushing after the first signal');
    const t1 = Date.now();
    const exit2 = await gw2.stop('SIGINT');
    assert.deepEqual(exit2, { code: 130, signal: null });
    assert.ok(Date.now() - t1 < 2_000);
    stuck2.close();
  });
});
