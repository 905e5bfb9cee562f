/** M3: ring queue push/shift and drain to one vectored write, against a plain array. */
import { RingQueue } from '../../src/core/ring-queue.js';
import { runSuite, type BenchOptions, type BenchResult } from '../suite.js';

export async function benchRingQueue(opts: BenchOptions): Promise<BenchResult> {
  const ops = opts.quick ? 100_000 : 1_000_000;
  const line = Buffer.alloc(200, 0x61);
  const q = new RingQueue(ops, ops * 200);
  const rows = await runSuite(opts, ops * 200, ops, [
    {
      name: 'Array push/shift (baseline)',
      baseline: true,
      fn: () => {
        const a: Buffer[] = [];
        for (let i = 0; i < ops; i++) {
          a.push(line);
          if (i % 4 === 3) for (let j = 0; j < 4; j++) a.shift();
        }
      },
    },
    {
      name: 'RingQueue push/shift',
      fn: () => {
        for (let i = 0; i < ops; i++) {
          q.push(line);
          if (i % 4 === 3) for (let j = 0; j < 4; j++) q.shift();
        }
      },
    },
    {
      name: 'RingQueue push + takeAll every 64',
      fn: () => {
        for (let i = 0; i < ops; i++) {
          q.push(line);
          if (i % 64 === 63) q.takeAll();
        }
        q.takeAll();
      },
    },
  ]);
  return { id: 'M3', title: 'ring queue (200-byte entries)', rows };
}
