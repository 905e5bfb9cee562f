/**
 * M4: is encoding published rows on the Piscina pool worth it, and from what
 * batch size? One question, both sides of the threshold, in one run:
 *
 * - publish throughput (rows/s) of ~200-byte event rows through
 *   OrderedPublisher, inline vs pool, at batch sizes 1, 100, 1,000, 10,000
 *   (plus the sizes between, to find the crossover);
 * - the main thread's event-loop delay p99 (monitorEventLoopDelay) while
 *   10,000-row publishes run back to back and a 1 ms timer ping loop must
 *   stay responsive, inline vs pool, beside the idle machine's own floor;
 * - transcode() inline vs pool at three input sizes, for its threshold.
 *
 * The default thresholds in encoder-pool.ts come from this run: the largest
 * batch whose inline publish holds the loop at most INLINE_BUDGET_MS.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { OrderedPublisher, tokensFromHead } from '../../src/core/ordered-commit.js';
import { encodeRows, type RowEncoder } from '../../src/core/row-encoding.js';
import { EncoderPool, DEFAULT_INLINE_MAX_ROWS, DEFAULT_TASK_ROWS } from '../../src/workers/encoder-pool.js';
import type { BenchOptions, BenchResult, BenchRow } from '../suite.js';

/** An events-stream row as a writer publishes it in-process: about 200 bytes of JSON. */
export function eventRow(i: number): Record<string, unknown> {
  const id = i.toString(36).padStart(8, '0');
  return {
    event_id: `$${id}:example.com`,
    room_id: `!${id.slice(-4)}room:example.com`,
    type: 'm.room.message',
    sender: '@alice:example.com',
    state_key: null,
    origin_server_ts: 1732608000000 + i,
    body: 'x'.repeat(52),
  };
}

const ROWS = Array.from({ length: 10_000 }, (_, i) => eventRow(i));
const ROW_BYTES = Math.round(encodeRows('events', 1, ROWS).length / ROWS.length);

interface Throughput {
  rowsPerSecond: number;
  bytesPerSecond: number;
  /** How long one publish() call holds the main thread, in ms (median over calls; pool hand-over turns come later). */
  publishCallMs: number;
}

/**
 * Publishes `batch`-row publishes for about `ms`, keeping up to `window`
 * publishes in flight (what a server with several writers sees).
 */
async function throughput(encoder: RowEncoder, batch: number, ms: number, window = 8): Promise<Throughput> {
  let head = 0;
  let rows = 0;
  let bytes = 0;
  const publisher = new OrderedPublisher({
    encoder,
    tokens: tokensFromHead(() => head),
    commit: (_s, token, b, rowCount) => {
      head = token;
      rows += rowCount;
      bytes += b.length;
    },
  });
  const callMs: number[] = [];
  let offset = 0;
  const nextRows = (): unknown[] => {
    if (offset + batch > ROWS.length) offset = 0;
    const r = ROWS.slice(offset, offset + batch);
    offset += batch;
    return r;
  };
  const started = performance.now();
  const deadline = started + ms;
  let inFlight = 0;
  await new Promise<void>((resolve, reject) => {
    const pump = (): void => {
      while (inFlight < window && performance.now() < deadline) {
        inFlight++;
        const t0 = performance.now();
        const p = publisher.publish('events', nextRows());
        callMs.push(performance.now() - t0);
        p.then(() => {
          inFlight--;
          pump();
        }, reject);
      }
      if (inFlight === 0) resolve();
    };
    pump();
  });
  const seconds = (performance.now() - started) / 1000;
  callMs.sort((a, b) => a - b);
  return { rowsPerSecond: rows / seconds, bytesPerSecond: bytes / seconds, publishCallMs: callMs[callMs.length >> 1] ?? 0 };
}

interface Responsiveness {
  p99Ms: number;
  maxMs: number;
  /** Longest gap between two turns of the ping loop. */
  pingGapMaxMs: number;
  rowsPerSecond: number;
}

