// A fresh relay against Synapse's own 2017 master (../shared/synapse-peer)
// whose events stream has more history than Synapse lets a worker catch up
// (10,000 rows). The relay's catch-up of events from 0 is refused ("fallen
// behined"); it follows events from NOW instead, restarts its log at the
// master's token, and serves live rows with the master's tokens, while
// caches, short enough, still comes with its history. A downstream
// REPLICATE from before the relay's start gets the too-old ERROR.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { masterEvent, requirePythonPeer, startSynapseMaster, type SynapseMaster } from '../support/synapse-peer.js';
import { LineClient, httpGet, killAllGateways, parseMetrics, startGateway, type GatewayProcess } from './support/gateway-process.js';

const PREFILL = { events: 12_000, caches: 5 };
const LIVE_TOKENS = 40;

let master: SynapseMaster;
let gw: GatewayProcess;

before(async () => {
  requirePythonPeer();
  master = await startSynapseMaster({
    streams: ['events', 'caches'],
    prefill: PREFILL,
    rows: LIVE_TOKENS,
    rate: 40,
    // Live rows start once the relay follows events (from NOW), so its start token is the prefill.
    waitSubscribers: 1,
  });
  gw = await startGateway(['--upstream', `127.0.0.1:${master.port}`, '--upstream-name', 'master.test', '--streams', 'events,caches'], {
    timeoutMs: 10_000,
  });
});

after(async () => {
  killAllGateways();
  await master?.stop();
});

describe('a fresh relay in front of a Synapse master with more than 10,000 rows of history', () => {
  it('follows the refused stream from NOW and serves live rows with the master\'s tokens', async () => {
    // The master refused the catch-up from 0, and then heard REPLICATE events NOW.
    const refusal = master.events.all().find((e) => masterEvent('send')(e) && String(e.line).startsWith('ERROR'));
    assert.equal(refusal?.line, "ERROR failed to handle replicate: Exception('stream events has fallen behined')");
    const replicates = master.events
      .all()
      .filter((e) => masterEvent('recv')(e) && e.cmd === 'REPLICATE')
      .map((e) => String(e.line));
    assert.ok(replicates.includes('REPLICATE events 0'), replicates.join(', '));
    assert.ok(replicates.includes('REPLICATE events NOW'), replicates.join(', '));
    const restart = await gw.logs.waitFor((e) => e['msg'] === 'stream followed from NOW: the relay serves it from this token on', 1_000);
    assert.deepEqual([restart['stream'], restart['token']], ['events', PREFILL.events]);

    const sub = await LineClient.connect(gw.tcp);
    sub.send('NAME fresh-relay-subscriber', `REPLICATE events ${PREFILL.events}`, 'REPLICATE caches 0');
    assert.equal(await sub.waitFor((l) => l.startsWith('SERVER')), 'SERVER master.test');
    const last = PREFILL.events + LIVE_TOKENS;
    await sub.waitFor((l) => l.startsWith(`RDATA events ${last} `), 5_000);
    const events = sub.lines.filter((l) => l.startsWith('RDATA events '));
    assert.deepEqual(
      events.map((l) => Number(l.split(' ')[2])),
      Array.from({ length: LIVE_TOKENS }, (_, i) => PREFILL.events + i + 1),
    );
    for (const l of events) {
      const t = l.split(' ')[2];
      assert.ok(l.startsWith(`RDATA events ${t} ["$${t}:example.com",`), l);
    }
    // caches was short enough: its history came through the relay.
    const caches = sub.lines.filter((l) => l.startsWith('RDATA caches '));
    assert.deepEqual(caches.slice(0, PREFILL.caches).map((l) => Number(l.split(' ')[2])), [1, 2, 3, 4, 5]);
    assert.equal(sub.lines.filter((l) => l.startsWith('ERROR')).length, 0);
    sub.close();

    const m = parseMetrics((await httpGet(gw.http!, '/metrics')).body);
    assert.equal(m.get('replication_gateway_relay_now_starts_total'), 1);
    assert.equal(m.get('replication_gateway_relay_upstream_connected'), 1);
  });

  it('refuses a downstream REPLICATE from before the relay\'s start token with the too-old ERROR', async () => {
    for (const token of [0, PREFILL.events - 1]) {
      const sub = await LineClient.connect(gw.tcp);
      sub.send(`REPLICATE events ${token}`);
      const error = await sub.waitFor((l) => l.startsWith('ERROR'));
      assert.match(
        error,
        new RegExp(`^ERROR token ${token} is older than the oldest retained token ${PREFILL.events} \\(stream=events oldest=${PREFILL.events} head=\\d+\\)$`),
      );
      await sub.closed;
      assert.equal(sub.lines.filter((l) => l.startsWith('RDATA')).length, 0, 'no rows from before the start: no silent gap');
    }
  });
});
