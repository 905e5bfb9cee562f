// Limits on what peers may hold, over real sockets: connections per address,
// and the one budget for bytes held in unfinished lines across all connections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hubOf } from '../../src/server.js';
import { eventually, startServer } from './support/raw-peer.js';

test('a connection past --max-connections-per-address gets ERROR and a close; once one closes, the address may connect again', { timeout: 10_000 }, async (t) => {
  const f = await startServer({ maxConnectionsPerAddress: 2 });
  t.after(() => f.close());
  const first = await f.peer();
  const second = await f.peer();
  await first.line('SERVER gw.test');
  await second.line('SERVER gw.test');
  const third = await f.peer();
  await third.line(/^ERROR /);
  assert.equal(third.lines.at(-1), 'ERROR too many connections from 127.0.0.1 (limit 2 per address); try again later');
  await third.closed();
  first.destroy();
  await eventually(() => f.server.connections().length === 1, 'the first connection to be gone');
  const again = await f.peer();
  await again.line('SERVER gw.test');
  again.send('PING 1');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(again.closedBy, null);
  assert.equal(second.closedBy, null);
});

test('past --max-partial-line-bytes the connection holding the most unfinished line is cut first, and the others keep theirs', { timeout: 10_000 }, async (t) => {
  const KiB = 1024;
  const f = await startServer({ maxPartialLineBytes: 100 * KiB });
  t.after(() => f.close());
  const budget = hubOf(f.server).lineBudget;
  const small = await f.peer();
  const large = await f.peer();
  const last = await f.peer();
  small.write(`NAME ${'s'.repeat(30 * KiB - 5)}`);
  large.write(`NAME ${'l'.repeat(50 * KiB - 5)}`);
  await eventually(() => budget.heldBytes === 80 * KiB, 'both unfinished lines to be held');
  last.write(`NAME ${'n'.repeat(40 * KiB - 5)}`);
  await large.closed();
  assert.equal(
    large.lines.at(-1),
    `ERROR unfinished lines of all connections over their budget of ${100 * KiB} bytes: the connections holding the most are closed first, and this one held ${50 * KiB} bytes`,
  );
  await eventually(() => budget.heldBytes === 70 * KiB, 'the cut line to leave the budget');
  // The others finish their lines and go on.
  small.send('', 'REPLICATE events NOW');
  last.send('', 'REPLICATE events NOW');
  await small.line('POSITION events 0');
  await last.line('POSITION events 0');
  assert.equal(budget.heldBytes, 0);
  assert.equal(small.closedBy, null);
  assert.equal(last.closedBy, null);
  const names = f.server.connections().map((c) => c.name?.length);
  assert.deepEqual(names.sort(), [30 * KiB - 5, 40 * KiB - 5]);
});
