/** Argument helpers shared by the client subcommands (tail, publish). */
import { parseArgs, type ParseArgsConfig } from 'node:util';
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
