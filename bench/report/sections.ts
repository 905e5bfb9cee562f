// The per-benchmark sections of docs/benchmarks.md, each built from one
// result file: what ran, a table of every system's figures, and its notes.
import { formatBytes, formatMs, formatRate, formatRatio, formatSeconds, ratio } from '../scenarios/format.js';
import type { FanOutCell } from '../scenarios/fan-out.js';
import type { IdleRecord } from '../scenarios/idle.js';
import { WS_MODE_LABELS, type WebSocketCell as WsCell } from '../scenarios/websocket.js';
import type { LatencyRecord } from '../scenarios/latency.js';
import type { IngestFigures, StorageCatchUpData } from '../scenarios/storage.js';
import { SYSTEM_LABELS, type SystemName } from '../scenarios/servers.js';
import type { MicroResultFile, ScenarioResultFile } from './result-file.js';
import { MICRO_HEADERS, microRows, renderTable } from './summary-table.js';

const label = (s: string) => SYSTEM_LABELS[s as SystemName] ?? s;

function header(r: ScenarioResultFile | MicroResultFile): string {
  return `### ${r.id}: ${r.title}`;
}

function notes(r: ScenarioResultFile): string {
  const lines = r.notes.map((n) => `- ${n}`);
  for (const s of r.skipped) lines.push(`- Skipped ${s.system}: ${s.reason}.`);
  return lines.join('\n');
}

function failed(r: ScenarioResultFile): string | null {
  if (!r.ok) return `${header(r)}\n\n**Failed:** ${r.error ?? 'unknown error'}\n`;
  if (r.skippedReason !== undefined) return `${header(r)}\n\nSkipped: ${r.skippedReason}.\n`;
  return null;
}

export function fanOutSection(r: ScenarioResultFile, chartFile: string | null): string {
  const f = failed(r);
  if (f !== null) return f;
  const cells = r.data.cells as FanOutCell[];
  const counts = [...new Set(cells.map((c) => c.subscribers))];
  const gw = (s: number) => cells.find((c) => c.system === 'gateway' && c.subscribers === s);
  const rows = cells.map((c) => {
    const g = gw(c.subscribers);
    return [
      `S=${c.subscribers}`,
      c.system === 'gateway' ? `**${label(c.system)}**` : label(c.system),
      formatRate(c.rowsPerSec),
      c.mbPerSec === null ? 'n/a' : `${c.mbPerSec.toFixed(0)} MB/s`,
      c.system === 'gateway' ? '—' : formatRatio(ratio(g?.rowsPerSec, c.rowsPerSec)),
      c.cpuSecondsPer1M === null ? 'n/a' : `${c.cpuSecondsPer1M.toFixed(3)} s`,
      c.system === 'gateway' ? '—' : formatRatio(ratio(c.cpuSecondsPer1M, g?.cpuSecondsPer1M)),
      formatBytes(c.peakRssBytes),
      c.readerBusy === null || c.readerBusy === undefined ? 'n/a' : `${Math.round(c.readerBusy * 100)}%`,
      `${c.rows.toLocaleString('en-US')} × ${c.runs}`,
    ];
  });
  const settings = r.settings as { rows: number; repeat: number; gatewayFlags?: string };
  return [
    header(r),
    '',
    `${settings.rows.toLocaleString('en-US')} rows of ~200 bytes per run, S = ${counts.join(', ')}; each cell is the median of ${settings.repeat} run(s), interleaved across systems.` +
      (settings.gatewayFlags ? ` Gateway flags: \`${settings.gatewayFlags}\`.` : ''),
    '',
    chartFile !== null ? `![W1 fan-out: delivered rows/s by S](${chartFile})\n` : '',
    renderTable(
      ['S', 'system', 'rows/s', 'MB/s', 'gateway ÷ this (rows/s)', 'server CPU per 1M rows', 'this ÷ gateway (CPU)', 'server peak RSS', 'reader CPU ÷ delivery time', 'rows × runs'],
      rows,
      'markdown',
    ),
    '',
    notes(r),
    '- *reader CPU ÷ delivery time*: the subscriber process\'s CPU time over the time from its first row to its last; near (or, with its GC threads, above) 100%, the one reading core, not the server, set the pace.',
    '',
  ].join('\n');
}


