// W6 WebSocket fan-out: W1 against the gateway with the subscribers on its
// WebSocket bridge (ws://…/replication on the --http listener, the `ws`
// package in the subscriber process) instead of TCP, each S run over TCP,
// WebSocket text mode and WebSocket msgpack mode (subprotocol
// replication.msgpack) in turn (interleaved, median of the runs). Same rows,
// same writer (TCP), same raised queue limits as W1.
//
// The text reader scans tokens as the TCP reader does; the msgpack reader
// decodes every frame to values (as a browser client must to use them), so
// its figure carries that decoding. BENCH.md's 70% aim is read as text mode's;
// msgpack's ratio is reported without an aim.
//
// data.cells: [{ transport: 'tcp' | 'ws' | 'ws-msgpack', subscribers, rows, runs, rowsPerSec, mbPerSec, cpuSecondsPer1M, readerBusy }]
// ('ws' is text mode; mbPerSec counts the bytes of each mode's own encoding)
import { gatewayFanOutSettings } from './fan-out.js';
import { formatRate, median, ratio, round } from './format.js';
import { runWriterToSubscribers } from './load.js';
import { onFreshServer, type RunningServer } from './servers.js';
import type { ScenarioContext, ScenarioOutput, SummaryRow } from './types.js';

type Transport = 'tcp' | 'ws' | 'ws-msgpack';

const TRANSPORTS: Transport[] = ['tcp', 'ws', 'ws-msgpack'];
const LABELS: Record<Transport, string> = { tcp: 'TCP', ws: 'WebSocket text', 'ws-msgpack': 'WebSocket msgpack' };

interface Run {
  transport: Transport;
  subscribers: number;
  rowsPerSec: number;
  mbPerSec: number;
  cpuSecondsPer1M: number;
  readerBusy: number | null;
}

const WS_AIM = 0.7;

/** One transport at one S, as stored in the results file (the report reads the same type). */
export interface WebSocketCell {
  /** 'ws' is text mode (the name predates msgpack mode). */
  transport: Transport;
  subscribers: number;
  rows: number;
  runs: number;
  rowsPerSec: number | null;
  mbPerSec: number | null;
  cpuSecondsPer1M: number | null;
  readerBusy: number | null;
}

export async function runWebSocket(ctx: ScenarioContext): Promise<ScenarioOutput> {
  const { fanOutRows: rows, fanOutRepeat: repeat } = ctx.sizes;
  // S = 1 says little about fan-out; the larger counts of W1 are the question.
  const counts = ctx.sizes.fanOutSubscribers.filter((s) => s > 1);
  if (counts.length === 0) counts.push(...ctx.sizes.fanOutSubscribers);
  const settings = { ...gatewayFanOutSettings(rows), http: true };
  const runs: Run[] = [];
  for (let pass = 1; pass <= repeat; pass++) {
    for (const s of counts) {
      for (const transport of TRANSPORTS) {
        const phase = ctx.progress.phase(`W6 gateway over ${LABELS[transport]} S=${s} round ${pass}/${repeat}`, rows * s);
        await onFreshServer('gateway', ctx.workDir, settings, phase, async (server) => {
          const subscribeTo: RunningServer | undefined =
            transport === 'tcp' ? undefined : { ...server, port: server.httpPort!, subscriberArgs: ['--protocol', transport] };
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
        });
      }
    }
  }
  const cells = counts.flatMap((s) =>
    TRANSPORTS.map((transport): WebSocketCell => {
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
  const summary: SummaryRow[] = counts.flatMap((s) => {
    const tcp = cells.find((c) => c.transport === 'tcp' && c.subscribers === s)!;
    const row = (transport: 'ws' | 'ws-msgpack'): SummaryRow => {
      const ws = cells.find((c) => c.transport === transport && c.subscribers === s)!;
      const r = ratio(ws.rowsPerSec, tcp.rowsPerSec);
      const text = transport === 'ws';
      return {
        scenario: 'W6',
        case: `S=${s}, ${text ? 'text' : 'msgpack'}`,
        figure: 'WebSocket delivered rows/s',
        value: ws.rowsPerSec,
        display: formatRate(ws.rowsPerSec),
        baseline: { name: 'gateway over TCP', value: tcp.rowsPerSec, display: formatRate(tcp.rowsPerSec) },
        ratio: r,
        ratioMeaning: 'WebSocket / TCP',
        // BENCH.md's aim is read as text mode's: msgpack's reader decodes every value, TCP's only scans tokens.
        ...(text ? { aim: `≥ ${WS_AIM.toFixed(2)}×`, met: r === null ? null : r >= WS_AIM } : {}),
      };
    };
    return [row('ws'), row('ws-msgpack')];
  });
  return {
    settings: { rows, subscribers: counts, repeat, modes: ['text', 'msgpack'], gatewayFlags: `${gatewayFanOutSettings(rows).maxQueueCommands} commands / ${gatewayFanOutSettings(rows).maxQueueBytes} bytes queue limits, --http 127.0.0.1:0` },
    summary,
    skipped: [],
    notes: [
      'The WebSocket subscribers use the `ws` package (no compression) in the same one subscriber process; its frame parsing is part of the reader\'s cost, so a saturated reader lowers the WebSocket figure as much as the server does.',
      'Text mode reads as the TCP reader does: it scans each line for its token only. MessagePack mode (subprotocol replication.msgpack) decodes every frame to values with msgpackr `unpackMultiple`, as a browser client must to use the rows, then checks the tokens: that decoding is part of the reader\'s cost, so the msgpack figure is bounded by the reader\'s decoding as much as by the gateway\'s transcoding. Its MB/s counts MessagePack bytes.',
      'BENCH.md\'s aim (WebSocket within 70% of TCP) is applied to text mode; msgpack\'s ratio is reported without an aim.',
    ],
    data: { cells, runs },
  };
}
