// Catch-up of 1,000,000 rows over TCP while a TCP writer keeps writing: the
// subscriber checks every row as it arrives (no gap, no duplicate, no
// reorder), and the one POSITION at the switch to live names the last row.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { eventually, greeted, startServer } from '../bindings/support/raw-peer.js';
import { TokenCounter } from '../bindings/support/token-counter.js';

const PREFILL = 1_000_000;
/** Rows the writer goes on writing after the subscriber has switched to live. */
const AFTER_SWITCH = 20_000;

function rowsText(from: number, to: number): string {
  let text = '';
  for (let t = from; t <= to; t++) text += `RDATA events ${t} ["$${t}:hs","!r:hs","m.room.message","",null]\n`;
  return text;
}

/** Writes, waiting for drain when the socket asks. */
async function write(socket: net.Socket, text: string): Promise<void> {
  if (!socket.write(text)) await once(socket, 'drain');
}

test('catch-up of 1,000,000 rows while a writer keeps writing has no gap, duplicate or reorder at the switch to live', { timeout: 60_000 }, async (t) => {
  const f = await startServer({ writerToken: 'w', retentionRows: 4_000_000, pingIntervalMs: 60_000 });
  const writer = await greeted(f, 'w');
  let subscriber: TokenCounter | undefined;
  t.after(async () => {
    subscriber?.socket.destroy();
    await f.close();
  });
  const started = Date.now();
  let token = 0;
  while (token < PREFILL) {
    const to = Math.min(token + 10_000, PREFILL);
    await write(writer.socket, rowsText(token + 1, to));
    token = to;
  }
  await eventually(() => f.server.head('events') === PREFILL, 'the prefill to be stored', 20_000);
  const prefilledAt = Date.now();

  subscriber = await TokenCounter.connect(f.port, 'events', 0);
  subscriber.send('REPLICATE events 0');
  const sub = subscriber;
  // The writer goes on, 1,000 rows a turn, until well after the switch.
  let stopAt = Infinity;
  while (token < stopAt) {
    await write(writer.socket, rowsText(token + 1, token + 1_000));
    token += 1_000;
    if (stopAt === Infinity && sub.positions.length > 0) stopAt = token + AFTER_SWITCH;
    assert.ok(token < 4_000_000, 'the catch-up never reached the head');
    assert.ok(!sub.closed, `the subscriber was closed: ${sub.other}`);
    await new Promise((r) => setImmediate(r));
  }
  await sub.until(() => sub.last === token, 'the last row', 20_000);
  const doneAt = Date.now();

  assert.deepEqual(sub.problems, []);
  assert.deepEqual(sub.other, []);
  assert.equal(sub.rows, token);
  assert.equal(sub.positions.length, 1, 'one POSITION, at the switch');
  const [position, rowsBefore] = sub.positions[0]!;
  assert.equal(rowsBefore, position, 'the POSITION names the last row sent before it');
  assert.ok(position > PREFILL, 'rows written during the catch-up were caught up too');
  assert.ok(token - position >= AFTER_SWITCH, 'and rows written after the switch arrived live');
  assert.equal(f.server.head('events'), token);
  assert.equal(writer.closedBy, null);
  t.diagnostic(
    `prefill ${PREFILL} rows in ${prefilledAt - started} ms; catch-up and live to ${token} in ${doneAt - prefilledAt} ms; switch at ${position}`,
  );
});
