// Bench subscriber: one process holding --count connections that each
// subscribe to the rows stream and check, cheaply, that they get every row
// in order exactly once (see row-checker.ts). Spawned by the scenario runner:
//
//   node dist/bench/load/subscriber.js --port P --count S --expect N
//     [--protocol replication|ws|ws-msgpack|nats|redis] [--stream events] [--from NOW|token]
//     [--auth TOKEN] [--slow K --pause-ms MS] [--latency] [--timeout-s T]
//     [--ready-file F] [--drop-row K] [--host 127.0.0.1] [--instance NAME] [--channel NAME]
//     [--msgpack-reader decode|scan]
//
// Contract with the runner:
// - Ready: once every connection is subscribed (replication: its first
//   POSITION; nats: the PONG after SUB; redis: the SUBSCRIBE reply) the
//   process writes {"ready":true,"pid":…,"subscribers":S} to --ready-file
//   (atomically) and the runner may start the writer.
// - Result: exactly one JSON line on stdout at the end. Exit 0 with
//   "ok":true when every fast connection got its N rows; exit 1 with
//   "ok":false and "error" (also on stderr) on a gap, duplicate, reorder,
//   unexpected ERROR or close, or timeout. Exit 2: bad arguments.
// - --slow K: the last K connections stop reading for --pause-ms once
//   subscribed, then read again; their ERROR line and EOF are recorded
//   (times are when this process read them, so after the pause), their
//   rows are checked for order but not required, and they are left out of
//   the throughput figures.
//
// --protocol ws: the replication protocol over the gateway's WebSocket bridge
// (ws://host:P/replication with P its --http port; `ws` package, text mode,
// no compression); each message's lines are checked as a TCP chunk's are.
// --protocol ws-msgpack: the same bridge in binary mode (subprotocol
// replication.msgpack): AUTH and REPLICATE go as MessagePack frames, and each
// message is decoded to values with msgpackr (msgpack-frames.ts), so the
// decoding is part of the reader's cost; numbered RDATA frames are checked
// by the same consecutive-token rule, `bytes` counts MessagePack bytes.
// --msgpack-reader scan: walk each frame's bytes for its token instead
// (FrameScanner), as the text reader scans lines, so the reader's decoding
// is out of the figure; not with --latency (it reads no send times).
//
// The result line also carries startedAt and allReadyAt (epoch ms): when
// the process started and when its last connection got its first POSITION,
// i.e. (with --from a token) finished its catch-up and went live.
//
// --instance NAME: today's Synapse dialect (W9): `REPLICATE <stream> NAME <from>`
// to the gateway, and rows (from it or, with --protocol redis, straight off
// a Synapse channel) carry the instance before the token. --channel: the
// redis channel or nats subject instead of <stream>.
//
// The nats and redis connections speak those wire protocols directly on a
// raw socket instead of through the client libraries, so that reading costs
// the same (one indexOf walk) for every system compared.
import net from 'node:net';
import { WebSocket } from 'ws';
import { fail, parseArgs } from './cli-args.js';
import { FrameReader, FrameScanner, helloFrames } from './msgpack-frames.js';
import { writeReadyFile } from '../../src/bindings/ready-file.js';
import { parseReplicateFrom } from '../../src/core/token-text.js';
import { RowChecker, Samples } from './row-checker.js';
import { epochMs } from './rows.js';

const USAGE =
  'subscriber.js --port P --count S --expect N [--protocol replication|ws|ws-msgpack|nats|redis] [--stream events] ' +
  '[--from NOW|token] [--auth TOKEN] [--slow K --pause-ms MS] [--latency] [--timeout-s T] ' +
  '[--ready-file F] [--drop-row K] [--host H] [--instance NAME] [--channel NAME] [--msgpack-reader decode|scan]';
const MAX_CONNECTS_IN_FLIGHT = 256; // keeps thousands of connects within the server's accept backlog

