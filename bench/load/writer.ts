// Bench writer: sends --rows rows (tokens start+1 … start+N, see rows.ts) to
// one server and exits. Spawned by the scenario runner:
//
//   node dist/bench/load/writer.js --port P --rows N [--protocol replication|nats|redis] [--raw]
//     [--auth TOKEN] [--rate R] [--stream events] [--start-token T] [--host 127.0.0.1]
//     [--instance NAME] [--channel NAME]
//
// replication: `AUTH <token>` if given, then the RDATA lines in ~64 KiB writes,
//   waiting for 'drain' whenever write() says the socket is full.
// nats: each RDATA line (without its LF) published to subject <stream>;
// redis: PUBLISHed to channel <stream>. With the `nats` / `ioredis` clients,
//   or with --raw as wire bytes on a plain socket (see writer-sinks.ts).
// --instance NAME: rows in today's Synapse dialect (`RDATA <stream> NAME <token> ...`),
//   as a Synapse writer publishes them; --channel: the nats subject or redis
//   channel instead of <stream> (a Synapse deployment's channel is its server name).
// --rate R: R rows/s in ~1 ms ticks, each row carrying the time it was sent,
//   for the subscriber's --latency. --rate 0 (default): as fast as the
//   server takes them, rows produced before connecting (see precompute).
//
// Prints one JSON line on stdout at the end and exits 0:
//   {"protocol","raw","rows","seconds","rowsPerSec","bytes","startToken","lastToken","firstRowAt","lastRowAt"}
// (seconds: first send until the server has everything: replication, all
// bytes handed to the kernel; nats, a PING answered; redis, every PUBLISH
// answered). Then it closes the connection and waits up to 5 s for the server's FIN.
// Exit 1 with a message on stderr if the server refuses or drops us; 2 on bad arguments.
import { setTimeout as sleep } from 'node:timers/promises';
import { fail, parseArgs } from './cli-args.js';
import { CHUNK_BYTES, epochMs, rowChunk } from './rows.js';
import { frameFor, openSink, type SinkProtocol } from './writer-sinks.js';

const USAGE =
  'writer.js --port P --rows N [--protocol replication|nats|redis] [--raw] [--auth TOKEN] [--rate R] ' +
  '[--stream events] [--start-token T] [--host H] [--instance NAME] [--channel NAME]';
const TICK_MS = 1;
const PRECOMPUTED_MAX_BYTES = 256 * 1024 * 1024;

const a = parseArgs(
  process.argv.slice(2),
  {
    host: 'string', port: 'number', auth: 'string', protocol: 'string', raw: 'flag', rows: 'number', rate: 'number',
    stream: 'string', 'start-token': 'number', instance: 'string', channel: 'string',
  },
  USAGE,
);
const port = a.port as number | undefined;
const total = a.rows as number | undefined;
const protocol = (a.protocol as string | undefined) ?? 'replication';
const raw = a.raw === true;
const rate = (a.rate as number | undefined) ?? 0;
const stream = (a.stream as string | undefined) ?? 'events';
const instance = a.instance as string | undefined;
const channel = (a.channel as string | undefined) ?? stream;
/** The words between RDATA and the token. */
const rowWords = instance === undefined ? stream : `${stream} ${instance}`;
const startToken = (a['start-token'] as number | undefined) ?? 0;
if (port === undefined || total === undefined) fail('--port and --rows are required', USAGE);
if (protocol !== 'replication' && protocol !== 'nats' && protocol !== 'redis') fail(`unknown --protocol ${protocol}`, USAGE);
if (raw && protocol === 'replication') fail('--raw applies to --protocol nats and redis', USAGE);

function die(message: string): never {
  process.stderr.write(`writer: ${message}\n`);
  process.exit(1);
}

const frame = frameFor({ protocol: protocol as SinkProtocol, raw, stream: channel });

/** The next rows as the sink's bytes, produced now so their send time is now. */
function chunkAt(firstToken: number, maxRows: number): { framed: Buffer; rows: number } {
  const { buf, rows } = rowChunk(firstToken, maxRows, epochMs(), rowWords, CHUNK_BYTES);
  return { framed: frame(buf), rows };
}

/**
 * With --rate 0 the rows are produced (and framed) before connecting, up to
 * PRECOMPUTED_MAX_BYTES, the rest on the fly, so the measured run is only
 * sends and the writer is not what limits throughput. Their send time is
 * then the time they were produced: use --rate to measure latency.
 */
function precompute(): { framed: Buffer; rows: number }[] {
  const chunks: { framed: Buffer; rows: number }[] = [];
  let rows = 0;
  let bytes = 0;
  while (rows < total! && bytes < PRECOMPUTED_MAX_BYTES) {
    const chunk = chunkAt(startToken + rows + 1, total! - rows);
    chunks.push(chunk);
    rows += chunk.rows;
    bytes += chunk.framed.length;
  }
  return chunks;
}

async function main(): Promise<void> {
  const precomputed = rate > 0 ? [] : precompute();
  let nextPrecomputed = 0;
  const sink = await openSink({
    protocol: protocol as SinkProtocol,
    raw,
    host: (a.host as string | undefined) ?? '127.0.0.1',
    port: port!,
    auth: a.auth as string | undefined,
    stream: channel,
    die,
  });

  let sent = 0;
  let bytes = 0;
  const firstRowAt = epochMs();
  let lastProgressAt = firstRowAt;
  let rowsAtProgress = 0;

  const sendUpTo = async (until: number) => {
    while (sent < until) {
      const { framed, rows } =
        nextPrecomputed < precomputed.length
          ? precomputed[nextPrecomputed++]!
          : chunkAt(startToken + sent + 1, until - sent);
      const pending = sink.send(framed, rows);
      if (pending) await pending;
      sent += rows;
      bytes += framed.length;
      const now = epochMs();
      if (now - lastProgressAt >= 1000) {
        const perSec = Math.round(((sent - rowsAtProgress) * 1000) / (now - lastProgressAt));
        process.stderr.write(`writer: ${sent}/${total} rows (${perSec} rows/s)\n`);
        lastProgressAt = now;
        rowsAtProgress = sent;
      }
    }
  };

  if (rate > 0) {
    const t0 = performance.now();
    while (sent < total!) {
      await sendUpTo(Math.min(total!, Math.floor((rate * (performance.now() - t0)) / 1000)));
      if (sent < total!) await sleep(TICK_MS);
    }
  } else {
    await sendUpTo(total!);
  }
  await sink.finish();
  const lastRowAt = epochMs();
  await sink.close();
  const seconds = (lastRowAt - firstRowAt) / 1000;
  const round3 = (x: number) => Math.round(x * 1000) / 1000;
  process.stdout.write(
    JSON.stringify({
      protocol,
      raw,
      rows: sent,
      seconds: round3(seconds),
      rowsPerSec: seconds > 0 ? Math.round(sent / seconds) : null,
      bytes,
      startToken,
      lastToken: startToken + sent,
      firstRowAt: round3(firstRowAt),
      lastRowAt: round3(lastRowAt),
    }) + '\n',
    () => process.exit(0),
  );
}

main().catch((err: Error) => die(err.stack ?? err.message));
