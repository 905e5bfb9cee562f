import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { fetchStreamUpdates } from '../../src/bindings/synapse-http.js';
import { SynapseFollower } from '../../src/core/synapse-follower.js';
import { synapseJson, updateGroups } from '../../src/core/synapse-catch-up.js';
import type { LogEntry } from '../../src/core/stream-log.js';
import { SynapseHistory, memoryPairLogs } from '../../src/gateway/synapse-history.js';
import { fakeEndpoint, REPLICATION_SECRET as SECRET } from '../support/fake-replication-endpoint.js';
import { loadRecording, publishes, todayRecordingsSkip, type HttpEvent } from '../support/synapse-today.js';

const quiet = pino({ level: 'silent' });

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function setUp(base: URL | null, secret = SECRET) {
  const history = new SynapseHistory(
    memoryPairLogs({ retentionRows: 100_000, retentionBytes: 64 * 1024 * 1024 }),
    quiet,
    (instance) => (base === null || instance !== 'typing_writer1' ? null : (stream, from, upto) => fetchStreamUpdates({ base, secret }, stream, from, upto)),
  );
  const entries: LogEntry[] = [];
  history.onPairLog((pair, log) => {
    if (pair.stream === 'typing') log.listen({ stored: (e) => entries.push(e), gap: () => {} });
  });
  const follower = new SynapseFollower(history);
  const send = (...payloads: string[]): void => payloads.forEach((p) => follower.line(Buffer.from(`${p}\n`)));
  return { history, follower, entries, send };
}

describe('gap-fill over the HTTP replication endpoint (recording 07)', { skip: todayRecordingsSkip() }, () => {
  const recording = loadRecording('07_sync_worker_reconnect_gap_fill');
  const exchanges = recording.events.filter((e): e is HttpEvent => e.kind === 'http');
  let endpoint: Awaited<ReturnType<typeof fakeEndpoint>>;
  before(async () => {
    endpoint = await fakeEndpoint(exchanges);
  });
  after(async () => {
    await endpoint.close();
  });

  test('a gap is filled page by page (limited, then the rest), with a fresh txn_id and the secret, before the live rows that came meanwhile', async () => {
    const { history, follower, entries, send } = setUp(endpoint.url);
    send('POSITION typing typing_writer1 1 1');
    follower.connected();
    // The writer answers our REPLICATE: 116; a live row comes while the fill runs.
    send('POSITION typing typing_writer1 116 116', 'RDATA typing typing_writer1 117 ["!late:example.com",[]]');
    await until('the fill', () => history.stats().gapsFilled === 1 && entries.some((e) => e.lastToken === 117));
    const rowTokens = entries.filter((e) => e.lines > 0).map((e) => e.lastToken);
    assert.deepEqual(rowTokens, [...Array.from({ length: 115 }, (_, i) => i + 2), 117]);
    assert.equal(history.stats().gapsOpen, 0);
    const requests = endpoint.seen.splice(0);
    assert.equal(requests.length, 2);
    assert.ok(requests.every((r) => r.authorization === `Bearer ${SECRET}`));
    const txnIds = requests.map((r) => r.path.split('/')[5]!);
    assert.ok(txnIds.every((t) => /^[A-Za-z]{10}$/.test(t)) && new Set(txnIds).size === 2, 'a fresh txn_id per request');
  });

  test("the filled rows are the lines Synapse published live for those tokens, byte for byte", () => {
    const live = new Map(
      publishes(recording)
        .filter((p) => p.payload.startsWith('RDATA typing typing_writer1 '))
        .map((p) => [Number(p.payload.split(' ')[3]), `${p.payload}\n`]),
    );
    const pages = exchanges.filter((e) => e.request.path.includes('/typing/')).flatMap((e) => (e.response.body as { updates: [number, unknown][] }).updates);
    const groups = updateGroups('typing', 'typing_writer1', pages);
    assert.equal(groups.length, 115);
    for (const g of groups) assert.equal(g.bytes.toString('utf8'), live.get(g.token), `token ${g.token}`);
  });

  test('a wrong secret (500) or no endpoint for the instance: the gap is recorded and catch-up from before it is refused', async () => {
    for (const base of [endpoint.url, null]) {
      const { history, follower, send } = setUp(base, 'wrong');
      send('POSITION typing typing_writer1 1 1');
      follower.connected();
      send('POSITION typing typing_writer1 116 116');
      await until('the recorded gap', () => history.stats().gapsOpen === 1);
      const pair = history.pair('typing', 'typing_writer1')!;
      assert.deepEqual(pair.gaps.map((g) => [g.afterToken, g.uptoToken]), [[1, 116]]);
      assert.equal(pair.log!.cursorAfter(1), null, 'catch-up across the gap: too old');
      assert.notEqual(pair.log!.cursorAfter(116), null);
    }
    endpoint.seen.length = 0;
  });
});

describe("Synapse's JSON", () => {
  test('compact and ASCII-only, astral characters as surrogate pairs', () => {
    assert.equal(synapseJson(['caf\u00e9', { a: 1 }, '\u{1F600}']), '["caf\\u00e9",{"a":1},"\\ud83d\\ude00"]');
  });

  test('rows sharing a token are one group, batch rows first', () => {
    const [g] = updateGroups('to_device', 'w', [
      [419, ['@alice:example.com']],
      [419, ['remote.example.net']],
    ]);
    assert.equal(g!.bytes.toString(), 'RDATA to_device w batch ["@alice:example.com"]\nRDATA to_device w 419 ["remote.example.net"]\n');
    assert.equal(g!.lines, 2);
  });
});
