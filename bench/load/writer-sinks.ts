// Where the bench writer's rows go, one sink per protocol. A sink takes
// chunks of RDATA lines (rows.ts), framed first by its frame() (done ahead
// of the measured run when the writer precomputes), and says through the
// promise send() returns when it can take more.
//
// - replication: the lines as they are, on a socket, after `AUTH` if given.
// - nats / redis with a client library (`nats`, `ioredis`): one publish per
//   line (the line without its LF is the payload), redis pipelined per chunk.
// - nats / redis raw: the same publishes framed as wire bytes
//   (`PUB <subject> <n>\r\n<line>\r\n`, RESP `PUBLISH <channel> <line>`) and
//   written like replication chunks. On a 2-core machine the client
//   libraries' per-message cost, not the server, limits the fan-out rate;
//   raw framing removes the writer from the measurement.
import net from 'node:net';
import { once } from 'node:events';
import { connect as natsConnect } from 'nats';
import { Redis } from 'ioredis';

export type SinkProtocol = 'replication' | 'nats' | 'redis';

export interface SinkOptions {
  protocol: SinkProtocol;
  raw: boolean;
  host: string;
  port: number;
  auth: string | undefined;
  /** Replication stream; nats subject; redis channel. */
  stream: string;
  /** Called when the server refuses or drops the writer; must not return. */
  die: (message: string) => never;
}

export interface Sink {
  /** Bytes to hand to send() for a chunk of RDATA lines; pure, so it can run before connecting. */
  frame(lines: Buffer): Buffer;
  send(framed: Buffer, rows: number): Promise<void> | void;
  /** Resolves once the server has everything sent (replication: once it is all handed to the kernel). */
  finish(): Promise<void>;
  /** Disconnects; not part of the timed run. */
  close(): Promise<void>;
}

const NATS_FLUSH_EVERY_BYTES = 2 * 1024 * 1024;
const REDIS_PIPELINES_IN_FLIGHT = 8;
const CLOSE_WAIT_MS = 5000;
const LF = 0x0a;

/** The frame function alone, for precomputing before the sink exists. */
export function frameFor(o: Pick<SinkOptions, 'protocol' | 'raw' | 'stream'>): (lines: Buffer) => Buffer {
  if (!o.raw || o.protocol === 'replication') return (lines) => lines;
  const header =
    o.protocol === 'nats'
      ? (n: number) => `PUB ${o.stream} ${n}\r\n`
      : (n: number) => `*3\r\n$7\r\nPUBLISH\r\n$${Buffer.byteLength(o.stream)}\r\n${o.stream}\r\n$${n}\r\n`;
  return (lines) => framePublishes(lines, header);
}

function framePublishes(lines: Buffer, header: (payloadBytes: number) => string): Buffer {
  const out = Buffer.allocUnsafe(lines.length * 2 + 64 * 1024);
  let end = 0;
  let start = 0;
  for (let lf = lines.indexOf(LF); lf !== -1; lf = lines.indexOf(LF, start)) {
    end += out.write(header(lf - start), end, 'latin1');
    end += lines.copy(out, end, start, lf);
    end += out.write('\r\n', end, 'latin1');
    start = lf + 1;
  }
  return out.subarray(0, end);
}

export async function openSink(o: SinkOptions): Promise<Sink> {
  switch (o.protocol) {
    case 'replication':
      return replicationSink(o);
    case 'nats':
      return o.raw ? natsRawSink(o) : natsClientSink(o);
    case 'redis':
      return o.raw ? redisRawSink(o) : redisClientSink(o);
  }
}

/**
 * A socket that writes framed chunks honouring backpressure; `onLine` sees
 * each line the server sends back. The socket closing before end() is fatal.
 */
async function socketSink(o: SinkOptions, onLine: (line: string) => void, hello: string) {
  const socket = net.connect({ host: o.host, port: o.port });
  socket.setNoDelay(true);
  let closing = false;
  let partial = '';
  socket.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop()!;
    for (const line of lines) onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
  });
  socket.on('error', (err) => o.die(`connection to ${o.host}:${o.port} failed: ${err.message}`));
  socket.on('close', () => {
    if (!closing) o.die('server closed the connection');
  });
  await once(socket, 'connect');
  if (hello !== '') socket.write(hello);
  /** Ends our side; resolves when everything written is handed to the kernel. */
  const end = async (): Promise<void> => {
    if (closing) return;
    closing = true;
    socket.end();
    if (!socket.writableFinished) await once(socket, 'finish');
  };
  /** Ends our side, then waits (bounded) for the server to close its side. */
  const close = async (): Promise<void> => {
    if (socket.closed) return;
    const closed = once(socket, 'close');
    await end();
    const timer = setTimeout(() => socket.destroy(), CLOSE_WAIT_MS);
    await closed;
    clearTimeout(timer);
  };
  return {
    socket,
    send(framed: Buffer): Promise<void> | void {
      if (!socket.write(framed)) return once(socket, 'drain').then(() => undefined);
    },
    end,
    close,
  };
}

