// "How to read this run" for docs/benchmarks.md: where the gateway leads and
// trails its in-run baselines (from the summary rows), which aims were
// missed, and the reasons the numbers themselves support (is the reader
// saturated? could the aim be shown on this machine at all?).
import { formatRate, formatRatio, ratio } from '../scenarios/format.js';
import type { FanOutCell } from '../scenarios/fan-out.js';
import type { SummaryRow } from '../scenarios/types.js';
import type { WebSocketCell as WsCell } from '../scenarios/websocket.js';
import type { ScenarioResultFile } from './result-file.js';

const PEER_NAMES = ['naive relay', 'zero-copy relay', 'nats-server', 'redis-server'];

function describe(row: SummaryRow, figure: string, display: string): string {
  return `${row.scenario} ${row.case} ${figure}: ${display} vs ${row.baseline!.name} ${row.baseline!.display} (${formatRatio(row.ratio)})`;
}

export function reading(scenarios: ScenarioResultFile[]): string {
  const lead: string[] = [];
  const trail: string[] = [];
  const even: string[] = [];
  const missed: string[] = [];
  for (const r of scenarios) {
    if (!r.ok || r.skippedReason !== undefined) continue;
    // Rows continuing a figure (another baseline) leave case, figure and value blank: carry them over.
    let figure = '';
    let kase = '';
    let display = '';
    for (const row of r.summary) {
      if (row.figure !== '') {
        figure = row.figure;
        display = row.display;
      }
      if (row.case !== '') kase = row.case;
      const full = { ...row, case: kase };
      if (row.aim !== undefined && row.met === false) {
        missed.push(`${r.id} ${kase} ${figure}${row.baseline ? ` vs ${row.baseline.name}` : ''}: ${formatRatio(row.ratio ?? null)} ${row.ratio === undefined ? row.display : ''} (aim ${row.aim})`.replace(/\s+/g, ' '));
      }
      if (row.baseline === undefined || row.ratio === undefined || row.ratio === null) continue;
      if (!PEER_NAMES.includes(row.baseline.name)) continue;
      const text = describe(full, figure, display);
      if (row.ratio >= 1.1) lead.push(text);
      else if (row.ratio <= 0.9) trail.push(text);
      else even.push(text);
    }
  }
  const out: string[] = ['## How to read this run', ''];
  out.push('Ratios above 1 favour the gateway (for latency and memory the baseline is divided by the gateway).', '');
  if (lead.length > 0) out.push('**Where the gateway leads** (≥ 1.1×):', '', ...lead.map((l) => `- ${l}`), '');
  if (even.length > 0) out.push('**About even** (within 10%):', '', ...even.map((l) => `- ${l}`), '');
  if (trail.length > 0) out.push('**Where the gateway trails** (≤ 0.9×):', '', ...trail.map((l) => `- ${l}`), '');
  if (missed.length > 0) out.push('**Aims of BENCH.md missed in this run:**', '', ...missed.map((l) => `- ${l}`), '');

  const why = [
    ...whyFanOut(scenarios.find((r) => r.id === 'W1')),
    ...whyIdle(scenarios.find((r) => r.id === 'W4')),
    ...whyWebSocket(scenarios.find((r) => r.id === 'W6')),
  ];
  if (why.length > 0) out.push('**Why, as far as this run shows:**', '', ...why.map((l) => `- ${l}`), '');
  return out.join('\n');
}