/** A steady-rate run (W2, W10): one sentence on what ran, and one row per system. */
function steadyRateSection(
  r: ScenarioResultFile,
  what: (s: { rate: number; seconds: number; subscribers: number }) => string,
  columns: [string, (x: LatencyRecord) => string][],
  extraNotes: string[] = [],
): string {
  const f = failed(r);
  if (f !== null) return f;
  const recs = r.data.systems as LatencyRecord[];
  return [
    header(r),
    '',
    what(r.settings as { rate: number; seconds: number; subscribers: number }),
    '',
    renderTable(
      ['system', ...columns.map(([name]) => name)],
      recs.map((x) => [x.system === 'gateway' ? `**${label(x.system)}**` : label(x.system), ...columns.map(([, cell]) => cell(x))]),
      'markdown',
    ),
    '',
    notes(r),
    ...extraNotes,
    '',
  ].join('\n');
}

const LATENCY_COLUMNS: [string, (x: LatencyRecord) => string][] = [
  ['p50', (x) => formatMs(x.p50)],
  ['p99', (x) => formatMs(x.p99)],
  ['p99.9', (x) => formatMs(x.p999)],
  ['max', (x) => formatMs(x.max)],
];

export function latencySection(r: ScenarioResultFile): string {
  return steadyRateSection(
    r,
    (s) => `${s.rate.toLocaleString('en-US')} rows/s for ${s.seconds} s to S = ${s.subscribers}; writer-to-subscriber latency of every row at every subscriber.`,
    [...LATENCY_COLUMNS, ['samples', (x) => x.samples.toLocaleString('en-US')], ['server CPU', (x) => formatSeconds(x.serverCpuSeconds)]],
  );
}

export function busySubscribersSection(r: ScenarioResultFile): string {
  return steadyRateSection(
    r,
    (s) =>
      `${s.rate.toLocaleString('en-US')} rows/s for ${s.seconds} s to S = ${s.subscribers.toLocaleString('en-US')} TCP subscribers held by one process: every row read by every subscriber, with its latency.`,
    [
      ['delivered rows/s', (x) => formatRate(x.deliveredRowsPerSec)],
      ...LATENCY_COLUMNS,
      ['server CPU per delivered row', (x) => (x.samples > 0 ? `${((x.serverCpuSeconds / x.samples) * 1e6).toFixed(2)} µs` : 'n/a')],
      ['server peak RSS', (x) => formatBytes(x.serverPeakRssBytes)],
      ['reader CPU', (x) => formatSeconds(x.readerCpuSeconds)],
    ],
    ["- *reader CPU*: the subscriber process's CPU over the run; when it nears the run's length, the one reading core, not the server, set the pace."],
  );
}

export function catchUpSection(r: ScenarioResultFile): string {
  const f = failed(r);
  if (f !== null) return f;
  const d = r.data as {
    rows: number; storeRowsPerSec: number | null; rssWithLogBytes: number; rowsPerSec: number | null; mbPerSec: number | null;
    seconds: number; peakGrowthBytes: number; gatewayCpuSeconds: number;
  };
  return [
    header(r),
    '',
    renderTable(
      ['rows stored', 'stored at', 'gateway RSS with the log', 'catch-up rows/s', 'MB/s', 'catch-up time', 'peak RSS growth', 'gateway CPU'],
      [[
        d.rows.toLocaleString('en-US'),
        `${formatRate(d.storeRowsPerSec)} rows/s`,
        formatBytes(d.rssWithLogBytes),
        formatRate(d.rowsPerSec),
        d.mbPerSec === null ? 'n/a' : `${d.mbPerSec.toFixed(0)} MB/s`,
        formatSeconds(d.seconds),
        formatBytes(d.peakGrowthBytes),
        formatSeconds(d.gatewayCpuSeconds),
      ]],
      'markdown',
    ),
    '',
    notes(r),
    '',
  ].join('\n');
}

