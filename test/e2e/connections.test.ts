// GET /connections on a `serve` child, on each --ws-engine that runs here:
// what an operator reads about a writer, a TCP worker and a browser.

import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { describeEachEngine, WsPeer } from '../bindings/ws-harness.js';
import { LineClient, httpGet, killAllGateways, startGateway, type GatewayProcess } from './support/gateway-process.js';

after(() => killAllGateways());

interface Report {
  id: number;
  name: string | null;
  address: string;
  transport: string;
  role: string;
  connectedSince: string;
  streams: { stream: string; instance: string | null; token: number; catchingUp: boolean; lagRows: number; lagSeconds: number }[];
  lagRows: number;
  queuedCommands: number;
  queuedBytes: number;
  bytesIn: number;
  bytesOut: number;
}

interface Page {
  total: number;
  offset: number;
  limit: number;
  sort: string;
  connections: Report[];
  synapse: object | null;
}

async function connections(gw: GatewayProcess, query = ''): Promise<Page> {
  const res = await httpGet(gw.http!, `/connections${query}`);
  assert.equal(res.status, 200, res.body);
  assert.match(res.contentType, /^application\/json/);
  return JSON.parse(res.body) as Page;
}

describeEachEngine('GET /connections', ({ engine }) => {
  let gw: GatewayProcess;
  const opened: { close(): void }[] = [];
  after(async () => {
    for (const c of opened) c.close();
    await gw?.stop();
  });

  it('reports each connection with its address, role, streams, tokens and bytes each way', async () => {
    const startedAt = Date.now();
    gw = await startGateway(['--ws-engine', engine, '--writer-token', 'w', '--streams', 'events,typing']);
    const writer = await LineClient.connect(gw.tcp);
    opened.push(writer);
    writer.send('NAME writer1', 'AUTH w');
    for (let t = 1; t <= 3; t++) writer.send(`RDATA events ${t} ["$e${t}:hs","!r:hs","m.room.message","",null]`);

    const worker = await LineClient.connect(gw.tcp);
    opened.push(worker);
    const sent = 'NAME worker1\nREPLICATE events 0\n';
    worker.socket.write(sent);
    await worker.waitFor((l) => l === 'POSITION events 3');
    let received = 0;
    worker.socket.on('data', (c: Buffer) => (received += c.length));
    const receivedBefore = worker.lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);

    const browser = await WsPeer.open(`ws://127.0.0.1:${gw.http}/replication`);
    opened.push({ close: () => browser.terminate() });
    browser.send('REPLICATE typing NOW\n');
    await browser.line('POSITION typing 0');

    const page = await connections(gw);
    assert.equal(page.total, 3);
    assert.deepEqual([page.offset, page.limit, page.sort], [0, 100, 'id']);
    assert.equal(page.synapse, null, 'no --synapse-redis: no link');
    const [w, sub, ws] = page.connections;
    assert.deepEqual([w!.name, w!.role, w!.transport, w!.streams], ['writer1', 'writer', 'tcp', []]);

    assert.equal(sub!.name, 'worker1');
    assert.equal(sub!.address, `127.0.0.1:${worker.socket.localPort}`);
    assert.deepEqual([sub!.transport, sub!.role], ['tcp', 'anonymous']);
    assert.deepEqual(sub!.streams, [{ stream: 'events', instance: null, token: 3, catchingUp: false, lagRows: 0, lagSeconds: 0 }]);
    assert.equal(sub!.bytesIn, Buffer.byteLength(sent));
    // Everything it received by then; a PING may come after (one every 5 s).
    assert.ok(sub!.bytesOut >= receivedBefore && sub!.bytesOut <= receivedBefore + received, `${sub!.bytesOut} vs ${receivedBefore}+${received}`);
    assert.deepEqual([sub!.queuedCommands, sub!.queuedBytes], [0, 0]);
    const since = Date.parse(sub!.connectedSince);
    assert.ok(since >= startedAt - 1000 && since <= Date.now(), sub!.connectedSince);

    assert.equal(ws!.transport, 'ws');
    assert.deepEqual(ws!.streams.map((s) => [s.stream, s.token]), [['typing', 0]]);
    assert.equal(ws!.bytesIn, Buffer.byteLength('REPLICATE typing NOW\n'));
    // uWS 20.30 gives no peer port; ws does.
    const wsLocalPort = (browser.ws as unknown as { _socket: { localPort: number } })._socket.localPort;
    if (engine === 'ws') assert.equal(ws!.address, `127.0.0.1:${wsLocalPort}`);
    else assert.match(ws!.address, /127\.0\.0\.1$/);
    // The log names the peer as /connections does.
    const wsOpened = await gw.logs.waitFor((e) => e['msg'] === 'connection opened' && e['transport'] === 'ws', 5_000);
    assert.equal(wsOpened['address'], ws!.address);
  });

  it('pages with the total kept, and refuses a bad query with 400 saying why', async () => {
    const second = await connections(gw, '?offset=1&limit=1&sort=queued');
    assert.equal(second.total, 3);
    assert.equal(second.connections.length, 1);
    const bad = await httpGet(gw.http!, '/connections?limit=5000');
    assert.equal(bad.status, 400);
    assert.equal(bad.body, 'bad request: limit=5000 is not a whole number from 1 to 1000\n');
    const unknown = await httpGet(gw.http!, '/connections?sort=age');
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body, 'bad request: sort=age is not one of id, lag, queued\n');
  });
});