/** Reasons the W1 figures support, each stated with the numbers behind it. */
function whyFanOut(r: ScenarioResultFile | undefined): string[] {
  if (r === undefined || !r.ok || r.skippedReason !== undefined) return [];
  const cells = r.data.cells as (FanOutCell & { readerBusy?: number | null })[];
  const out: string[] = [];
  const counts = [...new Set(cells.map((c) => c.subscribers))].sort((a, b) => a - b);
  const cell = (system: string, s: number) => cells.find((c) => c.system === system && c.subscribers === s);

  // Is the reader the limit? Then every server that keeps up lands on the same figure.
  const bound = counts.filter((s) => {
    const g = cell('gateway', s);
    return g?.readerBusy != null && g.readerBusy >= 0.85;
  });
  if (bound.length > 0) {
    const busy = bound.map((s) => `${Math.round((cell('gateway', s)!.readerBusy ?? 0) * 100)}% at S=${s}`).join(', ');
    const topBound = bound[bound.length - 1]!;
    const gTopBound = cell('gateway', topBound);
    const zcTop = cell('zero-copy-relay', topBound);
    out.push(
      `The counting subscriber process is saturated (one core busy: ${busy}). On this 2-core machine the subscriber, the writer and the server share two cores, ` +
        `so where it is saturated the rows/s of a server that keeps up measure the reader more than the server` +
        (zcTop?.rowsPerSec != null && gTopBound?.rowsPerSec != null
          ? ` (at S=${topBound} the gateway and the bare zero-copy relay land at ${formatRatio(ratio(gTopBound.rowsPerSec, zcTop.rowsPerSec))} of each other). `
          : '. ') +
        'The server CPU per delivered row (table above) separates them where rows/s cannot.',
    );
  }

  const top = counts[counts.length - 1]!;
  const gTop = cell('gateway', top);
  const framed = (['redis-server', 'nats-server'] as const).filter((p) => (cell(p, top)?.readerBusy ?? 0) >= 0.85);
  if (framed.length > 0) {
    out.push(
      `The reader's cost per row is not quite the same for every protocol: a row is 1 line in the replication protocol, 2 in nats (MSG header + payload), ` +
        `7 in redis's RESP push. ${framed.map((p) => `${p}'s reader was ${Math.round((cell(p, top)!.readerBusy ?? 0) * 100)}% busy at S=${top}`).join(', ')}, ` +
        'so part of the lead over it there is the cheaper framing for the reader, not the server.',
    );
  }
  const idlePeers = (['nats-server', 'redis-server'] as const).filter((p) => {
    const c = cell(p, top);
    return c?.readerBusy != null && c.readerBusy < 0.7;
  });
  for (const p of idlePeers) {
    out.push(
      `${p} is not reader-bound at S=${top} (reader ${Math.round((cell(p, top)!.readerBusy ?? 0) * 100)}% busy): it delivers what the server itself manages ` +
        'on the core it shares with the writer and the reader.',
    );
  }
  const cpuPeers = (['nats-server', 'redis-server'] as const)
    .map((peer) => ({ peer, c: cell(peer, top), r: ratio(cell(peer, top)?.cpuSecondsPer1M, gTop?.cpuSecondsPer1M) }))
    .filter((x) => x.c?.cpuSecondsPer1M != null && x.r !== null);
  if (gTop?.cpuSecondsPer1M != null && cpuPeers.length > 0) {
    const allMore = cpuPeers.every((x) => x.r! >= 1);
    out.push(
      `At S=${top} the gateway spends ${gTop.cpuSecondsPer1M.toFixed(3)} CPU s per million delivered rows; ` +
        cpuPeers.map((x) => `${x.peer} ${x.c!.cpuSecondsPer1M!.toFixed(3)} s (${formatRatio(x.r)} the gateway's)`).join(', ') +
        (allMore
          ? '. Our reading: the gateway hands the same stored bytes to every subscriber socket as shared slices, in large writes, where a pub/sub server frames and copies each message into each subscriber\'s output buffer.'
          : '.'),
    );
  }

  const zc1 = cell('zero-copy-relay', counts[0]!);
  const g1 = cell('gateway', counts[0]!);
  const r1 = ratio(g1?.rowsPerSec, zc1?.rowsPerSec);
  if (r1 !== null && r1 < 0.9) {
    out.push(
      `At S=${counts[0]} the gateway reaches ${formatRatio(r1)} of the zero-copy relay: with one subscriber nothing amortises its per-row work ` +
        '(scan every line, decode its route and token, append it to the log, queue it), which the bare relay skips by forwarding whole chunks unread.',
    );
  }

  const naive10 = cell('naive-relay', 10);
  const zc10 = cell('zero-copy-relay', 10);
  const g10 = cell('gateway', 10);
  if (naive10?.rowsPerSec != null && zc10?.rowsPerSec != null && g10?.rowsPerSec != null) {
    const need = naive10.rowsPerSec * 20;
    if (need > zc10.rowsPerSec) {
      out.push(
        `The ≥ 20× aim against the naive relay at S=10 needs ${formatRate(need)} rows/s here, more than the bare zero-copy relay delivers to this reader ` +
          `(${formatRate(zc10.rowsPerSec)}): on this machine the aim cannot be shown by rows/s, whatever the gateway does. ` +
          `By CPU, the naive relay spends ${formatRatio(ratio(naive10.cpuSecondsPer1M, g10.cpuSecondsPer1M))} the gateway's per delivered row.`,
      );
    }
  }
  return out;
}

interface IdleRecord {
  system: string;
  p50: number | null;
  p99: number | null;
}

