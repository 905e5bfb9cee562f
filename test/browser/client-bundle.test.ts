// /client.js outside a browser: the bundle (client core + Buffer shim) run in
// Node with `ws` as its WebSocket, against a real gateway. Rows arrive in
// order, batches whole, and a cut is resumed with nothing lost or repeated.
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';
import { after, before, it } from 'node:test';
import WebSocket from 'ws';
import { describeEachEngine, row, waitUntil, type Gateway } from '../bindings/ws-harness.js';
import { ensureBrowserBuild } from './browser-harness.js';
import { hubOf } from '../../src/server.js';

interface BundleClient {
  on(event: string, listener: (e: never) => void): BundleClient;
  start(): BundleClient;
  close(): Promise<void>;
  positions(): Record<string, number | null>;
  connects: number;
}
type ClientCtor = new (options: Record<string, unknown>) => BundleClient;
type TransportFactoryMaker = (options: { url: string; WebSocket: unknown }) => () => unknown;

describeEachEngine('the /client.js bundle', (edge) => {
  let gw: Gateway;
  let ReplicationClient: ClientCtor;
  let wsClientTransport: TransportFactoryMaker;
  before(async () => {
    const { clientJs } = await ensureBrowserBuild();
    ({ ReplicationClient, wsClientTransport } = (await import(pathToFileURL(clientJs).href)) as {
      ReplicationClient: ClientCtor;
      wsClientTransport: TransportFactoryMaker;
    });
    gw = await edge.start({ subscriberToken: 'tab' });
  });
  after(() => gw.close());

  it('is served at /client.js as JavaScript', async () => {
    const res = await fetch(`${gw.httpUrl}/client.js`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.match(await res.text(), /export\s*{/);
  });

  it('follows a stream, reconnects after a cut and resumes without loss or repeats', async () => {
    await gw.server.publish('events', [row(0)]);
    const got: { token: number; values: unknown[] }[] = [];
    const client = new ReplicationClient({
      url: gw.wsUrl,
      WebSocket,
      auth: 'tab',
      name: 'bundle-in-node',
      streams: { events: gw.server.head('events') },
      backoff: { initialMs: 20, maxMs: 50 },
    });
    client.on('rows', (e: { token: number; rows: unknown[] }) => got.push({ token: e.token, values: e.rows }));
    client.start();
    await waitUntil('the connection', () => gw.server.connections().find((c) => c.name === 'bundle-in-node' && c.subscriptions().length === 1));
    const t1 = await gw.server.publish('events', [row(1), row(2)]);
    await waitUntil('batch 1', () => (got.length === 1 ? true : undefined));
    assert.deepEqual(got[0], { token: t1, values: [row(1), row(2)] });

    // Cut it from the server side, and write while it is away.
    const conn = [...hubOf(gw.server).connections()].find((c) => c.name === 'bundle-in-node')!;
    conn.close('shutdown', 'test cut');
    const t2 = await gw.server.publish('events', [row(3)]);
    const t3 = await gw.server.publish('events', [row(4), row(5), row(6)]);
    await waitUntil('the resumed rows', () => (got.length === 3 ? true : undefined));
    assert.deepEqual(got.map((g) => g.token), [t1, t2, t3]);
    assert.deepEqual(got[2]!.values, [row(4), row(5), row(6)]);
    assert.ok(client.connects >= 2);
    assert.deepEqual(client.positions(), { events: t3 });
    await client.close();
  });

  it("with followGeneration: asks over WebSocket, and a reconnect to a log of another generation emits 'generation'", async () => {
    const first = await edge.start({ generation: 'aaa' });
    const second = await edge.start({ generation: 'bbb' });
    try {
      // Where the client's next connection goes: the "restarted" gateway is on another port.
      let url = first.wsUrl;
      const generations: unknown[] = [];
      const client = new ReplicationClient({
        transport: () => wsClientTransport({ url, WebSocket })(),
        name: 'bundle-generation',
        streams: ['events'],
        followGeneration: true,
        backoff: { initialMs: 20, maxMs: 50 },
      });
      let positions = 0;
      client.on('generation', (e: { previous: string | null; current: string | null }) => generations.push(e));
      client.on('position', () => positions++);
      client.start();
      // The answer comes ahead of the POSITION of the REPLICATE sent after the question.
      await waitUntil('the first POSITION', () => (positions === 1 ? true : undefined));
      assert.equal(hubOf(first.server).commandsIn.GENERATION, 1);
      url = second.wsUrl;
      await first.close();
      await waitUntil("'generation'", () => (generations.length === 1 ? true : undefined));
      assert.deepEqual(generations, [{ previous: 'aaa', current: 'bbb' }]);
      await client.close();
    } finally {
      await first.close();
      await second.close();
    }
  });
});
