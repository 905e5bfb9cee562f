/** M5: how fast is a writer's row JSON checked (JsonValidator), against JSON.parse of the same rows and the byte checker alone? */
import { RowRoute } from '../../src/core/dialect.js';
import { v1Text } from '../../src/core/dialects/v1-text.js';
import { JsonByteChecker, JsonValidator } from '../../src/core/json-validator.js';
import { rdataLines } from './fixtures.js';
import { runSuite, type BenchOptions, type BenchResult } from '../suite.js';

export async function benchJsonValidator(opts: BenchOptions): Promise<BenchResult> {
  const { data, lines } = rdataLines(opts.quick ? 10e6 : 100e6);
  // Where each row's JSON lies, found once as the writer's path finds it, so both cases time only the JSON.
  // Int32Array: offsets stay small integers, as the scanner hands them over (doubles slow the loop).
  const rowStarts = new Int32Array(lines);
  const rowEnds = new Int32Array(lines);
  const route = new RowRoute();
  let rowBytes = 0;
  for (let i = 0, start = 0; i < lines; i++) {
    const end = data.indexOf(0x0a, start);
    v1Text.routeRow(data, start, end, route);
    rowStarts[i] = route.rowStart;
    rowEnds[i] = end;
    rowBytes += end - route.rowStart;
    start = end + 1;
  }
  const validator = new JsonValidator();
  const checker = new JsonByteChecker();
  const rows = await runSuite(opts, rowBytes, lines, [
    {
      name: 'JSON.parse of each row (baseline)',
      baseline: true,
      fn: () => {
        for (let i = 0; i < lines; i++) JSON.parse(data.toString('utf8', rowStarts[i], rowEnds[i]));
      },
    },
    {
      // The bytes are copied into the scanner's memory 64 KiB at a time, as a writer's chunks would be.
      name: 'JsonValidator.valid of each row (WebAssembly scanner)',
      fn: () => {
        validator.forget();
        for (let i = 0; i < lines; i++) {
          if (!validator.valid(data, rowStarts[i]!, rowEnds[i]!)) throw new Error(`row ${i} refused: ${validator.error}`);
        }
      },
    },
    {
      name: 'JsonByteChecker.valid of each row (the byte checker alone, in JavaScript)',
      fn: () => {
        for (let i = 0; i < lines; i++) {
          if (!checker.valid(data, rowStarts[i]!, rowEnds[i]!)) throw new Error(`row ${i} refused: ${checker.error}`);
        }
      },
    },
  ]);
  return {
    id: 'M5',
    title: `writer-row JSON validation: ${(rowBytes / 1e6).toFixed(0)} MB of row JSON in ${(data.length / 1e6).toFixed(0)} MB of ~200-byte RDATA lines`,
    rows,
  };
}
