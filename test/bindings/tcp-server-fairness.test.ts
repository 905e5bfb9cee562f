// Fairness over real sockets: one connection flooding the gateway with PINGs
// gets a bounded share of each event-loop turn (READ_BYTES_PER_TURN), so
// another subscriber's rows keep arriving promptly. The latency bound
// asserted is generous (the machine is shared); the figures are printed (aim:
// p99 under 20 ms on a quiet machine). What is asserted strictly is the share.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { READ_BYTES_PER_TURN } from '../../src/bindings/read-turns.js';
import { ReplicationServer } from '../../src/server.js';
import { floodPings, probeLatency, type Latency } from '../../bench/load/fairness-run.js';
import { watchTurns } from '../support/turn-watch.js';

test("a PING flood from one connection is read 64 KiB a turn, and another subscriber's rows keep arriving promptly", { timeout: 30_000 }, async (t) => {
  const server = new ReplicationServer({ writerToken: 'w', streams: ['events'] });
  t.after(() => server.close());
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const ROWS = 300;
  const quiet = await probeLatency(port, ROWS);
  const flood = floodPings(port, 4000);
  // Every turn of this loop, how much the busiest connection was handed since the last.
  const turns = watchTurns(() => Math.max(0, ...server.connections().map((c) => c.bytesIn)));
  await new Promise((r) => setTimeout(r, 300));
  const flooded = await probeLatency(port, ROWS);
  await flood;
  const { maxPerTurn, last } = turns.stop();
  const line = (l: Latency): string => `p50 ${l.p50} ms, p99 ${l.p99} ms, max ${l.max} ms`;
  t.diagnostic(`row delivery without a flood: ${line(quiet)}; beside a PING flood: ${line(flooded)}; the flood read at most ${maxPerTurn} bytes in a turn`);
  assert.equal(quiet.rows, ROWS);
  assert.equal(flooded.rows, ROWS, 'every row arrived');
  assert.ok(last > 4 * READ_BYTES_PER_TURN, `the flood was read (${last} bytes)`);
  // One read per turn, and a turn of this loop can see the end of one and the start of the next
  // (without the budget: as much as the kernel holds, ~190 KiB on loopback here, up to MBs).
  assert.ok(maxPerTurn <= 2 * READ_BYTES_PER_TURN, `at most ${2 * READ_BYTES_PER_TURN} bytes of one connection per turn (read ${maxPerTurn})`);
  // Only a guard against a stall: at a load average of 16-20 on 2 cores, p99 beside the flood measured
  // 50-240 ms with the budget and 40-85 ms without it (scheduling noise dominates); the aim, p99 under
  // 20 ms, is for a quiet machine.
  assert.ok(flooded.p99 < 250, `p99 beside the flood ${flooded.p99} ms`);
});
