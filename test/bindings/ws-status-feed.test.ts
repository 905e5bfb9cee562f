// The read-only status feed over the same WebSocket endpoint (subprotocol
// replication.status), and the HTTP routes of the listener.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { FallbackAnswer } from '../../src/bindings/http-app.js';
import type { StatusSnapshot } from '../../src/bindings/status-feed.js';
import { describeEachEngine, TcpPeer, waitUntil, WsPeer } from './ws-harness.js';

const STATUS = 'replication.status';

function snapshots(peer: WsPeer): StatusSnapshot[] {
  return peer.messages.map((m) => JSON.parse(m) as { type: string }).filter((m): m is StatusSnapshot => m.type === 'status');
}

describeEachEngine('status feed', (edge) => {
  it('pushes stream heads, rows/s, connections and recent disconnects', async () => {
    const gw = await edge.start({}, { status: { intervalMs: 50 } });
    try {
      const worker = await TcpPeer.connect(gw.tcpPort);
      worker.send('NAME synapse.app.pusher\nREPLICATE events NOW\n');
      await worker.line(/^POSITION events/);
      const gone = await WsPeer.open(gw.wsUrl);
      gone.send('NAME short-lived\nHELLO');
      await gone.waitClosed();

      const status = await WsPeer.open(gw.wsUrl, { protocol: STATUS });
      assert.equal(status.ws.protocol, STATUS);
      await waitUntil('hello', () => (status.messages.length > 0 ? true : undefined));
      assert.deepEqual(JSON.parse(status.messages[0]!), { type: 'hello', server: 'localhost', authRequired: false, intervalMs: 50 });
      for (let i = 0; i < 5; i++) await gw.server.publish('events', [[i]]);
      const snap = await waitUntil('head 5', () => snapshots(status).find((s) => s.streams.find((x) => x.name === 'events')?.head === 5));
      const events = snap.streams.find((s) => s.name === 'events')!;
      assert.equal(events.liveSubscribers, 1);
      assert.equal(events.rowsWritten, 5);
      await waitUntil('a rate', () => snapshots(status).find((s) => s.streams.some((x) => x.name === 'events' && x.rowsPerSec > 0)));
      const pusher = snap.connections.listed.find((c) => c.name === 'synapse.app.pusher')!;
      assert.equal(pusher.transport, 'tcp');
      assert.equal(pusher.role, 'anonymous');
      assert.deepEqual(pusher.streams.map((s) => [s.stream, s.catchingUp]), [['events', false]]);
      assert.equal(typeof pusher.queuedCommands, 'number');
      assert.equal(typeof pusher.lag, 'number');
      const d = snap.disconnects.find((x) => x.name === 'short-lived')!;
      assert.equal(d.transport, 'ws');
      assert.equal(d.reason, 'protocol_error');
      assert.match(d.detail, /unknown command/);
      // The status socket is not a replication connection.
      assert.deepEqual(snap.connections.listed.map((c) => c.transport), ['tcp']);
      status.terminate();
      worker.close();
    } finally {
      await gw.close();
    }
  });

  it('requires AUTH when the hub does, and scopes a token to its streams', async () => {
    const gw = await edge.start({ credentials: [{ secret: 'ops', role: 'subscriber' }, { secret: 'tab', role: 'subscriber', streams: ['typing'] }] }, { status: { intervalMs: 50 } });
    try {
      const anonymous = await WsPeer.open(gw.wsUrl, { protocol: STATUS });
      anonymous.send('AUTH nope');
      await anonymous.waitClosed();
      assert.deepEqual(JSON.parse(anonymous.messages.at(-1)!), { type: 'error', message: 'AUTH failed: the token matches no configured credential' });

      const writerish = await WsPeer.open(gw.wsUrl, { protocol: STATUS });
      writerish.send('REPLICATE events NOW');
      await writerish.waitClosed();
      assert.match(writerish.messages.at(-1)!, /read-only/);

      const ops = await WsPeer.open(gw.wsUrl, { protocol: STATUS });
      ops.send('AUTH ops');
      const all = await waitUntil('snapshot', () => snapshots(ops)[0]);
      assert.deepEqual(all.streams.map((s) => s.name), ['events', 'typing', 'caches']);

      const tab = await WsPeer.open(gw.wsUrl, { protocol: STATUS });
      tab.send('PING 1\nAUTH tab');
      const scoped = await waitUntil('snapshot', () => snapshots(tab)[0]);
      assert.deepEqual(scoped.streams.map((s) => s.name), ['typing']);
      assert.deepEqual(scoped.disconnects, []);
      ops.terminate();
      tab.terminate();
    } finally {
      await gw.close();
    }
  });
});

