/** Argument helpers shared by the client subcommands (tail, publish). */

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