const a = parseArgs(
  process.argv.slice(2),
  {
    host: 'string', port: 'number', count: 'number', expect: 'number', protocol: 'string', stream: 'string',
    from: 'string', auth: 'string', slow: 'number', 'pause-ms': 'number', latency: 'flag', 'timeout-s': 'number',
    'ready-file': 'string', 'drop-row': 'number', instance: 'string', channel: 'string', 'msgpack-reader': 'string',
  },
  USAGE,
);
const host = (a.host as string | undefined) ?? '127.0.0.1';
const port = a.port as number | undefined;
const count = (a.count as number | undefined) ?? 1;
const expect = a.expect as number | undefined;
const protocol = (a.protocol as string | undefined) ?? 'replication';
const stream = (a.stream as string | undefined) ?? 'events';
const instance = a.instance as string | undefined;
const channel = (a.channel as string | undefined) ?? stream;
const auth = a.auth as string | undefined;
const slowCount = (a.slow as number | undefined) ?? 0;
const pauseMs = a['pause-ms'] as number | undefined;
const timeoutS = (a['timeout-s'] as number | undefined) ?? 300;
const readyFile = a['ready-file'] as string | undefined;
const dropRow = a['drop-row'] as number | undefined;
if (port === undefined || expect === undefined) fail('--port and --expect are required', USAGE);
const PROTOCOLS = ['replication', 'ws', 'ws-msgpack', 'nats', 'redis'];
if (!PROTOCOLS.includes(protocol)) fail(`unknown --protocol ${protocol}`, USAGE);
if (instance !== undefined && protocol === 'ws-msgpack') fail('--instance applies to text protocols (replication, ws, nats, redis)', USAGE);
const msgpackReader = (a['msgpack-reader'] as string | undefined) ?? 'decode';
if (msgpackReader !== 'decode' && msgpackReader !== 'scan') fail(`--msgpack-reader is decode or scan, got ${msgpackReader}`, USAGE);
if (msgpackReader === 'scan' && (protocol !== 'ws-msgpack' || a.latency === true)) fail('--msgpack-reader scan needs --protocol ws-msgpack and no --latency', USAGE);
if (slowCount < 0 || slowCount > count) fail('--slow must be between 0 and --count', USAGE);
if (slowCount > 0 && pauseMs === undefined) fail('--slow needs --pause-ms', USAGE);
// ws and ws-msgpack are the replication protocol over the gateway's WebSocket bridge (--port: its --http port).
const replicationLike = protocol === 'replication' || protocol === 'ws' || protocol === 'ws-msgpack';
const fromArg = (a.from as string | undefined) ?? (replicationLike ? 'NOW' : '0');
const from = parseReplicateFrom(fromArg);
if (from === null) fail(`--from must be NOW or a token, got ${fromArg}`, USAGE);
const fromNow = from === 'NOW';
// nats and redis have no POSITION to learn the start from: the runner names it (the writer's --start-token).
if (fromNow && !replicationLike) fail('--from NOW needs --protocol replication, ws or ws-msgpack; give a token', USAGE);
const fromToken = fromNow ? null : from;

const latency = a.latency === true ? new Samples() : undefined;
const startedAt = epochMs();
const cpuAtStart = process.cpuUsage(); // leaves node's own start-up out of cpuSeconds
let finished = false;
let readyCount = 0;
let allReadyAt = 0;
let connecting = 0;
let nextToOpen = 0;

interface Conn {
  index: number;
  slow: boolean;
  socket: Link;
  checker: RowChecker;
  ready: boolean;
  firstRowAt: number;
  lastRowAt: number;
  doneSeen: boolean;
  closed: string | null;
  closedAt: number;
  errorLine: string | null;
  errorAt: number;
  pausedAt: number;
  resumedAt: number;
}

const conns: Conn[] = [];

/** What a connection needs of its transport: a net.Socket as it is, a WebSocket through a small adapter. */
interface Link {
  write(data: string | Buffer): void;
  pause(): void;
  resume(): void;
  destroy(): void;
}

const LF_BUFFER = Buffer.from('\n');

