/** Argument helpers shared by the client subcommands (tail, publish). */
import { parseArgs, type ParseArgsConfig } from 'node:util';

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

/** `HOST:PORT` (IPv6 as `[::1]:PORT`), or the reason it is not one. */
export function parseHostPort(text: string): { host: string; port: number } | string {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || port < 1 || port > 65535) return `bad --connect ${JSON.stringify(text)}: expected HOST:PORT`;
  return { host: m[1] ?? m[2]!, port };
}

/** Prints the problem and the help to stderr; the exit code for a usage error. */
export function usageError(command: string, problem: string, help: string): number {
  process.stderr.write(`replication-gateway ${command}: ${problem}\n\n${help}`);
  return 2;
}
