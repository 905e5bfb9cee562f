/**
 * Settings for `serve` from four layers, highest first: flags, `RG_*`
 * environment variables, the JSON `--config` file, defaults (options.ts).
 * Anything wrong becomes one ConfigError line naming the option, the value
 * and what is allowed; the CLI prints it and exits 2.
 */
import { readFileSync } from 'node:fs';
import { Invalid, OPTIONS, OPTION_BY_FLAG, OPTION_BY_KEY, type GatewayConfig, type OptionSpec } from './options.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Where a value came from, as the error message names it. */
type Source = { kind: 'flag'; flag: string } | { kind: 'env'; name: string } | { kind: 'file'; path: string } | { kind: 'default' };

interface Raw {
  text: string;
  source: Source;
}

export interface LoadedConfig {
  config: GatewayConfig;
  /** --help was asked for: print the help, nothing else. */
  help: boolean;
  /** Options set by something other than the defaults. */
  explicit: ReadonlySet<keyof GatewayConfig>;
}

export interface ConfigSources {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  /** Reads the config file (tests inject one). */
  readFile?: (path: string) => string;
}

export function loadConfig({ argv, env, readFile = (p) => readFileSync(p, 'utf8') }: ConfigSources): LoadedConfig {
  const { flags, help } = parseFlags(argv);
  if (help) return { config: undefined as unknown as GatewayConfig, help, explicit: new Set() };

  const fromEnv = new Map<string, Raw>();
  for (const o of OPTIONS) {
    const text = env[o.env];
    // An empty variable counts as unset, as shells make them easily.
    if (text !== undefined && text !== '') fromEnv.set(o.key, { text, source: { kind: 'env', name: o.env } });
  }

  const configRaw = flags.get('config') ?? fromEnv.get('config');
  const fromFile = new Map<string, Raw>();
  if (configRaw !== undefined) {
    const path = parseValue(OPTION_BY_KEY.get('config')!, configRaw) as string;
    for (const [key, raw] of readConfigFile(path, readFile)) fromFile.set(key, raw);
  }

  const values: Record<string, unknown> = {};
  const explicit = new Set<keyof GatewayConfig>();
  for (const o of OPTIONS) {
    const raw = flags.get(o.key) ?? fromEnv.get(o.key) ?? fromFile.get(o.key);
    if (raw !== undefined) explicit.add(o.key);
    const chosen = raw ?? (o.defaultText === null ? undefined : { text: o.defaultText, source: { kind: 'default' } as Source });
    values[o.key] = chosen === undefined ? null : parseValue(o, chosen);
  }
  const config = values as unknown as GatewayConfig;
  checkCombinations(config, explicit);
  return { config, help: false, explicit };
}

function parseFlags(argv: readonly string[]): { flags: Map<string, Raw>; help: boolean } {
  const flags = new Map<string, Raw>();
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument '${arg}': serve takes only --options (see --help)`);
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const spec = OPTION_BY_FLAG.get(flag);
    if (spec === undefined) throw new ConfigError(`unknown option ${flag} (see --help)`);
    let text: string;
    if (eq !== -1) {
      text = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined) throw new ConfigError(`${flag} needs a value: ${spec.valueName}`);
      text = next;
      i++;
    }
    flags.set(spec.key, { text, source: { kind: 'flag', flag } });
  }
  return { flags, help };
}

function readConfigFile(path: string, readFile: (p: string) => string): Map<string, Raw> {
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError(`--config '${path}': cannot read it (${e.code ?? e.message}); expected a readable JSON file`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`--config '${path}': not JSON (${(err as Error).message}); expected a JSON object of settings`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`--config '${path}': expected a JSON object of settings, got ${Array.isArray(parsed) ? 'an array' : typeof parsed}`);
  }
  const out = new Map<string, Raw>();
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    const spec = OPTION_BY_KEY.get(key);
    if (spec === undefined || key === 'config') {
      const known = OPTIONS.filter((o) => o.key !== 'config').map((o) => o.key);
      throw new ConfigError(`--config '${path}': unknown setting '${key}'; expected one of ${known.join(', ')}`);
    }
    const source: Source = { kind: 'file', path };
    let text: string;
    if (typeof value === 'string') text = value;
    else if (typeof value === 'number' && Number.isFinite(value)) text = String(value);
    else if (Array.isArray(value) && value.every((v) => typeof v === 'string')) text = value.join(',');
    else if (value === null && key === 'http') text = 'off';
    else if (value === null) continue; // null: not set here
    else {
      throw new ConfigError(
        `invalid ${describe(spec, source)}: ${JSON.stringify(value)}; expected a string or number (${spec.valueName})`,
      );
    }
    out.set(key, { text, source });
  }
  return out;
}

function parseValue(spec: OptionSpec, raw: Raw): unknown {
  const value = spec.parse(raw.text);
  if (value instanceof Invalid) {
    throw new ConfigError(`invalid ${describe(spec, raw.source)}: '${printable(raw.text)}'; expected ${value.allowed}`);
  }
  return value;
}

function describe(spec: OptionSpec, source: Source): string {
  switch (source.kind) {
    case 'flag':
      return spec.flag;
    case 'env':
      return `${spec.flag} (from ${source.name})`;
    case 'file':
      return `${spec.flag} (from "${spec.key}" in ${source.path})`;
    case 'default':
      return `${spec.flag} (default)`;
  }
}

function printable(text: string): string {
  const cut = text.length > 80 ? `${text.slice(0, 80)}...` : text;
  return cut.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Settings that are fine alone but not together. */
function checkCombinations(config: GatewayConfig, explicit: ReadonlySet<keyof GatewayConfig>): void {
  if (config.upstream === null) {
    for (const key of ['upstreamName', 'upstreamToken', 'upstreamQueueCommands'] as const) {
      if (explicit.has(key)) {
        throw new ConfigError(`${OPTION_BY_KEY.get(key)!.flag} is set but --upstream is not; expected --upstream HOST:PORT with it`);
      }
    }
  } else if (config.writerToken !== null) {
    throw new ConfigError(
      `--writer-token cannot be combined with --upstream ${config.upstream.host}:${config.upstream.port}: in relay mode the upstream writes every stream; expected no --writer-token`,
    );
  }
  if ((config.synapseRedis === null) !== (config.synapseServerName === null)) {
    throw new ConfigError('--synapse-redis and --synapse-server-name go together: expected both (the Redis and the server_name whose channel is followed) or neither');
  }
  if (config.synapseRedis !== null && config.upstream !== null) {
    throw new ConfigError('--synapse-redis cannot be combined with --upstream: expected one source of streams');
  }
  if (config.synapseRedis !== null && config.log.kind === 'redis') {
    throw new ConfigError('--synapse-redis keeps its history in --log memory or file:DIR; expected one of those, not a Redis log');
  }
  if (config.writerToken !== null && config.writerToken === config.subscriberToken) {
    throw new ConfigError('--subscriber-token equals --writer-token; expected two different tokens');
  }
  const { listen, http } = config;
  if (http !== null && http.port !== 0 && http.port === listen.port && http.host === listen.host) {
    throw new ConfigError(`--http ${http.host}:${http.port} is the --listen address; expected another port (or off)`);
  }
}
