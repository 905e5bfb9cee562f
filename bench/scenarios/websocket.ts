// W6 WebSocket fan-out: W1 against the gateway with the subscribers on its
// WebSocket bridge (ws://…/replication on the --http listener, the `ws`
// package in the subscriber process) instead of TCP, each S run over TCP,
// then WebSocket text mode and WebSocket msgpack mode (subprotocol
// replication.msgpack) on each --ws-engine that runs on this Node, in turn
// (interleaved, median of the runs). Same rows, same writer (TCP), the same
// default queue limits as W1. An engine that cannot run here is listed as
// skipped, with why.
//
// The text reader scans tokens as the TCP reader does. MessagePack mode is
// read twice over: decoding every frame to values (as a browser client must to
// use them), and walking each frame's bytes for its token only, so the gap
// between the two is the reader's decoding and the rest the gateway's.
// BENCH.md's 70% aim is read as text mode's; msgpack's ratio is reported
// without an aim.
//
// data.cells: [{ transport: 'tcp' | 'ws' | 'ws-msgpack' | 'ws-msgpack-scan', engine: 'uws' | 'ws' | null, subscribers, rows, runs, rowsPerSec, mbPerSec, cpuSecondsPer1M, readerBusy }]
// ('ws' is text mode; engine is null for TCP; mbPerSec counts the bytes of each mode's own encoding)
import type { WsEngineName } from '../../src/bindings/edge-engine.js';
import { engineAvailability, enginesThatRun } from '../../src/bindings/engine-choice.js';
import { GATEWAY_FAN_OUT_FLAGS } from './fan-out.js';
import { formatRate, median, ratio, round } from './format.js';
import { runWriterToSubscribers } from './load.js';
import { onFreshServer, type RunningServer } from './servers.js';
import type { ScenarioContext, ScenarioOutput, SummaryRow } from './types.js';

/** 'ws-msgpack' decodes every frame to values; 'ws-msgpack-scan' is the same mode read by a token-only frame walker. */
export type Transport = 'tcp' | 'ws' | 'ws-msgpack' | 'ws-msgpack-scan';

/** The WebSocket modes as the progress lines and the report name them. */
export const WS_MODE_LABELS: Record<Exclude<Transport, 'tcp'>, string> = {
  ws: 'text',
  'ws-msgpack': 'msgpack, decoded',
  'ws-msgpack-scan': 'msgpack, token scan',
};
const SUBSCRIBER_ARGS: Record<Exclude<Transport, 'tcp'>, string[]> = {
  ws: ['--protocol', 'ws'],
  'ws-msgpack': ['--protocol', 'ws-msgpack'],
  'ws-msgpack-scan': ['--protocol', 'ws-msgpack', '--msgpack-reader', 'scan'],
};

/** One kind of subscriber connection: TCP, or a WebSocket mode on one engine. */
interface Channel {
  transport: Transport;
  engine: WsEngineName | null;
}

interface Run extends Channel {
  subscribers: number;
  rowsPerSec: number;
  mbPerSec: number;
  cpuSecondsPer1M: number;
  readerBusy: number | null;
}

const WS_AIM = 0.7;

/** One channel at one S, as stored in the results file (the report reads the same type). */
export interface WebSocketCell extends Channel {
  /** transport 'ws' is text mode (the name predates msgpack mode). */
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
  const availability = engineAvailability();
  const engines = enginesThatRun(availability);
  const skipped = (Object.keys(availability) as WsEngineName[]).flatMap((e) => {
    const why = availability[e];
    return why === true ? [] : [{ system: `gateway on --ws-engine ${e}`, reason: why }];
  });
  const channels: Channel[] = [
    { transport: 'tcp', engine: null },
    ...engines.flatMap((engine): Channel[] => [
      { transport: 'ws', engine },
      { transport: 'ws-msgpack', engine },
      { transport: 'ws-msgpack-scan', engine },
    ]),
  ];
  const same = (a: Channel, b: Channel): boolean => a.transport === b.transport && a.engine === b.engine;
  const runs: Run[] = [];
  for (let pass = 1; pass <= repeat; pass++) {
    for (const s of counts) {
      for (const channel of channels) {
        const { transport, engine } = channel;
        const over = transport === 'tcp' ? 'TCP' : `WebSocket ${WS_MODE_LABELS[transport]} (${engine})`;
        const phase = ctx.progress.phase(`W6 gateway over ${over} S=${s} round ${pass}/${repeat}`, rows * s);
        const settings = { http: true, ...(engine === null ? {} : { wsEngine: engine }) };
        await onFreshServer('gateway', ctx.workDir, settings, phase, async (server) => {
          const subscribeTo: RunningServer | undefined =
            transport === 'tcp' ? undefined : { ...server, port: server.httpPort!, subscriberArgs: SUBSCRIBER_ARGS[transport] };
          const r = await runWriterToSubscribers(ctx, server, { subscribers: s, rows, phase, ...(subscribeTo ? { subscribeTo } : {}) });
          const seconds = r.subscriber.seconds;
          runs.push({
            ...channel,
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
    channels.map((channel): WebSocketCell => {
      const mine = runs.filter((r) => same(r, channel) && r.subscribers === s);
      return {
        ...channel,
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
    const row = (channel: Channel): SummaryRow => {
      const ws = cells.find((c) => same(c, channel) && c.subscribers === s)!;
      const r = ratio(ws.rowsPerSec, tcp.rowsPerSec);
      const text = channel.transport === 'ws';
      return {
        scenario: 'W6',
        case: `S=${s}, ${text ? 'text' : channel.transport === 'ws-msgpack' ? 'msgpack' : 'msgpack token scan'}, ${channel.engine}`,
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
    return channels.filter((c) => c.engine !== null).map(row);
  });
  return {
    settings: {
      rows,
      subscribers: counts,
      repeat,
      modes: ['text', 'msgpack (decoded)', 'msgpack (token scan)'],
      engines,
      gatewayFlags: `${GATEWAY_FAN_OUT_FLAGS}, --http 127.0.0.1:0, --ws-engine per engine`,
    },
    summary,
    skipped,
    notes: [
      'Each WebSocket mode runs on every --ws-engine that runs on this Node: uws (uWebSockets.js, where a native build loads) and ws (the ws package over node:http); the TCP figure is the baseline for both.',
      'The WebSocket subscribers use the `ws` package (no compression) in the same one subscriber process; its frame parsing is part of the reader\'s cost, so a saturated reader lowers the WebSocket figure as much as the server does.',
      'Text mode reads as the TCP reader does: it scans each line for its token only. MessagePack mode (subprotocol replication.msgpack) is read twice over: decoded, every frame to values with msgpackr `unpackMultiple` as a browser client must to use the rows, then the tokens checked (that decoding is part of the reader\'s cost); and token scan, each frame\'s bytes walked for its token without making a value (bench/load/msgpack-frames.ts FrameScanner), as the text reader scans lines, so the gap between the two is the reader\'s decoding. Its MB/s counts MessagePack bytes.',
      'BENCH.md\'s aim (WebSocket within 70% of TCP) is applied to text mode; msgpack\'s ratio is reported without an aim.',
    ],
    data: { cells, runs },
  };
}
