// Where a process spent its time, from node's .cpuprofile files (e.g. the
// gateway's, with BENCH_GATEWAY_NODE_ARGS='--cpu-prof --cpu-prof-dir=DIR'):
//
//   node dist/bench/profile-top.js [--from URLPART] [--top N] FILE...
//
// Self time per function (summed over the files) as a share of the busy,
// not idle, samples; V8's own categories ("(garbage collector)", "(program)")
// are functions here. --from counts from the first sample in a function
// whose script url contains URLPART (e.g. src/core/), so start-up is left out.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

/** The parts of a .cpuprofile read here (V8's Profiler.Profile). */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

interface SelfTimes {
  /** µs of busy (not idle) samples. */
  busyMicros: number;
  /** µs of self time per `function url:line`, highest first. */
  functions: [string, number][];
}

function selfTimes(profiles: readonly CpuProfile[], from: string | null = null): SelfTimes {
  const self = new Map<string, number>();
  let busyMicros = 0;
  for (const profile of profiles) {
    const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
    let counting = from === null;
    for (let i = 0; i < profile.samples.length; i++) {
      const frame = frames.get(profile.samples[i]!)!;
      if (!counting) {
        if (!frame.url.includes(from!)) continue;
        counting = true;
      }
      if (frame.functionName === '(idle)') continue;
      // A sample stands for the time until the next one (as DevTools counts it).
      const micros = profile.timeDeltas[i + 1] ?? 0;
      busyMicros += micros;
      const key = frame.url === '' ? frame.functionName : `${frame.functionName || '(anonymous)'} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
      self.set(key, (self.get(key) ?? 0) + micros);
    }
  }
  return { busyMicros, functions: [...self].sort((a, b) => b[1] - a[1]) };
}

/** file:///…/dist/src/core/x.js → dist/src/core/x.js (node_modules/… likewise). */
function shortUrl(url: string): string {
  return url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/');
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { from: { type: 'string' }, top: { type: 'string', default: '25' } },
  });
  if (positionals.length === 0) {
    console.error('usage: node dist/bench/profile-top.js [--from URLPART] [--top N] FILE.cpuprofile...');
    process.exit(2);
  }
  const profiles = positionals.map((f) => JSON.parse(readFileSync(f, 'utf8')) as CpuProfile);
  const { busyMicros, functions } = selfTimes(profiles, values.from ?? null);
  console.log(`${(busyMicros / 1e6).toFixed(2)} s busy in ${positionals.length} profile(s)`);
  for (const [name, micros] of functions.slice(0, Number(values.top))) {
    console.log(`${(micros / 1e3).toFixed(0).padStart(8)} ms ${((100 * micros) / busyMicros).toFixed(1).padStart(5)}%  ${name}`);
  }
}

main();
