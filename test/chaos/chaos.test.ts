// The chaos run (chaos-run.ts) in CI: 200,000 rows under gateway SIGKILLs,
// connection cuts, writer re-runs, subscribers paused past the queue limits
// (they read from the log) and past the stall limit (they are cut), on each of
// three fixed seeds in turn (about 20 s each on a quiet machine here). Any
// failure replays exactly: RG_CHAOS_SEED=<seed> runs that seed alone, as does
// `npm run chaos -- --seed <seed>`.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runChaos } from './chaos-run.js';

const CI_SEEDS = [1, 20261202, 987654321];
const ROWS = 200_000;

const seeds = process.env['RG_CHAOS_SEED'] !== undefined ? [Number(process.env['RG_CHAOS_SEED'])] : CI_SEEDS;

for (const seed of seeds) test(`chaos, seed ${seed}: ${ROWS} rows on three streams to ten subscribers (four over WebSocket) through kills and cuts: each gets every row once, in order`, { timeout: 300_000 }, async (t) => {
  const report = await runChaos({ seed, rows: ROWS });
  t.diagnostic(`seed ${seed}: ${report.rows} rows in ${report.seconds} s, heads ${JSON.stringify(report.heads)}, faults ${JSON.stringify(report.faults)}, ${report.alreadyStored} rows found stored by re-runs`);
  console.log(`chaos seed ${seed}: faults ${JSON.stringify(report.faults)}`);
  assert.ok(report.faults.gatewayKills >= 5, `${report.faults.gatewayKills} gateway kills`);
  assert.ok(report.faults.subscriberCuts > 0 && report.faults.writerCuts > 0, `cuts ${JSON.stringify(report.faults)}`);
  assert.ok(report.faults.writerReruns > 0 && report.alreadyStored > 0, `re-runs ${report.faults.writerReruns}, found stored ${report.alreadyStored}`);
  assert.ok(report.faults.subscriberPauses > 0, 'no short pause (a fall behind to the log)');
  assert.ok(report.faults.stallCuts > 0, 'no long pause cut by the stall limit');
});
