// The ceiling for the gateway's design: a bare relay that forwards every
// chunk a writer sends, untouched, to every subscriber (one write(chunk) per
// subscriber per chunk). No parsing of rows, no storage, no per-row checks.
//
//   node dist/bench/baselines/zero-copy-relay.js --port 0 --ready-file F
//
// A connection's first lines say what it is: `REPLICATE <stream> <token>`
// makes it a subscriber (answered once with `POSITION`), the first `RDATA`
// line makes it the writer, from that line on (`AUTH` before it is ignored).
// Subscribers must attach before the writer starts: chunks are forwarded
// as they come, so a late subscriber could start mid-line. Only one stream
// is relayed, whatever the names. Ready file and signals as naive-relay.ts.
//
// The writer is paused while any subscriber's socket is full, so memory stays
// bounded and throughput is what the subscribers can actually take. Nagle is
// off, as in the gateway: a forwarded chunk goes out at once (latency, W2).
import net from 'node:net';
import { fail, parseArgs } from '../load/cli-args.js';
import { writeReadyFile } from '../../src/bindings/ready-file.js';

const USAGE = 'zero-copy-relay.js --port P --ready-file F';
const args = parseArgs(process.argv.slice(2), { port: 'number', 'ready-file': 'string' }, USAGE);
const readyFile = args['ready-file'] as string | undefined;
if (readyFile === undefined) fail('--ready-file is required', USAGE);

const LF = 0x0a;
const subscribers = new Set<net.Socket>();
const writers = new Set<net.Socket>();
const full = new Set<net.Socket>(); // subscribers waiting for 'drain'
// The last two chunks relayed: enough to find the last whole line (a row is
// much shorter than a chunk) when a REPLICATE asks for the position.
let lastChunk: Buffer = Buffer.alloc(0);
let chunkBefore: Buffer = Buffer.alloc(0);

function relay(chunk: Buffer): void {
  chunkBefore = lastChunk;
  lastChunk = chunk;
  for (const subscriber of subscribers) {
    if (!subscriber.write(chunk) && !full.has(subscriber)) {
      full.add(subscriber);
      if (full.size === 1) for (const writer of writers) writer.pause();
      subscriber.once('drain', () => drained(subscriber));
    }
  }
}

function drained(subscriber: net.Socket): void {
  if (full.delete(subscriber) && full.size === 0) for (const writer of writers) writer.resume();
}

/** Token of the last whole RDATA line relayed, or 0. */
function position(): string {
  const tail = Buffer.concat([chunkBefore, lastChunk]);
  const end = tail.lastIndexOf(LF);
  if (end <= 0) return '0';
  const line = tail.toString('latin1', tail.lastIndexOf(LF, end - 1) + 1, end);
  return line.startsWith('RDATA ') ? line.split(' ', 3)[2]! : '0';
}

const server = net.createServer({ noDelay: true }, (socket) => {
  let head: Buffer = Buffer.alloc(0); // bytes before the connection's role is known; tiny
  const identify = (data: Buffer) => {
    head = Buffer.concat([head, data]);
    let start = 0;
    for (let lf = head.indexOf(LF); lf !== -1; lf = head.indexOf(LF, start)) {
      const line = head.toString('latin1', start, lf);
      if (line.startsWith('RDATA ')) {
        socket.off('data', identify);
        writers.add(socket);
        socket.on('data', relay);
        relay(head.subarray(start));
        return;
      }
      if (line.startsWith('REPLICATE ')) {
        socket.off('data', identify);
        socket.write(`POSITION ${line.split(' ')[1]} ${position()}\n`);
        subscribers.add(socket);
        return; // a subscriber's later commands are ignored
      }
      start = lf + 1;
    }
    head = head.subarray(start);
  };
  socket.on('data', identify);
  socket.on('close', () => {
    writers.delete(socket);
    subscribers.delete(socket);
    drained(socket);
  });
  socket.on('error', () => socket.destroy());
});

server.listen((args.port as number | undefined) ?? 0, '127.0.0.1', () => {
  const { port } = server.address() as net.AddressInfo;
  writeReadyFile(readyFile, { port, pid: process.pid }).catch((err: Error) => fail(err.message));
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
