// W5 slow consumer: S subscribers (10 in the full run), one of which stops
// reading as soon as it is subscribed, against the gateway with its default
// congestion limits (10,000 commands / 64 MiB queued per subscriber, a 10 s
// stall limit). The writer sends at a steady rate the others can take, so
// that what changes between the two runs is only the stalled reader:
//
//   without: S-1 subscribers, all reading
//   with:    the same S-1 plus one that stops reading (resumes past the
//            stall limit, to read its ERROR and EOF)
//
// Past its queue limits the stopped one reads from the log (nothing more is
// queued for it), so only the stall limit cuts it. Figures: when it is cut
// and at which limit (the gateway's `slow consumer cut` log line), the
// gateway's peak RSS growth in both runs (bounded: at most the byte limit
// more), and the others' delivered rows/s and p99 latency with it against
// without it.
//
// data: { without, with: { rowsPerSec, p99, peakGrowthBytes, ... }, cut: { limit, afterMs, queuedCommands, queuedBytes, lastTokenSent } | null }
import { formatBytes, formatMs, formatRate, ratio } from './format.js';
import { runWriterToSubscribers, type FanOutRun } from './load.js';
import { onFreshServer } from './servers.js';
import type { ScenarioContext, ScenarioOutput, SummaryRow } from './types.js';

const DEFAULT_MAX_QUEUE_BYTES = 64 * 1024 * 1024;
const DEFAULT_MAX_STALL_MS = 10_000;
const CUT_MESSAGE = 'slow consumer cut: ERROR Failed to keep up';

interface SideFigures {
  fastSubscribers: number;
  rowsPerSec: number | null;
  perSubscriberRowsPerSec: number | null;
  p50: number | null;
  p99: number | null;
  peakGrowthBytes: number;
  cpuSeconds: number;
}

export interface CutFigures {
  limit: string;
  /** ms from the writer's first row (the slow one had stopped reading before it) to the cut. */
  afterMs: number | null;
  queuedCommands: number | null;
  queuedBytes: number | null;
  lastTokenSent: number | null;
  /** What the slow subscriber read: its rows, and the ERROR line. */
  rowsRead: number;
  errorLine: string | null;
}

function side(run: FanOutRun, fast: number): SideFigures {
  return {
    fastSubscribers: fast,
    rowsPerSec: run.subscriber.rowsPerSec,
    perSubscriberRowsPerSec: run.subscriber.rowsPerSec === null ? null : Math.round(run.subscriber.rowsPerSec / fast),
    p50: run.subscriber.latencyMs?.p50 ?? null,
    p99: run.subscriber.latencyMs?.p99 ?? null,
    peakGrowthBytes: run.usage.peakGrowthBytes,
    cpuSeconds: Math.round(run.usage.cpuSeconds * 1000) / 1000,
  };
}

