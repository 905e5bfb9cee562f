// `npm run chaos -- [--rows N] [--seed N]`: the chaos run (chaos-run.ts) by
// hand, long if you like (--rows 5000000), with a progress line every 5 s.
// Prints the seed first, so any run can be replayed; exit 1 on a fault.

import { parseArgs } from 'node:util';
import { runChaos } from './chaos-run.js';

const USAGE = 'usage: npm run chaos -- [--rows N (default 200000)] [--seed N (default: random)] [--kills N]';

function wholeNumber(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) {
    console.error(`ERROR --${name} must be a whole number, not '${value}'\n${USAGE}`);
    process.exit(2);
  }
  return Number(value);
}

const { values } = parseArgs({ options: { rows: { type: 'string' }, seed: { type: 'string' }, kills: { type: 'string' }, help: { type: 'boolean' } } });
if (values.help === true) {
  console.log(USAGE);
  process.exit(0);
}
const rows = wholeNumber('rows', values.rows, 200_000);
const seed = wholeNumber('seed', values.seed, Math.floor(Math.random() * 2 ** 31));
const kills = values.kills === undefined ? undefined : wholeNumber('kills', values.kills, 0);
console.log(`chaos: ${rows} rows, seed ${seed} (npm run chaos -- --rows ${rows} --seed ${seed} replays it)`);
try {
  const report = await runChaos({
    seed,
    rows,
    ...(kills !== undefined ? { gatewayKills: kills } : {}),
    progress: (line) => console.log(line),
    settleTimeoutMs: Math.max(120_000, rows / 10),
  });
  console.log(`chaos: passed in ${report.seconds} s: ${report.rows} rows, heads ${JSON.stringify(report.heads)}, faults ${JSON.stringify(report.faults)}, ${report.alreadyStored} rows found stored by writer re-runs`);
} catch (err) {
  console.error(`chaos: FAILED (seed ${seed}): ${(err as Error).message}`);
  process.exit(1);
}
