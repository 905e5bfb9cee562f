// W6 WebSocket fan-out: W1 against the gateway with the subscribers on its
// WebSocket bridge (ws://…/replication on the --http listener, text mode,
// the `ws` package in the subscriber process) instead of TCP, each S run
// over TCP and over WebSocket in turn (interleaved, median of the runs).
// Same rows, same writer (TCP), same raised queue limits as W1.
//
// MessagePack mode is not measured yet: the bench subscriber reads text.
//
// data.cells: [{ transport: 'tcp' | 'ws', subscribers, rows, runs, rowsPerSec, mbPerSec, cpuSecondsPer1M, readerBusy }]
import { gatewayFanOutSettings } from './fan-out.js';
import { formatRate, median, ratio, round } from './format.js';
import { runWriterToSubscribers } from './load.js';
import { startServer, type RunningServer } from './servers.js';
import type { ScenarioContext, ScenarioOutput, SummaryRow } from './types.js';

type Transport = 'tcp' | 'ws';

interface Run {
  transport: Transport;
  subscribers: number;
  rowsPerSec: number;
  mbPerSec: number;
  cpuSecondsPer1M: number;
  readerBusy: number | null;
}

const WS_AIM = 0.7;

export async function runWebSocket(ctx: ScenarioContext): Promise<ScenarioOutput> {
  const { fanOutRows: rows, fanOutRepeat: repeat } = ctx.sizes;
  // S = 1 says little about fan-out; the larger counts of W1 are the question.
  const counts = ctx.sizes.fanOutSubscribers.filter((s) => s > 1);
  if (counts.length === 0) counts.push(...ctx.sizes.fanOutSubscribers);
  const settings = { ...gatewayFanOutSettings(rows), http: true };
  const runs: Run[] = [];
  for (let pass = 1; pass <= repeat; pass++) {
    for (const s of counts) {
      for (const transport of ['tcp', 'ws'] as Transport[]) {
        const phase = ctx.progress.phase(`W6 gateway over ${transport === 'ws' ? 'WebSocket' : 'TCP'} S=${s} round ${pass}/${repeat}`, rows * s);
        const server = await startServer('gateway', ctx.workDir, settings);
        try {
          const subscribeTo: RunningServer | undefined =
            transport === 'ws' ? { ...server, port: server.httpPort!, subscriberArgs: ['--protocol', 'ws'] } : undefined;
          const r = await runWriterToSubscribers(ctx, server, { subscribers: s, rows, phase, ...(subscribeTo ? { subscribeTo } : {}) });
          const seconds = r.subscriber.seconds;
          runs.push({
            transport,
            subscribers: s,
            rowsPerSec: r.subscriber.rowsPerSec ?? 0,
            mbPerSec: r.subscriber.mbPerSec ?? 0,
            cpuSecondsPer1M: round((r.usage.cpuSeconds / r.subscriber.deliveredRows) * 1e6, 3),
            readerBusy: seconds > 0 ? round(r.subscriber.cpuSeconds / seconds, 2) : null,
          });
          phase.end(`${formatRate(r.subscriber.rowsPerSec)} rows/s delivered, every row checked`);
        } catch (err) {
          phase.end('FAILED');
          throw err;
        } finally {
          await server.stop();
        }
      }
    }
  }
  const cells = counts.flatMap((s) =>
    (['tcp', 'ws'] as Transport[]).map((transport) => {
      const mine = runs.filter((r) => r.transport === transport && r.subscribers === s);
      return {
        transport,
        subscribers: s,
        rows,
        runs: mine.length,
        rowsPerSec: median(mine.map((r) => r.rowsPerSec)),
        mbPerSec: median(mine.map((r) => r.mbPerSec)),
        cpuSecondsPer1M: median(mine.map((r) => r.cpuSecondsPer1M)),
        readerBusy: median(mine.flatMap((r) => (r.readerBusy === null ? [] : [r.readerBusy]))),
      };
    }),
  );
  const summary: SummaryRow[] = counts.map((s) => {
    const tcp = cells.find((c) => c.transport === 'tcp' && c.subscribers === s)!;
    const ws = cells.find((c) => c.transport === 'ws' && c.subscribers === s)!;
    const r = ratio(ws.rowsPerSec, tcp.rowsPerSec);
    return {
      scenario: 'W6',
      case: `S=${s}, text`,
      figure: 'WebSocket delivered rows/s',
      value: ws.rowsPerSec,
      display: formatRate(ws.rowsPerSec),
      baseline: { name: 'gateway over TCP', value: tcp.rowsPerSec, display: formatRate(tcp.rowsPerSec) },
      ratio: r,
      ratioMeaning: 'WebSocket / TCP',
      aim: `≥ ${WS_AIM.toFixed(2)}×`,
      met: r === null ? null : r >= WS_AIM,
    };
  });
  return {
    settings: { rows, subscribers: counts, repeat, mode: 'text', gatewayFlags: `${gatewayFanOutSettings(rows).maxQueueCommands} commands / ${gatewayFanOutSettings(rows).maxQueueBytes} bytes queue limits, --http 127.0.0.1:0` },
    summary,
    skipped: [],
    notes: [
      'The WebSocket subscribers use the `ws` package (text messages, no compression) in the same one subscriber process; its frame parsing is part of the reader\'s cost, so a saturated reader lowers the WebSocket figure as much as the server does.',
      'MessagePack mode (subprotocol replication.msgpack) is not measured yet.',
    ],
    data: { cells, runs },
  };
}