export async function runSlowConsumer(ctx: ScenarioContext): Promise<ScenarioOutput> {
  const { slowSubscribers: s, slowRows: rows, slowRate: rate } = ctx.sizes;
  const fast = s - 1;
  const writerSeconds = rows / rate;
  // The stall limit counts from when its socket filled (at the latest, the writer's end): paused past both, it is cut while not reading.
  const pauseMs = Math.round(writerSeconds * 1000) + DEFAULT_MAX_STALL_MS + ctx.sizes.slowPauseMarginMs;
  const writerExtra = ['--rate', String(rate)];

  const without = await (async () => {
    const phase = ctx.progress.phase(`W5 without a slow one: S=${fast} at ${formatRate(rate)} rows/s`, rows * fast);
    return onFreshServer('gateway', ctx.workDir, {}, phase, async (server) => {
      const run = await runWriterToSubscribers(ctx, server, { subscribers: fast, rows, phase, subscriberExtra: ['--latency'], writerExtra });
      phase.end(`${formatRate(run.subscriber.rowsPerSec)} rows/s`);
      return side(run, fast);
    });
  })();

  let cut: CutFigures | null = null;
  const withSlow = await (async () => {
    const phase = ctx.progress.phase(`W5 with one that stops reading: S=${s} (1 slow) at ${formatRate(rate)} rows/s`, rows * fast);
    return onFreshServer('gateway', ctx.workDir, {}, phase, async (server) => {
      const run = await runWriterToSubscribers(ctx, server, {
        subscribers: s,
        rows,
        phase,
        subscriberExtra: ['--latency', '--slow', '1', '--pause-ms', String(pauseMs)],
        writerExtra,
      });
      const slow = run.subscriber.slow[0];
      const logged = server.logLines().find((l) => l.msg === CUT_MESSAGE);
      if (logged !== undefined || slow?.cut) {
        const num = (v: unknown) => (typeof v === 'number' ? v : null);
        const at = num(logged?.time);
        cut = {
          limit: typeof logged?.limit === 'string' ? logged.limit : 'unknown',
          afterMs: at === null ? null : Math.round(at - run.writer.firstRowAt),
          queuedCommands: num(logged?.queuedCommands),
          queuedBytes: num(logged?.queuedBytes),
          lastTokenSent: num(logged?.lastTokenSent),
          rowsRead: slow?.rows ?? 0,
          errorLine: slow?.error ?? null,
        };
      }
      const c = cut as CutFigures | null;
      phase.end(
        `${formatRate(run.subscriber.rowsPerSec)} rows/s to the others; ` +
          (c === null ? 'the slow one was NOT cut' : `slow one cut (limit ${c.limit}) ${c.afterMs} ms after the first row`),
      );
      return side(run, fast);
    });
  })();

  const c = cut as CutFigures | null;
  const throughputRatio = ratio(withSlow.rowsPerSec, without.rowsPerSec);
  const rssBound = without.peakGrowthBytes + DEFAULT_MAX_QUEUE_BYTES;
  const summary: SummaryRow[] = [
    {
      scenario: 'W5',
      case: `S=${s}, 1 stops reading`,
      figure: 'slow one cut by the stall limit',
      value: c?.afterMs ?? null,
      display:
        c === null
          ? 'not cut'
          : `after ${c.afterMs} ms: ${c.queuedCommands?.toLocaleString('en-US') ?? '?'} commands queued (limit: ${c.limit})`,
      aim: 'cut by the stall limit',
      met: c !== null && c.limit === 'stall',
    },
    {
      scenario: 'W5',
      case: '',
      figure: "others' delivered rows/s",
      value: withSlow.rowsPerSec,
      display: formatRate(withSlow.rowsPerSec),
      baseline: { name: 'same run without it', value: without.rowsPerSec, display: formatRate(without.rowsPerSec) },
      ratio: throughputRatio,
      ratioMeaning: 'with / without',
      aim: '≥ 0.90×',
      met: throughputRatio === null ? null : throughputRatio >= 0.9,
    },
    {
      scenario: 'W5',
      case: '',
      figure: "others' latency p99",
      value: withSlow.p99,
      display: formatMs(withSlow.p99),
      baseline: { name: 'same run without it', value: without.p99, display: formatMs(without.p99) },
      ratio: ratio(without.p99, withSlow.p99),
      ratioMeaning: 'without / with (1: unchanged)',
    },
    {
      scenario: 'W5',
      case: '',
      figure: 'gateway peak RSS growth',
      value: withSlow.peakGrowthBytes,
      display: formatBytes(withSlow.peakGrowthBytes),
      baseline: { name: 'same run without it', value: without.peakGrowthBytes, display: formatBytes(without.peakGrowthBytes) },
      ratio: ratio(without.peakGrowthBytes, withSlow.peakGrowthBytes),
      ratioMeaning: 'without / with',
      aim: '≤ without + 64 MiB (the byte limit)',
      met: withSlow.peakGrowthBytes <= rssBound,
    },
  ];
  return {
    settings: { subscribers: s, slow: 1, rows, rate, pauseMs, gatewayFlags: 'defaults (--max-queue-commands 10000 --max-queue-bytes 64MiB --max-stall-ms 10000)' },
    summary,
    skipped: [],
    notes: [
      `The writer sends ${formatRate(rate)} rows/s, which the others take with room to spare, so the two runs differ only by the stalled reader.`,
      'The slow one stops reading once subscribed; rows first fill the kernel socket buffers, then the gateway\'s queue for it, then it reads from the log (nothing more is queued) until the stall limit (10 s without write progress) cuts it. Cut time is from the gateway\'s log line, measured from the writer\'s first row.',
    ],
    data: { without, with: withSlow, cut: c },
  };
}
