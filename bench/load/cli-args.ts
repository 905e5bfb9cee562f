// Tiny `--name value` / `--flag` parser shared by the bench child processes,
// which are spawned by a runner with a fixed argument list (no need for a
// general CLI library).

export type ArgSpec = Record<string, 'string' | 'number' | 'flag'>;
export type ParsedArgs = Record<string, string | number | boolean | undefined>;

export function parseArgs(argv: readonly string[], spec: ArgSpec, usage: string): ParsedArgs {
  const out: ParsedArgs = {};
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i]!;
    const name = key.startsWith('--') ? key.slice(2) : '';
    const kind = spec[name];
    if (kind === undefined) fail(`unknown option ${key}`, usage);
    if (kind === 'flag') {
      out[name] = true;
      continue;
    }
    const value = argv[++i];
    if (value === undefined) fail(`${key} needs a value`, usage);
    if (kind === 'number') {
      const n = Number(value);
      if (!Number.isFinite(n)) fail(`${key} must be a number, got ${value}`, usage);
      out[name] = n;
    } else {
      out[name] = value;
    }
  }
  return out;
}

export function fail(message: string, usage?: string): never {
  process.stderr.write(`${message}\n${usage ? `usage: ${usage}\n` : ''}`);
  process.exit(2);
}
