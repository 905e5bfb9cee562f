/** M1: how fast does the scanner find lines, against `toString().split('\n')`? */
import { LineScanner } from '../../src/core/line-scanner.js';
import { chunksOf, rdataLines } from './fixtures.js';
import { runSuite, type BenchOptions, type BenchResult } from '../suite.js';

export async function benchLineScanner(opts: BenchOptions): Promise<BenchResult> {
  const { data, lines } = rdataLines(opts.quick ? 10e6 : 100e6);
  const chunks = chunksOf(data);
  let count = 0;
  const scanner = new LineScanner({
    onLine: () => {
      count++;
    },
    onLineError: (err) => {
      throw err;
    },
  });
  const rows = await runSuite(opts, data.length, lines, [
    {
      name: 'toString().split (baseline)',
      baseline: true,
      fn: () => {
        const parts = data.toString('utf8').split('\n');
        count = 0;
        for (const p of parts) if (p.length > 0) count++;
        if (count !== lines) throw new Error(`baseline saw ${count} lines, expected ${lines}`);
      },
    },
    {
      name: 'LineScanner, 64 KiB chunks',
      fn: () => {
        count = 0;
        for (const c of chunks) scanner.push(c);
        if (count !== lines) throw new Error(`scanner saw ${count} lines, expected ${lines}`);
      },
    },
  ]);
  return { id: 'M1', title: `line scanner over ${(data.length / 1e6).toFixed(0)} MB of ~200-byte RDATA lines`, rows };
}
