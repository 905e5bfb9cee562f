/**
 * M6: a writer's chunks through the hub, in process: scan, route, token
 * checks, log entries, fan-out and the subscribers' queues, with
 * transports that only take the bytes. No sockets, so the figure is the
 * gateway's own CPU per row (issue 18's "where the ~0.8 µs per row goes"),
 * against the least any ingest does: scanning and route-decoding each line.
 */
import { RowRoute } from '../../src/core/dialect.js';
import { v1Text } from '../../src/core/dialects/v1-text.js';
import { ReplicationHub } from '../../src/core/hub.js';
import { LineScanner } from '../../src/core/line-scanner.js';
import { MemoryStreamLog } from '../../src/core/stream-log.js';
import type { Transport } from '../../src/core/transport.js';
import { chunksOf, rdataLines } from './fixtures.js';
import { runSuite, type BenchOptions, type BenchResult } from '../suite.js';

export async function benchHubIngest(opts: BenchOptions): Promise<BenchResult> {
  const { data, lines } = rdataLines(opts.quick ? 10e6 : 100e6);
  const chunks = chunksOf(data);
  const route = new RowRoute();
  let routed = 0;
  const scanner = new LineScanner({
    onLine: (buf, start, end) => {
      if (!v1Text.isRow(buf, start, end)) throw new Error('not RDATA');
      v1Text.routeRow(buf, start, end, route);
      routed++;
    },
    onLineError: (err) => {
      throw err;
    },
  });
  const throughHub = (subscribers: number) => () => {
    const delivered = ingest(chunks, subscribers, lines);
    if (delivered !== data.length * subscribers) throw new Error(`delivered ${delivered} bytes, expected ${data.length * subscribers}`);
  };
  const rows = await runSuite(opts, data.length, lines, [
    {
      name: 'LineScanner + route decode only (baseline)',
      baseline: true,
      fn: () => {
        routed = 0;
        for (const c of chunks) scanner.push(c);
        if (routed !== lines) throw new Error(`routed ${routed} lines, expected ${lines}`);
      },
    },
    { name: 'hub: writer → memory log → 1 subscriber', fn: throughHub(1) },
    { name: 'hub: writer → memory log → 10 subscribers', fn: throughHub(10) },
  ]);
  return { id: 'M6', title: 'writer ingest through the hub, in process (rows/s per writer)', rows };
}

/** One writer's chunks into a fresh hub with `subscribers` live subscribers; returns the bytes of rows they were handed. */
function ingest(chunks: readonly Buffer[], subscribers: number, lines: number): number {
  // Bytes, not lines: counting lines here would cost as much as what is measured (the real readers are other processes).
  let delivered = 0;
  const counting: Transport = {
    write(out) {
      for (const b of out) delivered += b.length;
      return true;
    },
    unsentBytes: () => 0,
    end() {},
    destroy() {},
  };
  const idle: Transport = { write: () => true, unsentBytes: () => 0, end() {}, destroy() {} };
  const hub = new ReplicationHub({
    serverName: 'bench',
    streams: ['events'],
    credentials: [{ secret: 'w', role: 'writer' }],
    requireAuth: false,
    maxLineBytes: 1 << 20,
    maxQueueCommands: 2 * lines,
    maxQueueBytes: 2 ** 40,
    maxStallMs: 60_000,
    pingIntervalMs: 60_000,
    pingTimeoutMs: 60_000,
    maxConnections: 1000,
    maxConnectionsPerAddress: 1000,
    lineTimeoutMs: 60_000,
    maxPartialLineBytes: 2 ** 30,
    catchUpChunkBytes: 1 << 20,
    clock: Date.now,
    createLog: () => new MemoryStreamLog({ retentionRows: 2 * lines, retentionBytes: 2 ** 40 }),
    scheduleFlush: () => {},
    events: {},
  });
  for (let i = 0; i < subscribers; i++) hub.accept(counting, 'bench', '127.0.0.1').receive(Buffer.from('REPLICATE events NOW\n'));
  const writer = hub.accept(idle, 'bench', '127.0.0.1');
  writer.receive(Buffer.from('AUTH w\n'));
  hub.flush();
  // The greeting (SERVER, PING) and the head (POSITION) are not rows.
  delivered = 0;
  for (const c of chunks) {
    writer.receive(c);
    hub.flush();
  }
  return delivered;
}