/** Bytes that subscribe, and which non-row lines the protocol must look at. */
function handshake(): { hello: string | Buffer; controlFirstBytes: string } {
  switch (protocol) {
    case 'ws-msgpack':
      // Frames are decoded whole, not scanned as lines: controlFirstBytes is unused.
      return { hello: helloFrames(auth, stream, fromNow ? 'NOW' : fromToken!), controlFirstBytes: '' };
    case 'replication':
    case 'ws':
      return {
        hello: (auth !== undefined ? `AUTH ${auth}\n` : '') + `REPLICATE ${stream} ${instance === undefined ? '' : `${instance} `}${fromArg}\n`,
        controlFirstBytes: 'PE', // POSITION, ERROR
      };
    case 'nats': {
      const connect = JSON.stringify({ verbose: false, pedantic: false, name: 'bench-subscriber', auth_token: auth });
      // The PONG to this PING tells us the SUB is in place.
      return { hello: `CONNECT ${connect}\r\nSUB ${channel} 1\r\nPING\r\n`, controlFirstBytes: 'P-' };
    }
    case 'redis':
      return {
        hello: (auth !== undefined ? resp(['AUTH', auth]) : '') + resp(['SUBSCRIBE', channel]),
        controlFirstBytes: ':-', // the SUBSCRIBE reply's count, errors
      };
    default:
      return fail(`unknown --protocol ${protocol}`);
  }
}

function resp(words: string[]): string {
  return `*${words.length}\r\n` + words.map((w) => `$${Buffer.byteLength(w)}\r\n${w}\r\n`).join('');
}

function text(buf: Buffer, start: number, end: number): string {
  return buf.toString('utf8', start, end).replace(/\r$/, '');
}

function onControl(conn: Conn, buf: Buffer, start: number, end: number): void {
  const line = text(buf, start, end);
  if (line.startsWith('ERROR') || line.startsWith('-')) {
    if (conn.errorLine === null) {
      conn.errorLine = line;
      conn.errorAt = epochMs();
    }
    if (!conn.slow) conn.checker.fail(`server sent ${line}`);
    return;
  }
  if (replicationLike) {
    if (!conn.ready && line.startsWith(`POSITION ${stream} `)) {
      conn.checker.setBase(Number(line.slice(line.lastIndexOf(' ') + 1)));
      markReady(conn);
    }
  } else if (protocol === 'nats') {
    if (line === 'PING') conn.socket.write('PONG\r\n');
    else if (line === 'PONG' && !conn.ready) markReady(conn);
  } else if (!conn.ready) {
    markReady(conn); // redis: `:1`, the subscription count that ends the SUBSCRIBE reply
  }
}

/** ws-msgpack: a decoded frame other than RDATA. */
function onFrame(conn: Conn, frame: unknown[]): void {
  const name = frame[0];
  if (name === 'ERROR') {
    // As the text line reads, so the slow consumer's cut is recognised alike.
    const line = `ERROR ${String(frame[1])}`;
    if (conn.errorLine === null) {
      conn.errorLine = line;
      conn.errorAt = epochMs();
    }
    if (!conn.slow) conn.checker.fail(`server sent ${line}`);
  } else if (name === 'POSITION' && !conn.ready && frame[1] === stream) {
    conn.checker.setBase(Number(frame[2]));
    markReady(conn);
  }
}

function markReady(conn: Conn): void {
  conn.ready = true;
  if (conn.slow) {
    conn.socket.pause();
    conn.pausedAt = epochMs();
    setTimeout(() => {
      conn.resumedAt = epochMs();
      conn.socket.resume();
    }, pauseMs);
  }
  if (++readyCount === count) {
    allReadyAt = epochMs();
    process.stderr.write(`subscriber: all ${count} connections subscribed\n`);
    if (readyFile !== undefined) {
      writeReadyFile(readyFile, { ready: true, pid: process.pid, subscribers: count }).catch((err: Error) =>
        finish(`cannot write ready file: ${err.message}`),
      );
    }
  }
}

