// The naive Node line relay of BENCH.md, the baseline the gateway is
// measured against: what a reasonable first attempt looks like. It splits
// input with toString() + split('\n') and writes each RDATA line to each
// subscriber with its own socket.write(). No storage, no catch-up.
//
//   node dist/bench/baselines/naive-relay.js --port 0 --ready-file F
//
// A connection that sends `REPLICATE <stream> <token>` is a subscriber and is
// answered `POSITION <stream> <last token relayed>`; RDATA lines from any
// connection are relayed to the subscribers of their stream; AUTH and
// anything else is accepted and ignored. Writes {"port":P,"pid":…} to the
// ready file once listening on 127.0.0.1; exits 0 on SIGTERM/SIGINT.
import net from 'node:net';
import { fail, parseArgs } from '../load/cli-args.js';
import { writeReadyFile } from '../../src/bindings/ready-file.js';

const USAGE = 'naive-relay.js --port P --ready-file F';
const args = parseArgs(process.argv.slice(2), { port: 'number', 'ready-file': 'string' }, USAGE);
const readyFile = args['ready-file'] as string | undefined;
if (readyFile === undefined) fail('--ready-file is required', USAGE);

const subscribers = new Map<string, Set<net.Socket>>();
const positions = new Map<string, string>();

const server = net.createServer((socket) => {
  let rest = '';
  socket.on('data', (data) => {
    const lines = (rest + data.toString()).split('\n');
    rest = lines.pop()!;
    for (const line of lines) {
      const [command, stream = '', token = ''] = line.split(' ', 3);
      if (command === 'RDATA') {
        positions.set(stream, token);
        for (const subscriber of subscribers.get(stream) ?? []) subscriber.write(line + '\n');
      } else if (command === 'REPLICATE') {
        if (!subscribers.has(stream)) subscribers.set(stream, new Set());
        subscribers.get(stream)!.add(socket);
        socket.write(`POSITION ${stream} ${positions.get(stream) ?? 0}\n`);
      }
    }
  });
  socket.on('close', () => {
    for (const set of subscribers.values()) set.delete(socket);
  });
  socket.on('error', () => socket.destroy());
});

server.listen((args.port as number | undefined) ?? 0, '127.0.0.1', () => {
  const { port } = server.address() as net.AddressInfo;
  writeReadyFile(readyFile, { port, pid: process.pid }).catch((err: Error) => fail(err.message));
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