export function storageSection(r: ScenarioResultFile): string {
  const f = failed(r);
  if (f !== null) return f;
  const d = r.data as { rows: number; catchUp: Record<string, StorageCatchUpData>; ingest: Record<string, IngestFigures> };
  const memoryCatchUp = d.catchUp['memory'];
  const memoryIngest = d.ingest['memory'];
  return [
    header(r),
    '',
    `Catch-up of ${d.rows.toLocaleString('en-US')} rows from token 0:`,
    '',
    renderTable(
      ['log', 'catch-up rows/s', 'vs memory', 'catch-up time', 'gateway RSS before', 'peak RSS growth', 'gateway CPU'],
      Object.entries(d.catchUp).map(([kind, c]) => [
        kind,
        formatRate(c.rowsPerSec),
        kind === 'memory' ? '' : formatRatio(ratio(c.rowsPerSec, memoryCatchUp?.rowsPerSec)),
        formatSeconds(c.seconds),
        formatBytes(c.rssBeforeBytes),
        formatBytes(c.peakGrowthBytes),
        formatSeconds(c.cpuSeconds),
      ]),
      'markdown',
    ),
    '',
    `Writer ingest of ${d.rows.toLocaleString('en-US')} rows, until stored:`,
    '',
    renderTable(
      ['log and --fsync', 'rows/s', 'vs memory', 'gateway CPU', 'CPU vs memory'],
      Object.entries(d.ingest).map(([setting, x]) => [
        setting,
        formatRate(x.rowsPerSec),
        setting === 'memory' ? '' : formatRatio(ratio(x.rowsPerSec, memoryIngest?.rowsPerSec)),
        formatSeconds(x.cpuSeconds),
        setting === 'memory' ? '' : formatRatio(ratio(x.cpuSeconds, memoryIngest?.cpuSeconds)),
      ]),
      'markdown',
    ),
    '',
    notes(r),
    '',
  ].join('\n');
}

export function idleSection(r: ScenarioResultFile): string {
  const f = failed(r);
  if (f !== null) return f;
  const recs = r.data.systems as IdleRecord[];
  return [
    header(r),
    '',
    renderTable(
      ['system', 'connections', 'RSS before', 'RSS connected', 'per connection', 'connect + subscribe', 'p50', 'p99', 'p99.9', 'max'],
      recs.map((x) => [
        x.system === 'gateway' ? `**${label(x.system)}**` : label(x.system),
        x.connections.toLocaleString('en-US'),
        formatBytes(x.rssBeforeBytes),
        formatBytes(x.rssConnectedBytes),
        formatBytes(x.bytesPerConnection),
        formatSeconds(x.connectSeconds),
        formatMs(x.p50),
        formatMs(x.p99),
        formatMs(x.p999 ?? null),
        formatMs(x.max),
      ]),
      'markdown',
    ),
    '',
    notes(r),
    '',
  ].join('\n');
}

interface SlowSide {
  fastSubscribers: number;
  rowsPerSec: number | null;
  p50: number | null;
  p99: number | null;
  peakGrowthBytes: number;
  cpuSeconds: number;
}

