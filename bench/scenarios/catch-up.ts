// W3 catch-up: a writer stores N rows (1,000,000 in the full run) in a
// gateway with no subscriber, then one subscriber asks for them all from
// token 0 (`REPLICATE events 0`) and checks every row. Figures: catch-up
// rows/s (first row read to last), and the gateway's peak RSS growth during
// the catch-up (VmHWM reset when the subscriber connects, minus the RSS
// then, which already holds the stored log).
//
// No peer keeps a log to catch up from (core pub/sub), so the figures are
// set against the aims of BENCH.md.
//
// data: { rows, storeSeconds, storeRowsPerSec, rssWithLogBytes, rowsPerSec, mbPerSec, seconds, peakRssBytes, peakGrowthBytes }
import { formatBytes, formatRate, ratio } from './format.js';
import { catchUpFromZero, catchUpRetention, startWriter, waitForHead, writerResult } from './load.js';
import { startServer } from './servers.js';
import type { ScenarioContext, ScenarioOutput } from './types.js';

const RATE_AIM = 1_000_000;
const RSS_GROWTH_AIM_BYTES = 64 * 1024 * 1024;

export async function runCatchUp(ctx: ScenarioContext): Promise<ScenarioOutput> {
  const rows = ctx.sizes.catchUpRows;
  const settings = catchUpRetention(rows);
  const server = await startServer('gateway', ctx.workDir, settings);
  try {
    const store = ctx.progress.phase(`W3 storing ${rows.toLocaleString('en-US')} rows`, rows);
    const writer = await writerResult(startWriter(server, { rows, phase: store }));
    await waitForHead(server.port, rows);
    store.end(`stored at ${formatRate(writer.rowsPerSec)} rows/s`);

    const { result, usage: used } = await catchUpFromZero(ctx, server, rows, 'W3 catch-up from token 0, one subscriber');

    const rateRatio = ratio(result.rowsPerSec, RATE_AIM);
    const rssRatio = ratio(RSS_GROWTH_AIM_BYTES, used.peakGrowthBytes);
    return {
      settings: { rows, gatewayFlags: `--retention-rows ${settings.retentionRows} --retention-bytes ${settings.retentionBytes}` },
      summary: [
        {
          scenario: 'W3',
          case: `${formatRate(rows)} rows from token 0`,
          figure: 'catch-up rows/s',
          value: result.rowsPerSec,
          display: formatRate(result.rowsPerSec),
          baseline: { name: 'aim (BENCH.md)', value: RATE_AIM, display: formatRate(RATE_AIM) },
          ratio: rateRatio,
          ratioMeaning: 'gateway / aim',
          aim: '≥ 1 M rows/s',
          met: rateRatio === null ? null : rateRatio >= 1,
        },
        {
          scenario: 'W3',
          case: '',
          figure: 'gateway peak RSS growth during catch-up',
          value: used.peakGrowthBytes,
          display: formatBytes(used.peakGrowthBytes),
          baseline: { name: 'aim (BENCH.md)', value: RSS_GROWTH_AIM_BYTES, display: formatBytes(RSS_GROWTH_AIM_BYTES) },
          ratio: rssRatio,
          ratioMeaning: 'aim / gateway (above 1: under the aim)',
          aim: '< 64 MiB',
          met: used.peakGrowthBytes < RSS_GROWTH_AIM_BYTES,
        },
      ],
      skipped: [],
      notes: [
        'No peer keeps a log to catch up from (nats core and redis pub/sub forget delivered messages), so W3 is set against the aims.',
        `The RSS before the catch-up (${formatBytes(used.rssBeforeBytes)}) already holds the stored log; the growth is what serving the catch-up adds.`,
        ...(used.peakReset ? [] : ['VmHWM could not be reset (no write access to /proc/<pid>/clear_refs): the peak covers the gateway\'s whole life.']),
      ],
      data: {
        rows,
        storeSeconds: writer.seconds,
        storeRowsPerSec: writer.rowsPerSec,
        rssWithLogBytes: used.rssBeforeBytes,
        rowsPerSec: result.rowsPerSec,
        mbPerSec: result.mbPerSec,
        seconds: result.seconds,
        peakRssBytes: used.peakRssBytes,
        peakGrowthBytes: used.peakGrowthBytes,
        peakReset: used.peakReset,
        gatewayCpuSeconds: used.cpuSeconds,
      },
    };
  } finally {
    await server.stop();
  }
}
