// Checks the harness in synapse-peer.ts against the real reference peers:
// Synapse's 2017 worker follows Synapse's 2017 master, and a raw socket sees
// the master's greeting. Fails (never skips) when the peer cannot run here.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import {
  checkPythonPeer,
  masterEvent,
  PYTHON_PEER_INSTALL,
  pythonPeerAvailable,
  startSynapseMaster,
  startSynapseWorker,
  workerEvent,
  type SynapseMaster,
  type SynapseWorker,
} from './synapse-peer.js';

const stops: Array<() => Promise<void>> = [];

function cleanupLater<T extends { stop(): Promise<void> }>(peer: T): T {
  stops.push(() => peer.stop());
  return peer;
}

before(() => {
  assert.ok(pythonPeerAvailable(), `${checkPythonPeer().reason} (CI installs: ${PYTHON_PEER_INSTALL})`);
});

after(async () => {
  await Promise.all(stops.map((stop) => stop()));
});

test("Synapse's worker follows events from a token in the master's token order", { timeout: 10_000 }, async () => {
  const master: SynapseMaster = cleanupLater(
    await startSynapseMaster({
      name: 'master.test',
      streams: ['events'],
      prefill: 20,
      rows: 30,
      rate: 200,
      waitSubscribers: 1,
      logSent: true,
      maxSeconds: 30,
    }),
  );
  assert.deepEqual(master.listening.tokens, { events: 20 });

  const worker: SynapseWorker = cleanupLater(
    await startSynapseWorker({
      port: master.port,
      name: 'harness.worker',
      streams: { events: 10 },
      expectServer: 'master.test',
      until: { events: 50 },
      maxConnections: 1,
      maxSeconds: 8,
    }),
  );
  assert.equal(await worker.exited, 0, `worker.py exited non-zero; stderr: ${await worker.readStderr()}`);

  const got = worker.events.all();
  assert.deepEqual(got.filter(workerEvent('server')).map((e) => e.name), ['master.test']);
  assert.deepEqual(got.find(workerEvent('connected'))?.replicate, { events: 10 });
  const done = got.find(workerEvent('done'));
  assert.equal(done?.why, 'until');

  // Catch-up 11..20, POSITION 20, then live 21..50: one handler call per token.
  const seq = got.filter((e) => e.type === 'rdata' || e.type === 'position');
  const rdata = seq.filter(workerEvent('rdata'));
  assert.deepEqual(
    rdata.map((e) => e.token),
    Array.from({ length: 40 }, (_, i) => 11 + i),
  );
  const positions = seq.filter(workerEvent('position'));
  assert.deepEqual(
    positions.map((e) => [e.stream, e.token]),
    [['events', 20]],
  );
  assert.equal(seq.indexOf(positions[0]!), 10, 'POSITION comes right after the 10 catch-up rows');
  for (const e of rdata) {
    assert.equal(e.stream, 'events');
    assert.equal(e.rows.length, 1);
    assert.equal(e.rows[0]?.[0], `$${e.token}:example.com`);
  }

  // What the master logged as sent on that connection is what the worker saw.
  const recvReplicate = await master.events.waitFor(
    (e) => masterEvent('recv')(e) && e.cmd === 'REPLICATE',
    2_000,
    'REPLICATE from the worker',
  );
  assert.equal(recvReplicate['line'], 'REPLICATE events 10');
  const conn = recvReplicate['conn'];
  assert.match(String(conn), /^harness\.worker-/, 'NAME came first');
  const sent = master.events
    .all()
    .filter(masterEvent('send'))
    .filter((e) => e.conn === conn && e.cmd === 'RDATA')
    .map((e) => {
      const m = /^RDATA events (\d+) (.*)$/.exec(e.line);
      assert.ok(m, `unexpected RDATA line ${e.line}`);
      return { token: Number(m[1]), row: JSON.parse(m[2]!) as unknown };
    });
  assert.deepEqual(
    rdata.map((e) => ({ token: e.token, row: e.rows[0] })),
    sent.slice(0, rdata.length),
  );
});

test('master.py greets a raw socket with SERVER <name> then PING <ms>', { timeout: 10_000 }, async () => {
  const master = cleanupLater(await startSynapseMaster({ name: 'greeting.test', streams: ['events'], maxSeconds: 30 }));
  const socket = net.connect({ host: '127.0.0.1', port: master.port });
  try {
    const received = await new Promise<string>((resolve, reject) => {
      let text = '';
      const timer = setTimeout(() => reject(new Error(`no greeting within 5 s; got ${JSON.stringify(text)}`)), 5_000);
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        text += chunk;
        if (text.split('\n').length > 2) {
          clearTimeout(timer);
          resolve(text);
        }
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    assert.match(received, /^SERVER greeting\.test\nPING \d+\n$/);
    const pingMs = Number(/^PING (\d+)$/m.exec(received)![1]);
    assert.ok(Math.abs(pingMs - Date.now()) < 60_000, `PING carries the server clock in ms: ${pingMs}`);
    const made = await master.events.waitFor(masterEvent('connection_made'), 2_000);
    assert.equal(made.peer, `127.0.0.1:${socket.localPort}`);
  } finally {
    socket.destroy();
  }
});
