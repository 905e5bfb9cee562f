// The chaos run (chaos-run.ts) in CI: 200,000 rows under gateway SIGKILLs,
// connection cuts, writer re-runs and congestion cuts. One run takes one of
// three fixed seeds, the next each UTC day (one run is 1 to 2 minutes here;
// three would pass the 3 minutes CI allows), so the list is covered in turn
// and any failure replays exactly: RG_CHAOS_SEED=<seed> runs that seed, as
// does `npm run chaos -- --seed <seed>`.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runChaos } from './chaos-run.js';

const CI_SEEDS = [1, 20261202, 987654321];
const ROWS = 200_000;

const DAY_MS = 86_400_000;
/** RG_CHAOS_SEED, or the list's seed for today. */
const seed = process.env['RG_CHAOS_SEED'] !== undefined ? Number(process.env['RG_CHAOS_SEED']) : CI_SEEDS[Math.floor(Date.now() / DAY_MS) % CI_SEEDS.length]!;

test(`chaos, seed ${seed}: ${ROWS} rows on three streams to ten subscribers (four over WebSocket) through kills and cuts: each gets every row once, in order`, { timeout: 300_000 }, async (t) => {
  const report = await runChaos({ seed, rows: ROWS });
  t.diagnostic(`seed ${seed}: ${report.rows} rows in ${report.seconds} s, heads ${JSON.stringify(report.heads)}, faults ${JSON.stringify(report.faults)}, ${report.alreadyStored} rows found stored by re-runs`);
  console.log(`chaos seed ${seed}: faults ${JSON.stringify(report.faults)}`);
  assert.ok(report.faults.gatewayKills >= 5, `${report.faults.gatewayKills} gateway kills`);
  assert.ok(report.faults.subscriberCuts > 0 && report.faults.writerCuts > 0, `cuts ${JSON.stringify(report.faults)}`);
  assert.ok(report.faults.writerReruns > 0 && report.alreadyStored > 0, `re-runs ${report.faults.writerReruns}, found stored ${report.alreadyStored}`);
  assert.ok(report.faults.congestionCuts > 0, `${report.faults.subscriberPauses} pauses, none cut for congestion`);
});