async function replicationSink(o: SinkOptions): Promise<Sink> {
  // The server may answer (SERVER, PING, forwarded client commands); only its ERROR matters here.
  const s = await socketSink(
    o,
    (line) => {
      if (line.startsWith('ERROR')) o.die(`server sent ${line}`);
    },
    o.auth !== undefined ? `AUTH ${o.auth}\n` : '',
  );
  return {
    frame: (lines) => lines,
    send: (framed) => s.send(framed),
    finish: () => s.end(),
    close: () => s.close(),
  };
}

async function natsRawSink(o: SinkOptions): Promise<Sink> {
  let pong: (() => void) | null = null;
  const connect = JSON.stringify({ verbose: false, pedantic: false, name: 'bench-writer', auth_token: o.auth });
  const s = await socketSink(
    o,
    (line) => {
      if (line === 'PING') s.socket.write('PONG\r\n');
      else if (line === 'PONG') pong?.();
      else if (line.startsWith('-ERR')) o.die(`nats-server sent ${line}`);
    },
    `CONNECT ${connect}\r\n`,
  );
  return {
    frame: frameFor(o),
    send: (framed) => s.send(framed),
    async finish() {
      // The PONG comes after the server has processed every PUB before the PING.
      const ponged = new Promise<void>((resolve) => (pong = resolve));
      s.socket.write('PING\r\n');
      await ponged;
    },
    close: () => s.close(),
  };
}

async function redisRawSink(o: SinkOptions): Promise<Sink> {
  // Each PUBLISH is answered by one `:<receivers>` line; count them to know when redis has all.
  let published = 0;
  let sent = 0;
  let allAnswered: (() => void) | null = null;
  const s = await socketSink(
    o,
    (line) => {
      if (line.startsWith(':')) {
        if (++published === sent) allAnswered?.();
      } else if (line.startsWith('-')) o.die(`redis-server sent ${line}`);
    },
    o.auth !== undefined ? `*2\r\n$4\r\nAUTH\r\n$${Buffer.byteLength(o.auth)}\r\n${o.auth}\r\n` : '',
  );
  return {
    frame: frameFor(o),
    send(framed, rows) {
      sent += rows;
      return s.send(framed);
    },
    async finish() {
      if (published < sent) await new Promise<void>((resolve) => (allAnswered = resolve));
    },
    close: () => s.close(),
  };
}

async function natsClientSink(o: SinkOptions): Promise<Sink> {
  const nc = await natsConnect({
    servers: `${o.host}:${o.port}`,
    reconnect: false,
    ...(o.auth !== undefined ? { token: o.auth } : {}),
  });
  void nc.closed().then((err) => {
    if (err) o.die(`nats connection closed: ${err.message}`);
  });
  // nats.js queues publishes without bound; a flush (PING/PONG) every few MiB
  // keeps the queue bounded, and awaiting the previous one keeps the pipe full.
  let flushing: Promise<void> = Promise.resolve();
  let sinceFlush = 0;
  return {
    frame: (lines) => lines,
    async send(lines) {
      let start = 0;
      for (let lf = lines.indexOf(LF); lf !== -1; lf = lines.indexOf(LF, start)) {
        nc.publish(o.stream, lines.subarray(start, lf));
        start = lf + 1;
      }
      sinceFlush += lines.length;
      if (sinceFlush >= NATS_FLUSH_EVERY_BYTES) {
        sinceFlush = 0;
        await flushing;
        flushing = nc.flush();
      }
    },
    async finish() {
      await flushing;
      await nc.flush();
    },
    close: () => nc.close(),
  };
}

async function redisClientSink(o: SinkOptions): Promise<Sink> {
  const redis = new Redis({
    host: o.host,
    port: o.port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    ...(o.auth !== undefined ? { password: o.auth } : {}),
  });
  redis.on('error', (err: Error) => o.die(`redis: ${err.message}`));
  await redis.connect();
  const inFlight: Promise<void>[] = [];
  const exec = async (pipeline: ReturnType<Redis['pipeline']>) => {
    for (const [err] of (await pipeline.exec()) ?? []) if (err) o.die(`redis PUBLISH failed: ${err.message}`);
  };
  return {
    frame: (lines) => lines,
    async send(lines) {
      const pipeline = redis.pipeline();
      let start = 0;
      for (let lf = lines.indexOf(LF); lf !== -1; lf = lines.indexOf(LF, start)) {
        pipeline.publish(o.stream, lines.subarray(start, lf));
        start = lf + 1;
      }
      inFlight.push(exec(pipeline));
      if (inFlight.length >= REDIS_PIPELINES_IN_FLIGHT) await inFlight.shift();
    },
    async finish() {
      await Promise.all(inFlight);
    },
    close: () => redis.quit().then(() => undefined),
  };
}
