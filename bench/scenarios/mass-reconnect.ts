// W8 mass reconnect: the gateway (default settings) holds B rows (100,000
// in the full run); then, while a writer goes on at a steady rate, C
// subscribers (100) connect at once, each from token 0, i.e. B rows behind.
// Each catches up from the log, gets `POSITION` at the switch to live, and
// then takes live rows until the writer is done; every row is checked.
//
// Figures: time until all are live (subscriber process start to the last
// connection's POSITION), the gateway's peak RSS growth meanwhile, and the
// congestion cuts in its log (aim: none; a cut connection fails the run).
//
// data: { subscribers, behindRows, liveRows, rate, liveSeconds, allRowsSeconds, peakGrowthBytes, cuts, deliveredRows }
import { formatBytes, formatRate, formatSeconds } from './format.js';
import { firstFailure, startSubscriber, startWriter, subscriberResult, usageStart, waitForHead, writerResult, type SubscriberResult } from './load.js';
import { startServer } from './servers.js';
import { DeliveryError, type ScenarioContext, type ScenarioOutput } from './types.js';

const CUT_MESSAGE = 'slow consumer cut: ERROR Failed to keep up';

export async function runMassReconnect(ctx: ScenarioContext): Promise<ScenarioOutput> {
  const { reconnectSubscribers: count, reconnectBehindRows: behind, reconnectRate: rate, reconnectSeconds: seconds } = ctx.sizes;
  const liveRows = Math.max(1, Math.round(rate * seconds));
  const total = behind + liveRows;
  const server = await startServer('gateway', ctx.workDir);
  try {
    const store = ctx.progress.phase(`W8 storing ${behind.toLocaleString('en-US')} rows`, behind);
    await writerResult(startWriter(server, { rows: behind, phase: store }));
    await waitForHead(server.port, behind);
    store.end('stored');

    const phase = ctx.progress.phase(
      `W8 ${count} subscribers reconnect ${behind.toLocaleString('en-US')} rows behind while ${formatRate(rate)} rows/s are written`,
      total * count,
    );
    const usage = usageStart(server.pid);
    const writer = startWriter(server, { rows: liveRows, extra: ['--rate', String(rate), '--start-token', String(behind)] });
    const sub = startSubscriber(ctx, server, { count, expect: total, extra: ['--from', '0'], phase, timeoutS: 600 });
    let result: SubscriberResult;
    try {
      result = await firstFailure(subscriberResult(sub), writer);
    } catch (err) {
      phase.end('FAILED');
      if (writer.alive()) await writer.stop(1000);
      if (sub.child.alive()) await sub.child.stop(1000);
      const cuts = server.logLines().filter((l) => l.msg === CUT_MESSAGE).length;
      if (cuts > 0 && err instanceof DeliveryError) {
        throw new DeliveryError(`${err.message} (the gateway logged ${cuts} congestion cut(s): aim is none)`);
      }
      throw err;
    }
    const used = usage();
    await writerResult(writer);
    const cuts = server.logLines().filter((l) => l.msg === CUT_MESSAGE).length;
    const liveSeconds = result.allReadyAt === null ? null : (result.allReadyAt - result.startedAt) / 1000;
    const allRowsSeconds = result.lastRowAt === null ? null : (result.lastRowAt - result.startedAt) / 1000;
    phase.end(`all live after ${formatSeconds(liveSeconds)}, peak RSS growth ${formatBytes(used.peakGrowthBytes)}, ${cuts} cut(s)`);

    return {
      settings: { subscribers: count, behindRows: behind, liveRows, rate, gatewayFlags: 'defaults' },
      summary: [
        {
          scenario: 'W8',
          case: `${count} × ${formatRate(behind)} rows behind`,
          figure: 'time until all are live',
          value: liveSeconds,
          display: formatSeconds(liveSeconds),
        },
        {
          scenario: 'W8',
          case: '',
          figure: 'gateway peak RSS growth',
          value: used.peakGrowthBytes,
          display: formatBytes(used.peakGrowthBytes),
        },
        {
          scenario: 'W8',
          case: '',
          figure: 'congestion cuts',
          value: cuts,
          display: String(cuts),
          aim: 'none',
          met: cuts === 0,
        },
      ],
      skipped: [],
      notes: [
        'No peer keeps a log to catch up from, so W8 has no baseline; "live" is the POSITION the gateway sends when a catch-up reaches the head.',
        `The catch-up moves ${formatRate(count * behind)} rows while the writer adds ${formatRate(rate * count)} rows/s of live fan-out.`,
      ],
      data: {
        subscribers: count,
        behindRows: behind,
        liveRows,
        rate,
        liveSeconds,
        allRowsSeconds,
        peakRssBytes: used.peakRssBytes,
        peakGrowthBytes: used.peakGrowthBytes,
        gatewayCpuSeconds: used.cpuSeconds,
        cuts,
        deliveredRows: result.deliveredRows,
        rowsPerSec: result.rowsPerSec,
      },
    };
  } finally {
    await server.stop();
  }
}
