/** Argument helpers shared by the client subcommands (tail, publish). */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadClientTls, TlsFilesError, type ClientTlsOptions } from '../bindings/tls-files.js';
import { parseHostPort, type HostPort } from '../core/host-port.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type Values<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: false }>>['values'];

/**
 * Parses a subcommand's flags. Returns the values, or the exit code when
 * there is nothing more to do: 0 after printing --help, 2 after a usage error.
 */
export function parseCommandLine<O extends Options>(command: string, argv: string[], options: O, help: string): Values<O> | number {
  let values: Values<O>;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }));
  } catch (err) {
    return usageError(command, (err as Error).message, help);
  }
  if ((values as { help?: boolean }).help) {
    process.stdout.write(help);
    return 0;
  }
  return values;
}

/** `--connect HOST:PORT` (IPv6 as `[::1]:PORT`), or the reason it is not one. */
export function parseConnect(text: string): HostPort | string {
  return parseHostPort(text, 1) ?? `bad --connect ${JSON.stringify(text)}: expected HOST:PORT (IPv6 as [::1]:PORT) with a port from 1 to 65535`;
}

/** Prints the problem and the help to stderr; the exit code for a usage error. */
export function usageError(command: string, problem: string, help: string): number {
  process.stderr.write(`replication-gateway ${command}: ${problem}\n\n${help}`);
  return 2;
}

/** The TLS flags of tail and publish (their values feed clientTls). */
export const TLS_OPTIONS = {
  tls: { type: 'boolean', default: false },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
} as const;

/** The help lines of TLS_OPTIONS, the descriptions starting at column `width`. */
export function tlsHelp(width: number): string {
  const rows = [
    ['--tls', "connect with TLS, checking the server's certificate against the system's CAs"],
    ['--tls-ca FILE', 'trust this PEM CA instead (implies --tls)'],
    ['--tls-cert FILE', 'a PEM client certificate, for a server that requires one (with --tls-key; implies --tls)'],
    ['--tls-key FILE', 'the PEM key of --tls-cert'],
  ];
  return rows.map(([flag, text]) => `  ${flag!.padEnd(width - 2)}${text}\n`).join('');
}

/**
 * The client's `tls` option from --tls, --tls-ca, --tls-cert and --tls-key
 * (undefined: plaintext), or the reason the files cannot be used.
 */
export function clientTls(values: {
  tls?: boolean;
  'tls-ca'?: string;
  'tls-cert'?: string;
  'tls-key'?: string;
}): { tls: true | ClientTlsOptions | undefined } | { problem: string } {
  const ca = values['tls-ca'] ?? null;
  const cert = values['tls-cert'] ?? null;
  const key = values['tls-key'] ?? null;
  if (!values.tls && ca === null && cert === null && key === null) return { tls: undefined };
  try {
    const options = loadClientTls({ ca, cert, key, flagPrefix: '--tls' });
    return { tls: Object.keys(options).length === 0 ? true : options };
  } catch (err) {
    if (err instanceof TlsFilesError) return { problem: err.message };
    throw err;
  }
}