function open(index: number, hello: string | Buffer, controlFirstBytes: string): void {
  const slow = index >= count - slowCount;
  const conn: Conn = {
    index, slow, socket: null as unknown as Link, ready: false, firstRowAt: 0, lastRowAt: 0, doneSeen: false,
    closed: null, closedAt: 0, errorLine: null, errorAt: 0, pausedAt: 0, resumedAt: 0,
    checker: new RowChecker({
      label: `subscriber ${index}${slow ? ' (slow)' : ''}`,
      expect: expect!,
      base: fromToken,
      controlFirstBytes,
      instance: instance !== undefined,
      onControl: (buf, start, end) => onControl(conn, buf, start, end),
      ...(index === 0 && dropRow !== undefined ? { dropToken: dropRow } : {}),
      ...(latency !== undefined && !slow ? { latency } : {}),
    }),
  };
  conns[index] = conn;
  connecting++;
  const onOpen = () => {
    conn.socket.write(hello);
    connecting--;
    openMore(hello, controlFirstBytes);
  };
  const onError = (err: NodeJS.ErrnoException) => {
    if (conn.closed === null) conn.closed = err.code ?? err.message;
  };
  const onClose = () => {
    conn.closed ??= 'EOF';
    conn.closedAt = epochMs();
    if (!conn.ready) conn.checker.fail(`connection closed before subscribing (${conn.closed})`);
    else if (!conn.slow && !conn.checker.done) {
      conn.checker.fail(`connection closed (${conn.closed}) after ${conn.checker.rows} of ${expect} rows`);
    }
    check(conn);
  };
  if (protocol === 'ws') {
    // Text mode: each message holds whole lines, fed to the checker as they are.
    const ws = new WebSocket(`ws://${host}:${port}/replication`, { perMessageDeflate: false });
    conn.socket = {
      write: (text) => ws.send(text),
      pause: () => ws.pause(),
      resume: () => ws.resume(),
      destroy: () => ws.terminate(),
    };
    ws.on('open', onOpen);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) return conn.checker.fail('binary message in text mode');
      onData(conn, data);
      if (data.length > 0 && data[data.length - 1] !== 0x0a) onData(conn, LF_BUFFER);
    });
    ws.on('error', onError);
    ws.on('close', onClose);
    return;
  }
  if (protocol === 'ws-msgpack') {
    const ws = new WebSocket(`ws://${host}:${port}/replication`, ['replication.msgpack'], { perMessageDeflate: false });
    const onControlFrame = (frame: unknown[]): void => onFrame(conn, frame);
    const reader =
      msgpackReader === 'scan'
        ? new FrameScanner(conn.checker, onControlFrame)
        : new FrameReader(conn.checker, onControlFrame, latency !== undefined && !slow);
    conn.socket = {
      write: (data) => ws.send(data),
      pause: () => ws.pause(),
      resume: () => ws.resume(),
      destroy: () => ws.terminate(),
    };
    ws.on('open', onOpen);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const now = epochMs();
      const rowsBefore = conn.checker.rows;
      if (isBinary) reader.feed(data, now);
      else conn.checker.fail(`text message in msgpack mode: ${data.toString('utf8', 0, 80)}`);
      afterRead(conn, rowsBefore, now);
    });
    ws.on('error', onError);
    ws.on('close', onClose);
    return;
  }
  const socket = net.connect({ host, port: port! });
  conn.socket = socket;
  socket.setNoDelay(true);
  socket.on('connect', onOpen);
  socket.on('data', (chunk: Buffer) => onData(conn, chunk));
  socket.on('error', onError);
  socket.on('close', onClose);
}

function openMore(hello: string | Buffer, controlFirstBytes: string): void {
  while (nextToOpen < count && connecting < MAX_CONNECTS_IN_FLIGHT) open(nextToOpen++, hello, controlFirstBytes);
}

function onData(conn: Conn, chunk: Buffer): void {
  const now = epochMs();
  const checker = conn.checker;
  const rowsBefore = checker.rows;
  checker.feed(chunk, now);
  afterRead(conn, rowsBefore, now);
}

/** Row times and completion after a read that may have carried rows. */
function afterRead(conn: Conn, rowsBefore: number, now: number): void {
  const checker = conn.checker;
  if (checker.rows !== rowsBefore) {
    if (conn.firstRowAt === 0) conn.firstRowAt = now;
    conn.lastRowAt = now;
  }
  if (checker.failure !== null || (checker.done && !conn.doneSeen)) {
    conn.doneSeen = checker.done;
    check(conn);
  }
}

function check(conn: Conn): void {
  if (conn.checker.failure !== null) return finish(conn.checker.failure);
  if (conns.length < count) return;
  for (const c of conns) {
    if (c.slow ? c.closed === null && !c.checker.done : !c.checker.done) return;
  }
  finish(null);
}