/**
 * 10,000-row publishes back to back for `ms` (each awaited, then one turn of
 * the loop, as publishes arriving from sockets would), while a 1 ms timer
 * ping loop runs beside them. `null`: the ping loop alone, the machine's floor.
 */
async function responsiveness(encoder: RowEncoder | null, ms: number): Promise<Responsiveness> {
  let head = 0;
  let rows = 0;
  const publisher =
    encoder &&
    new OrderedPublisher({
      encoder,
      tokens: tokensFromHead(() => head),
      commit: (_s, token, _b, rowCount) => {
        head = token;
        rows += rowCount;
      },
    });
  let pinging = true;
  let last = performance.now();
  let pingGapMaxMs = 0;
  const ping = (): void => {
    const now = performance.now();
    pingGapMaxMs = Math.max(pingGapMaxMs, now - last);
    last = now;
    if (pinging) setTimeout(ping, 1);
  };
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  setTimeout(ping, 1);
  await new Promise((resolve) => setTimeout(resolve, 20));
  histogram.enable();
  pingGapMaxMs = 0;
  const started = performance.now();
  while (performance.now() - started < ms) {
    if (publisher === null) await new Promise((resolve) => setTimeout(resolve, 10));
    else await publisher.publish('events', ROWS);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const seconds = (performance.now() - started) / 1000;
  histogram.disable();
  pinging = false;
  return {
    p99Ms: histogram.percentile(99) / 1e6,
    maxMs: histogram.max / 1e6,
    pingGapMaxMs,
    rowsPerSecond: rows / seconds,
  };
}

function row(name: string, rowsPerSecond: number, baseRowsPerSecond: number, baseline: boolean, rowBytes = ROW_BYTES): BenchRow {
  return {
    name,
    perSecond: rowsPerSecond,
    bytesPerSecond: rowsPerSecond * rowBytes,
    ratio: rowsPerSecond / baseRowsPerSecond,
    baseline,
  };
}

/** Lines/s of transcode() over `lines`, one call at a time, and the median time one call holds this thread. */
async function transcodeRate(pool: EncoderPool, lines: Buffer, count: number, ms: number): Promise<{ linesPerSecond: number; callMs: number }> {
  const calls: number[] = [];
  let done = 0;
  const started = performance.now();
  while (performance.now() - started < ms) {
    const t0 = performance.now();
    const p = pool.transcode(lines);
    calls.push(performance.now() - t0);
    await p;
    done += count;
  }
  calls.sort((a, b) => a - b);
  return { linesPerSecond: done / ((performance.now() - started) / 1000), callMs: calls[calls.length >> 1]! };
}

/**
 * The loop time an inline publish may take: a quarter of the 5 ms p99 aim.
 * The default inlineMaxRows is the largest measured batch within it.
 */
const INLINE_BUDGET_MS = 1.25;

export async function benchEncode(opts: BenchOptions): Promise<BenchResult> {
  const ms = opts.quick ? 400 : 2000;
  const inline: RowEncoder = { encode: encodeRows };
  const pool = new EncoderPool({ inlineMaxRows: 0 }); // every publish on the pool, to see both sides
  const adaptive = new EncoderPool(); // the defaults the server gets
  const out: BenchRow[] = [];
  try {
    // Warm both paths (JIT, worker start-up).
    await throughput(inline, 1000, 300);
    await throughput(pool, 1000, 300);
    await throughput(adaptive, 1000, 200);

    const sizes = [1, 100, 250, 500, 1000, 2500, 10_000];
    let crossover: number | null = null;
    let withinBudget = 0;
    for (const size of sizes) {
      const i = await throughput(inline, size, ms);
      const p = await throughput(pool, size, ms);
      if (crossover === null && p.rowsPerSecond >= i.rowsPerSecond) crossover = size;
      if (i.publishCallMs <= INLINE_BUDGET_MS) withinBudget = size;
      out.push(row(`inline, batch ${size} (holds the loop ${i.publishCallMs.toFixed(2)} ms per publish)`, i.rowsPerSecond, i.rowsPerSecond, true));
      out.push(row(`pool ${pool.threads} thread(s), batch ${size} (holds ${p.publishCallMs.toFixed(2)} ms)`, p.rowsPerSecond, i.rowsPerSecond, false));
      if (size > DEFAULT_INLINE_MAX_ROWS) {
        const a = await throughput(adaptive, size, ms);
        out.push(row(`adaptive default, batch ${size}`, a.rowsPerSecond, i.rowsPerSecond, false));
      }
      if (size >= 1000 && pool.threads !== 2) {
        // What one more worker buys (on a 2-core machine: more threads than cores).
        const two = new EncoderPool({ threads: 2, inlineMaxRows: 0 });
        try {
          await throughput(two, size, 200);
          const t = await throughput(two, size, ms);
          out.push(row(`pool 2 threads, batch ${size}`, t.rowsPerSecond, i.rowsPerSecond, false));
        } finally {
          await two.close();
        }
      }
    }

    const floor = await responsiveness(null, ms);
    const ri = await responsiveness(inline, ms);
    const rp = await responsiveness(adaptive, ms);
    const loop = (r: Responsiveness): string => `event-loop delay p99 ${r.p99Ms.toFixed(1)} ms, max ${r.maxMs.toFixed(1)} ms`;
    out.push(row(`idle, ping loop only (this machine's floor): ${loop(floor)}`, 0, 1, false));
    out.push(row(`10,000-row publishes + ping loop, inline: ${loop(ri)}`, ri.rowsPerSecond, ri.rowsPerSecond, true));
    out.push(
      row(
        `10,000-row publishes + ping loop, pool ${adaptive.threads} thread(s), ${DEFAULT_TASK_ROWS}-row tasks: ${loop(rp)}`,
        rp.rowsPerSecond,
        ri.rowsPerSecond,
        false,
      ),
    );

    // transcode(): where inline stops fitting the loop budget.
    const transcodePool = new EncoderPool({ transcodeInlineMaxBytes: 0 });
    const transcodeInline = new EncoderPool({ threads: 0 });
    try {
      for (const count of [10, 300, 10_000]) {
        const lines = encodeRows('events', 1, ROWS.slice(0, count));
        const lineBytes = lines.length / count;
        await transcodeRate(transcodePool, lines, count, 100);
        const ti = await transcodeRate(transcodeInline, lines, count, ms / 2);
        const tp = await transcodeRate(transcodePool, lines, count, ms / 2);
        const kb = (lines.length / 1024).toFixed(0);
        out.push(row(`transcode inline, ${count} lines / ${kb} KB (holds ${ti.callMs.toFixed(2)} ms)`, ti.linesPerSecond, ti.linesPerSecond, true, lineBytes));
        out.push(row(`transcode pool, ${count} lines / ${kb} KB (holds ${tp.callMs.toFixed(2)} ms)`, tp.linesPerSecond, ti.linesPerSecond, false, lineBytes));
      }
    } finally {
      await transcodePool.close();
      await transcodeInline.close();
    }

    out.push({
      name:
        `threshold: inline publish within ${INLINE_BUDGET_MS} ms up to batch ${withinBudget}; ` +
        `throughput crossover ${crossover === null ? 'none up to 10,000 rows' : `at batch ${crossover}`}; ` +
        `default inlineMaxRows ${DEFAULT_INLINE_MAX_ROWS}`,
      perSecond: withinBudget,
      bytesPerSecond: 0,
      ratio: 1,
      baseline: false,
    });
  } finally {
    await pool.close();
    await adaptive.close();
  }
  return { id: 'M4', title: `publish encoding, inline vs Piscina pool (~${ROW_BYTES}-byte event rows)`, rows: out };
}
