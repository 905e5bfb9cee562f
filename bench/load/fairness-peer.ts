// A peer process for the fairness test and M7 (bench/core/ping-fairness.bench.ts),
// on its own event loop so its clock is not held up by the gateway it measures
// (run it through fairness-run.ts):
//
//   node fairness-peer.js flood PORT MS       sends PING lines as fast as the gateway takes them, for MS ms
//   node fairness-peer.js wsflood URL MS      the same over a WebSocket, in messages of ~1 MB of PINGs; prints
//                                             {"sentBytes":N,"cut":"ERROR ..."|null} on stdout (cut: the gateway's ERROR)
//   node fairness-peer.js probe PORT ROWS     as a writer (AUTH w), sends ROWS rows 5 ms apart from the head, each carrying
//                                             its send time; as a subscriber, times each row's return; prints
//                                             {"rows":N,"p50":ms,"p99":ms,"max":ms} on stdout
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

// target: a port (flood, probe) or a ws:// URL (wsflood).
const [mode, target, amountText] = process.argv.slice(2);
const port = Number(target);
const amount = Number(amountText);

function connect(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.setNoDelay(true);
    socket.once('error', reject);
  });
}

async function flood(ms: number): Promise<void> {
  const socket = await connect();
  socket.on('data', () => {});
  const pings = Buffer.from('PING 1490197665618\n'.repeat(64 * 1024));
  const until = Date.now() + ms;
  // Megabytes kept queued: the kernel's buffers stay full, so the gateway always has megabytes of it to read.
  const more = (): void => {
    if (Date.now() >= until) return void socket.destroy();
    while (socket.writableLength < 8 * 1024 * 1024) socket.write(pings);
    setTimeout(more, 1);
  };
  more();
}

async function wsFlood(url: string, ms: number): Promise<void> {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let cut: string | null = null;
  ws.on('message', (data: Buffer) => {
    const error = data.toString().split('\n').find((l) => l.startsWith('ERROR '));
    cut ??= error ?? null;
  });
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  // About 1 MB a message: a message may hold up to --max-line-bytes (1 MiB) of lines.
  const message = 'PING 1490197665618\n'.repeat(52_000);
  const until = Date.now() + ms;
  let sentBytes = 0;
  const more = (): void => {
    if (cut !== null || ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() >= until) return void ws.terminate();
    while (ws.bufferedAmount < 8 * 1024 * 1024) {
      ws.send(message);
      sentBytes += message.length;
    }
    setTimeout(more, 1);
  };
  more();
  await closed;
  process.stdout.write(`${JSON.stringify({ sentBytes, cut })}\n`);
}

async function probe(rows: number): Promise<void> {
  const sub = await connect();
  const writer = await connect();
  const latencies: number[] = [];
  let pending = '';
  let subscribed: () => void;
  const ready = new Promise<void>((resolve) => (subscribed = resolve));
  let head = 0;
  sub.on('data', (chunk: Buffer) => {
    const now = performance.now();
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      const position = /^POSITION events (\d+)$/.exec(line);
      if (position !== null) {
        head = Number(position[1]);
        subscribed();
      }
      const m = /^RDATA events \d+ \["([\d.]+)"\]$/.exec(line);
      if (m !== null) latencies.push(now - Number(m[1]));
    }
  });
  sub.write('REPLICATE events NOW\n');
  writer.on('data', () => {});
  writer.write('AUTH w\n');
  await ready;
  // Tokens go on from the stream's head: an earlier probe may have written to it.
  for (let token = head + 1; token <= head + rows; token++) {
    writer.write(`RDATA events ${token} ["${performance.now()}"]\n`);
    await new Promise((r) => setTimeout(r, 5));
  }
  const deadline = Date.now() + 5_000;
  while (latencies.length < rows && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]! * 10) / 10;
  process.stdout.write(`${JSON.stringify({ rows: latencies.length, p50: at(0.5), p99: at(0.99), max: at(1) })}\n`);
  sub.destroy();
  writer.destroy();
}

if (mode === 'flood') await flood(amount);
else if (mode === 'wsflood') await wsFlood(target!, amount);
else if (mode === 'probe') await probe(amount);
else throw new Error(`usage: fairness-peer.js flood PORT MS | wsflood URL MS | probe PORT ROWS (got ${mode})`);
