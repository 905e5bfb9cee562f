// The browser client following a stream per writer instance over a real
// WebSocket (ws in Node) to the scripted gateway of test/support/today-peer.ts:
// rows carry their instance, positions are per pair, a cut loses and doubles nothing.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import { ReplicationClient, type RowsEvent } from '../../src/browser/client.js';
import type { WebSocketConstructor } from '../../src/browser/ws-transport.js';
import { TodayPeer } from '../support/today-peer.js';

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("'*' over WebSocket: every writer's rows with their instance, exactly once across a cut", { timeout: 10_000 }, async (t) => {
  const peer = await TodayPeer.start();
  t.after(() => peer.close());
  peer.append('events', 'event_persister1', 1031, ['["$a"]']);
  peer.append('events', 'event_persister2', 1032, ['["$b1"]', '["$b2"]']);
  const client = new ReplicationClient({
    url: `ws://127.0.0.1:${peer.wsPort}/replication`,
    WebSocket: WebSocket as unknown as WebSocketConstructor,
    instances: [{ stream: 'events', instance: '*', from: 1030 }],
    backoff: { initialMs: 5, maxMs: 20, healthyAfterMs: 0 },
  });
  t.after(() => client.close());
  const rows: Omit<RowsEvent, 'batch'>[] = [];
  const positions: { stream: string; instance: string | null; token: number }[] = [];
  client.on('rows', ({ stream, instance, token, rows: values }) => void rows.push({ stream, instance, token, rows: values }));
  client.on('position', (p) => void positions.push(p));
  client.start();
  await until(() => positions.length === 2, 5000, 'both catch-ups');
  peer.cut();
  peer.append('events', 'event_persister1', 1033, ['["$c"]']);
  peer.append('events', 'event_persister3', 1034, ['["$new writer"]']);
  await until(() => rows.length === 4, 5000, 'the rows written during the cut');
  await new Promise((r) => setTimeout(r, 30));

  // In order per pair; the pairs' catch-ups come one after another.
  const byPair = (r: Omit<RowsEvent, 'batch'>): string => `${r.instance} ${r.token}`;
  assert.deepEqual([...rows].sort((a, b) => (byPair(a) < byPair(b) ? -1 : 1)), [
    { stream: 'events', instance: 'event_persister1', token: 1031, rows: [['$a']] },
    { stream: 'events', instance: 'event_persister1', token: 1033, rows: [['$c']] },
    { stream: 'events', instance: 'event_persister2', token: 1032, rows: [['$b1'], ['$b2']] },
    { stream: 'events', instance: 'event_persister3', token: 1034, rows: [['$new writer']] },
  ]);
  assert.deepEqual(positions.slice(0, 2), [
    { stream: 'events', instance: 'event_persister1', token: 1031 },
    { stream: 'events', instance: 'event_persister2', token: 1032 },
  ]);
  assert.deepEqual(
    peer.received.map((lines) => lines.filter((l) => l.startsWith('REPLICATE'))),
    [['REPLICATE events * 1030'], ['REPLICATE events * 0', 'REPLICATE events event_persister1 1031', 'REPLICATE events event_persister2 1032']],
  );
  assert.deepEqual(client.instancePositions(), { events: { event_persister1: 1033, event_persister2: 1032, event_persister3: 1034 } });
});
