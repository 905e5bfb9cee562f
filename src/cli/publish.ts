/**
 * `replication-gateway publish`: reads JSON rows from stdin, one per line, and
 * writes them to a stream as a writer, one token per row, tokens rising
 * (src/writer.ts: nothing sent is lost or doubled across reconnects). A line
 * that is not JSON is reported on stderr with its number and skipped. Exits
 * once the gateway holds every row, printing a one-line JSON summary on
 * stdout; logs (pino JSON) go to stderr. A refusal exits 2.
 */
import { createInterface } from 'node:readline';
import { destination, pino } from 'pino';
import type { ProtocolError } from '../core/errors.js';
import { PING_TIMEOUT_INTERVALS } from '../core/keep-alive.js';
import { parseTokenText } from '../core/token-text.js';
import { ReplicationWriter } from '../writer.js';
import { clientTls, parseCommandLine, parseConnect, TLS_OPTIONS, tlsHelp, usageError } from './client-args.js';

const OPTIONS = {
  connect: { type: 'string' },
  auth: { type: 'string' },
  stream: { type: 'string' },
  'start-token': { type: 'string' },
  'server-name': { type: 'string' },
  name: { type: 'string', default: 'replication-gateway-publish' },
  'max-unstored-rows': { type: 'string', default: '100000' },
  'ping-interval-ms': { type: 'string', default: '5000' },
  ...TLS_OPTIONS,
  help: { type: 'boolean', short: 'h', default: false },
} as const;

const HELP = `usage: replication-gateway publish --connect HOST:PORT --auth WRITER_TOKEN --stream NAME [options] < rows.jsonl

Reads one JSON row per line from stdin and writes each as its own token, tokens
rising. A line that is not JSON is reported on stderr with its line number and
skipped; blank lines are ignored. Reconnects and re-sends whatever the gateway
did not store. When stdin ends and the gateway holds every row, prints a JSON
summary {"rows","firstToken","lastToken","seconds","rowsPerSecond","badLines","alreadyStored"}
on stdout and exits 0; exits 2, with the reason on stderr, when the gateway
refuses the writer (a bad --auth, an unknown or forbidden stream, a wrong
--server-name): retrying would not help.

options:
  --connect HOST:PORT        the gateway (required; no default)
  --auth WRITER_TOKEN        the writer credential, sent as AUTH (required; no default)
  --stream NAME              the stream to write (required; no default)
  --start-token N            token of the first row (default: the gateway's head + 1); rows whose
                             token the gateway already holds are skipped, so a re-run resumes
  --server-name N            insist on this SERVER name (default: accept any)
  --name N                   the NAME sent to the gateway (default: replication-gateway-publish)
  --max-unstored-rows N      rows sent but not yet known stored before reading pauses (default: 100000)
  --ping-interval-ms MS      keep-alive interval; the timeout is 5 times it (default: 5000)
${tlsHelp(29)}  -h, --help                 this text
`;

export async function run(argv: string[]): Promise<number> {
  const values = parseCommandLine('publish', argv, OPTIONS, HELP);
  if (typeof values === 'number') return values;
  for (const required of ['connect', 'auth', 'stream'] as const) {
    if (values[required] === undefined) return usageError('publish', `--${required} is required`, HELP);
  }
  const target = parseConnect(values.connect!);
  if (typeof target === 'string') return usageError('publish', target, HELP);
  const startToken = values['start-token'] === undefined ? undefined : parseTokenText(values['start-token']);
  const maxUnstoredRows = wholeNumber(values['max-unstored-rows']);
  const pingIntervalMs = wholeNumber(values['ping-interval-ms']);
  if (startToken === null || maxUnstoredRows === null || !maxUnstoredRows || !pingIntervalMs) {
    return usageError('publish', 'numbers must be whole and non-negative (and the bounds above 0)', HELP);
  }
  const stream = values.stream!;
  const tlsChoice = clientTls(values);
  if ('problem' in tlsChoice) return usageError('publish', tlsChoice.problem, HELP);
  const { tls } = tlsChoice;

  const logger = pino({ name: 'publish' }, destination(2));
  const writer = new ReplicationWriter({
    host: target.host,
    port: target.port,
    ...(tls !== undefined ? { tls } : {}),
    auth: values.auth!,
    name: values.name,
    serverName: values['server-name'],
    streams: [stream],
    startToken,
    maxUnstoredRows,
    pingIntervalMs,
    pingTimeoutMs: pingIntervalMs * PING_TIMEOUT_INTERVALS,
    logger,
  });
  writer.on('error', (err) => logger.warn({ code: err.code }, err.message));
  // A bad credential, an unknown or forbidden stream, a wrong server: the writer stops, retrying will not help.
  const refused = new Promise<ProtocolError>((resolve) => writer.once('stopped', resolve));
  writer.start();

  const started = Date.now();
  let rows = 0;
  let badLines = 0;
  let firstToken: number | null = null;
  let lastToken: number | null = null;
  let lineNo = 0;
  const input = createInterface({ input: process.stdin, crlfDelay: Infinity });
  const publishAll = (async () => {
    for await (const line of input) {
      lineNo++;
      if (line.trim() === '') continue;
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch (err) {
        badLines++;
        logger.error({ line: lineNo }, `line ${lineNo}: not JSON (${(err as Error).message}); skipped`);
        continue;
      }
      const token = await writer.publish(stream, [row]);
      firstToken ??= token;
      lastToken = token;
      rows++;
    }
    await writer.flush();
  })();
  const outcome = await Promise.race([publishAll.then(() => null), refused]);
  input.close();
  await writer.close();
  if (outcome !== null) {
    logger.error({ code: outcome.code, reason: outcome.message }, 'the gateway refused this writer');
    process.stderr.write(`replication-gateway publish: refused (${outcome.code}): ${outcome.message}\n`);
    return 2;
  }
  const seconds = (Date.now() - started) / 1000;
  const summary = {
    rows,
    firstToken,
    lastToken,
    seconds,
    rowsPerSecond: seconds > 0 ? Math.round(rows / seconds) : rows,
    badLines,
    alreadyStored: writer.alreadyStored,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  return 0;
}

function wholeNumber(text: string): number | null {
  return /^\d{1,16}$/.test(text) ? Number(text) : null;
}
