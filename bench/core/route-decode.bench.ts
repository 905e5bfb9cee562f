/** M2: scan + route-decode (command, stream, token) per line, against naive string parsing. */
import { LineScanner } from '../../src/core/line-scanner.js';
import { RdataCommand } from '../../src/core/commands.js';
import { parseCommand } from '../../src/core/dialects/v1-text.js';
import { chunksOf, rdataLines } from './fixtures.js';
import { runSuite, type BenchOptions, type BenchResult } from '../suite.js';

export async function benchRouteDecode(opts: BenchOptions): Promise<BenchResult> {
  const { data, lines } = rdataLines(opts.quick ? 10e6 : 100e6);
  const chunks = chunksOf(data);
  let lastToken = 0;
  const scanner = new LineScanner({
    onLine: (buf, start, end) => {
      const cmd = parseCommand(buf, start, end, 'writer') as RdataCommand;
      if (cmd.token !== lastToken + 1) throw new Error(`token ${cmd.token} after ${lastToken}`);
      lastToken = cmd.token;
    },
    onLineError: (err) => {
      throw err;
    },
  });
  const rows = await runSuite(opts, data.length, lines, [
    {
      name: 'toString().split + string parsing (baseline)',
      baseline: true,
      fn: () => {
        lastToken = 0;
        for (const line of data.toString('utf8').split('\n')) {
          if (line.length === 0) continue;
          const [name, , token] = line.split(' ', 3);
          if (name !== 'RDATA') throw new Error('not RDATA');
          const t = parseInt(token!, 10);
          if (t !== lastToken + 1) throw new Error(`token ${t} after ${lastToken}`);
          lastToken = t;
        }
      },
    },
    {
      name: 'LineScanner + parseCommand',
      fn: () => {
        lastToken = 0;
        for (const c of chunks) scanner.push(c);
        if (lastToken !== lines) throw new Error(`decoded ${lastToken} lines, expected ${lines}`);
      },
    },
  ]);
  return { id: 'M2', title: 'scan + route-decode (name, stream, token)', rows };
}