function result(error: string | null): object {
  const fast = conns.filter((c) => c !== undefined && !c.slow);
  const firstRowAt = Math.min(...fast.map((c) => c.firstRowAt || Infinity));
  const lastRowAt = Math.max(...fast.map((c) => c.lastRowAt));
  const seconds = Number.isFinite(firstRowAt) && lastRowAt > firstRowAt ? (lastRowAt - firstRowAt) / 1000 : 0;
  const deliveredRows = fast.reduce((n, c) => n + c.checker.rows, 0);
  const bytes = fast.reduce((n, c) => n + c.checker.bytes, 0);
  const lines = fast.reduce((n, c) => n + c.checker.lines, 0);
  const cpu = process.cpuUsage(cpuAtStart);
  const since = (c: Conn, t: number) => (t === 0 ? null : Math.round(t - c.pausedAt));
  return {
    ok: error === null,
    ...(error !== null ? { error } : {}),
    protocol,
    subscribers: count,
    expect,
    startedAt: round(startedAt),
    // replication: when the last connection got its POSITION, i.e. ended its catch-up (--from a token) and went live
    allReadyAt: allReadyAt > 0 ? round(allReadyAt) : null,
    rowsPerSub: conns.map((c) => (c === undefined ? 0 : c.checker.rows)),
    firstRowAt: Number.isFinite(firstRowAt) ? round(firstRowAt) : null,
    lastRowAt: lastRowAt > 0 ? round(lastRowAt) : null,
    seconds: round(seconds),
    deliveredRows,
    bytes,
    lines,
    rowsPerSec: seconds > 0 ? Math.round(deliveredRows / seconds) : null,
    mbPerSec: seconds > 0 ? round(bytes / seconds / 1e6) : null,
    latencyMs: latency?.summary() ?? null,
    cpuSeconds: round((cpu.user + cpu.system) / 1e6),
    slow: conns
      .filter((c) => c !== undefined && c.slow)
      .map((c) => ({
        index: c.index,
        rows: c.checker.rows,
        lastToken: c.checker.lastToken,
        pauseMs,
        error: c.errorLine,
        cut: c.errorLine !== null && c.errorLine.includes('Failed to keep up'),
        // ms since this connection stopped reading; read after the pause ends
        errorAtMs: since(c, c.errorAt),
        closed: c.closed,
        closedAtMs: since(c, c.closedAt),
        resumedAtMs: since(c, c.resumedAt),
      })),
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function finish(error: string | null): void {
  if (finished) return;
  finished = true;
  if (error !== null) process.stderr.write(`subscriber: FAILED: ${error}\n`);
  process.stdout.write(JSON.stringify(result(error)) + '\n', () => process.exit(error === null ? 0 : 1));
  for (const c of conns) c?.socket.destroy();
}

const { hello, controlFirstBytes } = handshake();
openMore(hello, controlFirstBytes);

setTimeout(() => {
  const rows = conns.map((c) => (c === undefined ? 0 : c.checker.rows));
  const complete = rows.filter((n) => n >= expect!).length;
  // Thousands of connections would make a message nobody reads: list them only when few.
  const detail = rows.length <= 20 ? `rows per subscriber: [${rows.join(',')}]` : `fewest rows ${Math.min(...rows)}, most ${Math.max(...rows)}`;
  finish(`timeout after ${timeoutS} s: expected ${expect} rows each, ${complete}/${count} complete, ${detail}`);
}, timeoutS * 1000).unref();

// Progress for the person watching; at most once a second, silent until rows flow.
let lastDelivered = 0;
setInterval(() => {
  const delivered = conns.reduce((n, c) => n + (c?.checker.rows ?? 0), 0);
  if (delivered === lastDelivered) return;
  const done = conns.filter((c) => c?.checker.done).length;
  process.stderr.write(
    `subscriber: ${delivered} rows delivered (+${delivered - lastDelivered}/s), ${done}/${count} complete, ` +
      `${((epochMs() - startedAt) / 1000).toFixed(1)} s\n`,
  );
  lastDelivered = delivered;
}, 1000).unref();
