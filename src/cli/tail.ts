/**
 * `replication-gateway tail`: follows streams and prints every row as one
 * JSON line on stdout, `{"stream":"events","token":12,"row":[...]}` (a
 * batch's rows all carry its token). The row is the server's JSON bytes,
 * spliced in unparsed. With `--instance` the streams are followed per writer
 * instance (today's Synapse dialect, from a gateway following a Synapse
 * deployment) and each line also says `"instance"`. Connection events go to stderr as pino JSON lines.
 * Reconnects and resumes until SIGINT or SIGTERM (exit 0), the reader of
 * stdout leaving (exit 0), or a refusal retrying cannot cure (exit 2).
 */
import { destination, pino } from 'pino';
import { ReplicationClient } from '../client.js';
import type { ProtocolError } from '../core/errors.js';
import { isInstanceWord } from '../core/synapse-name.js';
import { PING_TIMEOUT_INTERVALS } from '../core/keep-alive.js';
import { parseReplicateFrom } from '../core/token-text.js';
import { clientTls, parseCommandLine, parseConnect, TLS_OPTIONS, tlsHelp, usageError } from './client-args.js';

const OPTIONS = {
  connect: { type: 'string' },
  stream: { type: 'string', multiple: true },
  instance: { type: 'string', multiple: true },
  'server-name': { type: 'string' },
  name: { type: 'string', default: 'replication-gateway-tail' },
  auth: { type: 'string' },
  'ping-interval-ms': { type: 'string', default: '5000' },
  ...TLS_OPTIONS,
  help: { type: 'boolean', short: 'h', default: false },
} as const;

const HELP = `usage: replication-gateway tail --connect HOST:PORT --stream NAME[:TOKEN] ... [options]

Prints each row of the streams as a JSON line {"stream":..,"token":..,"row":..}
on stdout ({"stream":..,"instance":..,"token":..,"row":..} with --instance);
connection events go to stderr. Resumes across drops; exits 0 on
SIGINT or SIGTERM, or when the reader of stdout leaves (tail | head); exits 2
when the server refuses it (a bad --auth, an unknown or forbidden stream, a
wrong --server-name): retrying would not help.

options:
  --connect HOST:PORT     the server to follow (required; no default)
  --stream NAME[:TOKEN]   a stream to follow, after TOKEN (default: from NOW); repeatable, at least one
  --instance NAME|*       follow the streams per writer instance, this one or * for all; repeatable (default: none)
                          (today's Synapse dialect, from a gateway started with --synapse-redis)
  --server-name N         insist on this SERVER name (default: accept any)
  --name N                the NAME sent to the server (default: replication-gateway-tail)
  --auth TOKEN            send AUTH TOKEN first (default: none; a Synapse master knows no AUTH)
  --ping-interval-ms MS   keep-alive interval; the timeout is 5 times it (default: 5000)
${tlsHelp(26)}  -h, --help              this text
`;

export async function run(argv: string[]): Promise<number> {
  const values = parseCommandLine('tail', argv, OPTIONS, HELP);
  if (typeof values === 'number') return values;
  if (values.connect === undefined) return usageError('tail', '--connect is required', HELP);
  if (values.stream === undefined || values.stream.length === 0) return usageError('tail', 'give at least one --stream', HELP);
  const target = parseConnect(values.connect);
  if (typeof target === 'string') return usageError('tail', target, HELP);
  const instanceNames = values.instance ?? [];
  const badInstance = instanceNames.find((i) => !isInstanceWord(i));
  if (badInstance !== undefined) return usageError('tail', `bad --instance ${JSON.stringify(badInstance)}: expected a writer instance's name, or *`, HELP);
  if (instanceNames.includes('*') && instanceNames.length > 1) {
    return usageError('tail', '--instance * already means every writer instance: give it alone, or name the instances', HELP);
  }
  const streams: Record<string, number | 'NOW'> = {};
  for (const spec of values.stream) {
    const m = /^([^:\s]+)(?::(.*))?$/.exec(spec);
    const from = m?.[2] === undefined ? 'NOW' : parseReplicateFrom(m[2]);
    if (m === null || from === null) {
      return usageError('tail', `bad --stream ${JSON.stringify(spec)}: expected NAME or NAME:TOKEN (TOKEN: 0 to 2^53-1, or NOW)`, HELP);
    }
    streams[m[1]!] = from;
  }
  const pingIntervalMs = Number(values['ping-interval-ms']);
  if (!Number.isFinite(pingIntervalMs) || pingIntervalMs <= 0) return usageError('tail', 'bad --ping-interval-ms', HELP);
  const tlsChoice = clientTls(values);
  if ('problem' in tlsChoice) return usageError('tail', tlsChoice.problem, HELP);
  const { tls } = tlsChoice;

  const logger = pino({ name: 'tail' }, destination(2));
  const client = new ReplicationClient({
    host: target.host,
    port: target.port,
    ...(tls !== undefined ? { tls } : {}),
    name: values.name,
    serverName: values['server-name'],
    auth: values.auth,
    ...(instanceNames.length === 0
      ? { streams }
      : { instances: Object.entries(streams).flatMap(([stream, from]) => instanceNames.map((instance) => ({ stream, instance, from }))) }),
    pingIntervalMs,
    pingTimeoutMs: pingIntervalMs * PING_TIMEOUT_INTERVALS,
    logger,
  });
  client.on('error', (err) => logger.warn({ code: err.code }, err.message));
  client.on('position', (stream, token, instance) => logger.info(instance === null ? { stream, token } : { stream, instance, token }, 'position'));

  const out = process.stdout;
  let waitingForDrain = false;
  client.on('rows', (stream, token, rows, batch) => {
    const instance = batch.instance === null ? '' : `"instance":${JSON.stringify(batch.instance)},`;
    const head = `{"stream":${JSON.stringify(stream)},${instance}"token":${token},"row":`;
    const chunks: Buffer[] = [];
    for (const r of rows) chunks.push(Buffer.from(head), r.rowJson, CLOSE_LINE);
    if (!out.write(Buffer.concat(chunks)) && !waitingForDrain) {
      // stdout is a pipe to a slower reader: stop reading the socket until it drains.
      waitingForDrain = true;
      client.pause();
      out.once('drain', () => {
        waitingForDrain = false;
        client.resume();
      });
    }
  });

  // The reader of stdout left (`tail | head`): stop quietly, as cat does.
  let readerGone = false;
  const refusal = await new Promise<ProtocolError | null>((resolve) => {
    const stop = (signal: string): void => {
      logger.info({ signal }, 'stopping');
      resolve(null);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    out.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      readerGone = true;
      resolve(null);
    });
    // A bad credential, an unknown or forbidden stream, a wrong server: retrying will not help.
    client.once('stopped', resolve);
    client.start();
  });
  await client.close();
  if (refusal !== null) {
    process.stderr.write(`replication-gateway tail: refused (${refusal.code}): ${refusal.message}\n`);
    return 2;
  }
  if (!readerGone) await new Promise<void>((resolve) => out.write('', () => resolve()));
  return 0;
}

const CLOSE_LINE = Buffer.from('}\n');