export function slowConsumerSection(r: ScenarioResultFile): string {
  const f = failed(r);
  if (f !== null) return f;
  const d = r.data as {
    without: SlowSide;
    with: SlowSide;
    cut: { limit: string; afterMs: number | null; queuedCommands: number | null; queuedBytes: number | null; lastTokenSent: number | null; rowsRead: number } | null;
  };
  const s = r.settings as { subscribers: number; rows: number; rate: number };
  const side = (name: string, x: SlowSide) => [
    name,
    String(x.fastSubscribers),
    formatRate(x.rowsPerSec),
    formatMs(x.p50),
    formatMs(x.p99),
    formatBytes(x.peakGrowthBytes),
    formatSeconds(x.cpuSeconds),
  ];
  const cut = d.cut === null
    ? '**The slow subscriber was not cut.**'
    : `The slow subscriber was cut **${d.cut.afterMs} ms** after the writer's first row, at limit \`${d.cut.limit}\`, ` +
      `with ${d.cut.queuedCommands?.toLocaleString('en-US') ?? '?'} commands (${formatBytes(d.cut.queuedBytes)}) queued for it in the gateway ` +
      `(the cut log line's lastTokenSent: ${d.cut.lastTokenSent?.toLocaleString('en-US') ?? '?'}). When it read again it got ${d.cut.rowsRead.toLocaleString('en-US')} rows, ` +
      'what the socket buffers held, then `ERROR Failed to keep up` and the close.';
  return [
    header(r),
    '',
    `S = ${s.subscribers} (one stops reading), ${s.rows.toLocaleString('en-US')} rows at ${formatRate(s.rate)} rows/s, gateway defaults.`,
    '',
    cut,
    '',
    renderTable(
      ['run', 'reading subscribers', 'their rows/s', 'p50', 'p99', 'gateway peak RSS growth', 'gateway CPU'],
      [side('without the slow one', d.without), side('with the slow one', d.with)],
      'markdown',
    ),
    '',
    notes(r),
    '',
  ].join('\n');
}

export function massReconnectSection(r: ScenarioResultFile): string {
  const f = failed(r);
  if (f !== null) return f;
  const d = r.data as {
    subscribers: number; behindRows: number; liveRows: number; rate: number; liveSeconds: number | null; allRowsSeconds: number | null;
    peakGrowthBytes: number; gatewayCpuSeconds: number; cuts: number; deliveredRows: number; rowsPerSec: number | null;
  };
  return [
    header(r),
    '',
    renderTable(
      ['subscribers', 'rows behind', 'writer meanwhile', 'all live after', 'all rows after', 'rows delivered', 'gateway peak RSS growth', 'gateway CPU', 'congestion cuts'],
      [[
        String(d.subscribers),
        d.behindRows.toLocaleString('en-US'),
        `${formatRate(d.rate)} rows/s, ${d.liveRows.toLocaleString('en-US')} rows`,
        formatSeconds(d.liveSeconds),
        formatSeconds(d.allRowsSeconds),
        d.deliveredRows.toLocaleString('en-US'),
        formatBytes(d.peakGrowthBytes),
        formatSeconds(d.gatewayCpuSeconds),
        String(d.cuts),
      ]],
      'markdown',
    ),
    '',
    notes(r),
    '',
  ].join('\n');
}

export function microSection(results: MicroResultFile[]): string {
  const parts: string[] = [];
  for (const r of results) {
    parts.push(`### ${r.id}: ${r.title}`, '');
    if (!r.ok) parts.push(`**Failed:** ${r.error ?? 'unknown error'}`, '');
    else parts.push(renderTable(MICRO_HEADERS.slice(1), microRows([r]).map((row) => row.slice(1)), 'markdown'), '');
  }
  return parts.join('\n');
}

export function skippedSection(r: ScenarioResultFile): string {
  return `${header(r)}\n\nSkipped: ${r.skippedReason ?? r.error ?? 'not run'}.\n`;
}


export function webSocketSection(r: ScenarioResultFile): string {
  const f = failed(r);
  if (f !== null) return f;
  const cells = r.data.cells as WsCell[];
  const tcp = (s: number) => cells.find((c) => c.transport === 'tcp' && c.subscribers === s);
  return [
    header(r),
    '',
    renderTable(
      ['S', 'subscribers over', 'rows/s', 'MB/s', '÷ TCP', 'gateway CPU per 1M rows', 'reader CPU ÷ delivery time', 'rows × runs'],
      cells.map((c) => [
        `S=${c.subscribers}`,
        c.transport === 'tcp' ? 'TCP' : `WebSocket (${WS_MODE_LABELS[c.transport]}, ${c.engine})`,
        formatRate(c.rowsPerSec),
        c.mbPerSec === null ? 'n/a' : `${c.mbPerSec.toFixed(0)} MB/s`,
        c.transport === 'tcp' ? '—' : formatRatio(ratio(c.rowsPerSec, tcp(c.subscribers)?.rowsPerSec)),
        c.cpuSecondsPer1M === null ? 'n/a' : `${c.cpuSecondsPer1M.toFixed(3)} s`,
        c.readerBusy === null ? 'n/a' : `${Math.round(c.readerBusy * 100)}%`,
        `${c.rows.toLocaleString('en-US')} × ${c.runs}`,
      ]),
      'markdown',
    ),
    '',
    notes(r),
    '',
  ].join('\n');
}

