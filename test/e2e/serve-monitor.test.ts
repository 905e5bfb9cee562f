// `serve --monitor HOST:PORT`: a second HTTP listener with /metrics,
// /healthz and /connections only, no stream data, for a monitoring system.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { LineClient, httpGet, killAllGateways, runGateway, startGateway, type GatewayProcess } from './support/gateway-process.js';

after(() => killAllGateways());

describe('serve --monitor', () => {
  let gw: GatewayProcess;
  after(() => gw?.stop());

  it('serves /metrics, /healthz and /connections, and names its port in the ready file and the listening line', async () => {
    gw = await startGateway(['--http', 'off', '--monitor', '127.0.0.1:0', '--streams', 'events']);
    const ready = JSON.parse(readFileSync(gw.readyFile, 'utf8')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(ready).sort(), ['http', 'monitor', 'pid', 'tcp']);
    assert.equal(ready['http'], null);
    const port = gw.monitor!;
    assert.equal(typeof port, 'number');
    const listening = await gw.logs.waitFor((e) => e['msg'] === 'listening', 5_000);
    assert.deepEqual(listening['monitor'], { host: '127.0.0.1', port });

    const worker = await LineClient.connect(gw.tcp);
    worker.send('NAME worker1', 'REPLICATE events NOW');
    await worker.waitFor((l) => l === 'POSITION events 0');

    const metrics = await httpGet(port, '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^replication_gateway_stream_subscribers\{stream="events"\} 1$/m);
    const health = await httpGet(port, '/healthz');
    assert.equal(health.status, 200);
    assert.equal((JSON.parse(health.body) as { status: string }).status, 'ok');
    const conns = JSON.parse((await httpGet(port, '/connections')).body) as { total: number; connections: { name: string }[] };
    assert.equal(conns.total, 1);
    assert.equal(conns.connections[0]!.name, 'worker1');
    const head = await fetch(`http://127.0.0.1:${port}/healthz`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
    worker.close();
  });

  it('serves nothing else: no status page, no WebSocket bridge, no client, no congestion log', async () => {
    const port = gw.monitor!;
    for (const path of ['/', '/replication', '/client.js', '/congestion', '/index.html']) {
      const res = await httpGet(port, path);
      assert.equal(res.status, 404, path);
      assert.equal(res.body, `not found: ${path} (the monitor listener serves /metrics, /healthz, /connections)\n`);
    }
    const post = await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
  });

  it('refuses a port in use and a bad value, saying which', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const busyPort = (taken.address() as net.AddressInfo).port;
      const busy = await runGateway(['--listen', '127.0.0.1:0', '--http', 'off', '--monitor', `127.0.0.1:${busyPort}`]);
      assert.equal(busy.code, 1, busy.stderr);
      assert.match(busy.stderr, new RegExp(`^replication-gateway serve: cannot listen for monitoring on 127\\.0\\.0\\.1:${busyPort}: listen EADDRINUSE`, 'm'));
    } finally {
      taken.close();
    }
    const bad = await runGateway(['--listen', '127.0.0.1:0', '--http', 'off', '--monitor', 'somewhere']);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--monitor/);
    assert.match(bad.stderr, /HOST:PORT/);
  });
});