describeEachEngine('status feed with --auth-cookie', (edge) => {
  it('takes the cookie as its AUTH: scoped snapshots at once, a wrong cookie refused', async () => {
    const gw = await edge.start({ credentials: [{ secret: 'ops', role: 'subscriber' }, { secret: 'tab', role: 'subscriber', streams: ['typing'] }] }, { status: { intervalMs: 50 }, authCookie: 'rg_token' });
    try {
      const tab = await WsPeer.open(gw.wsUrl, { protocol: STATUS, cookie: 'rg_token=tab' });
      const scoped = await waitUntil('snapshot', () => snapshots(tab)[0]);
      assert.deepEqual(JSON.parse(tab.messages[0]!), { type: 'hello', server: 'localhost', authRequired: false, intervalMs: 50 });
      assert.deepEqual(scoped.streams.map((s) => s.name), ['typing']);

      const wrong = await WsPeer.open(gw.wsUrl, { protocol: STATUS, cookie: 'rg_token=nope' });
      await wrong.waitClosed();
      assert.deepEqual(wrong.messages.map((m) => JSON.parse(m) as unknown), [
        { type: 'hello', server: 'localhost', authRequired: true, intervalMs: 50 },
        { type: 'error', message: 'AUTH failed: the token matches no configured credential' },
      ]);
      tab.terminate();
    } finally {
      await gw.close();
    }
  });
});

describeEachEngine('HTTP routes', (edge) => {
  it('serves /healthz, the gateway routes, and 404 elsewhere', async () => {
    const gw = await edge.start({}, { routes: { '/metrics': async () => ({ contentType: 'text/plain; version=0.0.4', body: 'rg_up 1\n' }) } });
    try {
      const health = await fetch(`${gw.httpUrl}/healthz`);
      assert.equal(health.status, 200);
      assert.equal(await health.text(), 'ok\n');
      const metrics = await fetch(`${gw.httpUrl}/metrics`);
      assert.equal(metrics.headers.get('content-type'), 'text/plain; version=0.0.4');
      assert.equal(await metrics.text(), 'rg_up 1\n');
      assert.equal((await fetch(`${gw.httpUrl}/nope`)).status, 404);
    } finally {
      await gw.close();
    }
  });

  it('hands every other request to the gateway fallback, HEAD included', async () => {
    const seen: string[] = [];
    const gw = await edge.start({}, {
      fallback: async (method, path): Promise<FallbackAnswer> => {
        seen.push(`${method} ${path}`);
        if (path === '/healthz') return { status: 503, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' }, body: '{"ok":false}\n' };
        return { status: 404, headers: { 'content-type': 'text/plain' }, body: `not found: ${path}\n` };
      },
    });
    try {
      const health = await fetch(`${gw.httpUrl}/healthz?x=1`);
      assert.equal(health.status, 503);
      assert.equal(health.headers.get('cache-control'), 'no-store');
      assert.equal(await health.text(), '{"ok":false}\n');
      const head = await fetch(`${gw.httpUrl}/healthz`, { method: 'HEAD' });
      assert.equal(head.status, 503);
      assert.equal(head.headers.get('content-length'), '13');
      assert.equal(await head.text(), '');
      assert.equal((await fetch(`${gw.httpUrl}/congestion`)).status, 404);
      // The listener's own pages stay its own.
      assert.equal((await fetch(`${gw.httpUrl}/favicon.ico`)).status, 204);
      assert.deepEqual(seen, ['GET /healthz', 'HEAD /healthz', 'GET /congestion']);
    } finally {
      await gw.close();
    }
  });
});