/** W7R: the Redis log's catch-up, and W1 S=10 through one and two gateways on it (bench/scenarios/storage-redis.ts). */
export function storageRedisSection(r: ScenarioResultFile): string {
  const f = failed(r);
  if (f !== null) return f;
  const d = r.data as {
    catchUp: { rows: number; storeRowsPerSec: number | null; rowsPerSec: number | null; seconds: number; peakRssBytes: number; peakGrowthBytes: number };
    fanOut: { setup: string; subscribers: number; rows: number; rowsPerSec: number | null; writerRowsPerSec: number | null; gatewayPeakRssBytes: number }[];
  };
  const c = d.catchUp;
  return [
    header(r),
    '',
    renderTable(
      ['rows stored', 'stored at', 'catch-up rows/s', 'catch-up time', 'gateway peak RSS', 'peak RSS growth'],
      [[c.rows.toLocaleString('en-US'), `${formatRate(c.storeRowsPerSec)} rows/s`, formatRate(c.rowsPerSec), formatSeconds(c.seconds), formatBytes(c.peakRssBytes), formatBytes(c.peakGrowthBytes)]],
      'markdown',
    ),
    '',
    renderTable(
      ['setup', 'S', 'rows', 'delivered rows/s', 'writer rows/s', 'writer gateway peak RSS'],
      d.fanOut.map((x) => [x.setup, String(x.subscribers), x.rows.toLocaleString('en-US'), formatRate(x.rowsPerSec), formatRate(x.writerRowsPerSec), formatBytes(x.gatewayPeakRssBytes)]),
      'markdown',
    ),
    '',
    notes(r),
    '',
  ].join('\n');
}

/** W9: following a current Synapse on Redis pub/sub (bench/scenarios/synapse-follow.ts). */
export function synapseFollowSection(r: ScenarioResultFile): string {
  const f = failed(r);
  if (f !== null) return f;
  const d = r.data as {
    rows: number;
    ingest: { bareRowsPerSec: number | null; gatewayRowsPerSec: number | null; gatewayCpuSeconds: number };
    delivery: { subscribers: number; rowsPerSec: number | null; gatewayCpuSeconds: number; gatewayPeakRssBytes: number };
  };
  const { ingest, delivery } = d;
  return [
    header(r),
    '',
    `${d.rows.toLocaleString('en-US')} rows of ~200 bytes in today's dialect, one PUBLISH each on the deployment's channel.`,
    '',
    renderTable(
      ['reader', 'rows/s', 'gateway ÷ bare', 'gateway CPU'],
      [
        ['bare raw-RESP subscriber', formatRate(ingest.bareRowsPerSec), '—', '—'],
        ['**gateway** ingest (its pair at the last token)', formatRate(ingest.gatewayRowsPerSec), formatRatio(ratio(ingest.gatewayRowsPerSec, ingest.bareRowsPerSec)), formatSeconds(ingest.gatewayCpuSeconds)],
        [`**gateway** to S = ${delivery.subscribers} TCP subscribers (per subscriber)`, formatRate(delivery.rowsPerSec), formatRatio(ratio(delivery.rowsPerSec, ingest.bareRowsPerSec)), formatSeconds(delivery.gatewayCpuSeconds)],
      ],
      'markdown',
    ),
    '',
    notes(r),
    '',
  ].join('\n');
}