/** W4: a latency gap that is only a tail (p50 close, p99 far) says something different from a slow fan-out. */
function whyIdle(r: ScenarioResultFile | undefined): string[] {
  if (r === undefined || !r.ok || r.skippedReason !== undefined) return [];
  const recs = r.data.systems as IdleRecord[];
  const gw = recs.find((x) => x.system === 'gateway');
  const peers = recs.filter((x) => x.system === 'nats-server' || x.system === 'redis-server');
  const zc = recs.find((x) => x.system === 'zero-copy-relay');
  if (gw?.p99 == null || gw.p50 == null || peers.length === 0) return [];
  const best = peers.reduce((a, b) => ((a.p99 ?? Infinity) <= (b.p99 ?? Infinity) ? a : b));
  if (best.p99 == null || gw.p99 < best.p99 * 2) return [];
  const medianClose = best.p50 != null && gw.p50 <= best.p50 * 2;
  return [
    `W4: one row fanned out to every idle connection reaches them with p99 ${gw.p99.toFixed(0)} ms through the gateway against ${best.p99.toFixed(0)} ms through ${best.system}` +
      (medianClose ? ` while the medians are close (${gw.p50.toFixed(0)} vs ${best.p50!.toFixed(0)} ms): the gap is a tail, about 1% of deliveries arriving hundreds of ms late.` : '.') +
      (zc?.p99 != null && zc.p99 >= gw.p99 / 2
        ? ` The bare zero-copy relay, also Node, shows it too in this run (p99 ${zc.p99.toFixed(0)} ms), which points at how a Node process writes to thousands of sockets at once more than at the gateway's own code.`
        : '') +
      ' Not explained yet; to be profiled.',
  ];
}

/** W6: WebSocket against TCP, and which side (the gateway, the reader) the numbers blame. */
function whyWebSocket(r: ScenarioResultFile | undefined): string[] {
  if (r === undefined || !r.ok || r.skippedReason !== undefined) return [];
  const cells = r.data.cells as WsCell[];
  const ws = cells.filter((c) => c.transport === 'ws');
  const out: string[] = [];
  for (const m of cells.filter((c) => c.transport === 'ws-msgpack')) out.push(whyMsgpack(m, cells));
  for (const w of ws) {
    const t = cells.find((c) => c.transport === 'tcp' && c.subscribers === w.subscribers);
    const rr = ratio(w.rowsPerSec, t?.rowsPerSec);
    if (t === undefined || rr === null || rr >= 0.7) continue;
    out.push(
      `W6 at S=${w.subscribers} on ${w.engine}: WebSocket delivers ${formatRatio(rr)} of TCP. The gateway spends ${w.cpuSecondsPer1M?.toFixed(3)} CPU s per million rows on WebSocket ` +
        `against ${t.cpuSecondsPer1M?.toFixed(3)} on TCP (each WebSocket subscriber's message is joined and framed per socket, ws-bridge.ts and the engine, where TCP subscribers are handed shared slices of the log), ` +
        `and the reader, which parses frames with the \`ws\` package, is ${Math.round((w.readerBusy ?? 0) * 100)}% busy (TCP: ${Math.round((t.readerBusy ?? 0) * 100)}%): ` +
        'both sides are near their limit, so this run cannot say how much of the gap is the gateway\'s.',
    );
  }
  return out;
}

/** W6 msgpack mode: its ratio has no aim, so it is always explained, with what bounds it. */
function whyMsgpack(m: WsCell, cells: WsCell[]): string {
  const t = cells.find((c) => c.transport === 'tcp' && c.subscribers === m.subscribers);
  const text = cells.find((c) => c.transport === 'ws' && c.engine === m.engine && c.subscribers === m.subscribers);
  const scan = cells.find((c) => c.transport === 'ws-msgpack-scan' && c.engine === m.engine && c.subscribers === m.subscribers);
  const pct = (x: number | null | undefined) => `${Math.round((x ?? 0) * 100)}%`;
  const readerBound = m.readerBusy !== null && m.readerBusy >= 0.85;
  return (
    `W6 at S=${m.subscribers}, msgpack on ${m.engine}: ${formatRate(m.rowsPerSec)} rows/s, ${formatRatio(ratio(m.rowsPerSec, t?.rowsPerSec))} of TCP` +
    (text !== undefined ? ` (text: ${formatRatio(ratio(text.rowsPerSec, t?.rowsPerSec))})` : '') +
    `. The reader decodes every frame to values with msgpackr and is ${pct(m.readerBusy)} busy` +
    (text !== undefined ? ` (text reader: ${pct(text.readerBusy)})` : '') +
    (scan !== undefined
      ? `; read by the token-only frame walker instead, the same mode delivers ${formatRatio(ratio(scan.rowsPerSec, t?.rowsPerSec))} of TCP with the reader ${pct(scan.readerBusy)} busy, so the decoding costs ${formatRatio(ratio(m.rowsPerSec, scan.rowsPerSec))} of the walker's rate`
      : '') +
    `; the gateway spends ${m.cpuSecondsPer1M?.toFixed(3)} CPU s per million rows` +
    (text !== undefined ? ` (text: ${text.cpuSecondsPer1M?.toFixed(3)})` : '') +
    ', transcoding each chunk of RDATA lines to frames once for all binary subscribers (ws-msgpack.ts). ' +
    (readerBound
      ? 'The reader is saturated, so this figure is the decoding reader\'s rate, a floor on what the gateway can send in this mode.'
      : 'The reader has room, so the gap to TCP lies with the gateway, or with the two cores both share.')
  );
}
