/**
 * Settings for `serve` from four layers, highest first: flags, `RG_*`
 * environment variables, the JSON `--config` file, defaults (options.ts).
 * Anything wrong becomes one ConfigError line naming the option, the value
 * and what is allowed; the CLI prints it and exits 2.
 */
import { readFileSync } from 'node:fs';
import type { Credential } from '../core/credentials.js';
import type { ClientTlsFiles, ServerTlsFiles } from '../bindings/tls-files.js';
import { openDoorRefusal } from '../core/open-door.js';
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

  const fromEnv = new Map<string, Raw[]>();
  for (const o of OPTIONS) {
    const text = env[o.env];
    // An empty variable counts as unset, as shells make them easily.
    if (text === undefined || text === '') continue;
    const source: Source = { kind: 'env', name: o.env };
    // A repeatable option's values are words (tokens have no spaces): one variable holds several.
    const texts = o.repeatable ? text.split(/\s+/).filter((t) => t !== '') : [text];
    fromEnv.set(o.key, texts.map((t) => ({ text: t, source })));
  }

  const configRaw = (flags.get('config') ?? fromEnv.get('config'))?.at(-1);
  const fromFile = new Map<string, Raw[]>();
  if (configRaw !== undefined) {
    const path = parseValue(OPTION_BY_KEY.get('config')!, configRaw) as string;
    for (const [key, raws] of readConfigFile(path, readFile)) fromFile.set(key, raws);
  }

  const values: Record<string, unknown> = {};
  const explicit = new Set<keyof GatewayConfig>();
  for (const o of OPTIONS) {
    const raws = flags.get(o.key) ?? fromEnv.get(o.key) ?? fromFile.get(o.key);
    if (raws !== undefined) explicit.add(o.key);
    if (o.repeatable) {
      values[o.key] = (raws ?? []).map((raw) => parseValue(o, raw));
      continue;
    }
    // Given twice, the last one counts.
    const chosen = raws?.at(-1) ?? (o.defaultText === null ? undefined : { text: o.defaultText, source: { kind: 'default' } as Source });
    values[o.key] = chosen === undefined ? null : parseValue(o, chosen);
  }
  // A follower serves the streams it hears: a declared stream of the same name would shadow one for v1 subscribers.
  if (values['synapseRedis'] !== null && !explicit.has('streams')) values['streams'] = [];
  const config = values as unknown as GatewayConfig;
  checkCombinations(config, explicit);
  return { config, help: false, explicit };
}

function parseFlags(argv: readonly string[]): { flags: Map<string, Raw[]>; help: boolean } {
  const flags = new Map<string, Raw[]>();
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
    } else if (spec.boolean) {
      text = 'true';
    } else {
      const next = argv[i + 1];
      if (next === undefined) throw new ConfigError(`${flag} needs a value: ${spec.valueName}`);
      text = next;
      i++;
    }
    const given = flags.get(spec.key) ?? [];
    given.push({ text, source: { kind: 'flag', flag } });
    flags.set(spec.key, given);
  }
  return { flags, help };
}

function readConfigFile(path: string, readFile: (p: string) => string): Map<string, Raw[]> {
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
  const out = new Map<string, Raw[]>();
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    const spec = OPTION_BY_KEY.get(key);
    if (spec === undefined || key === 'config') {
      const known = OPTIONS.filter((o) => o.key !== 'config').map((o) => o.key);
      throw new ConfigError(`--config '${path}': unknown setting '${key}'; expected one of ${known.join(', ')}`);
    }
    const source: Source = { kind: 'file', path };
    if (spec.repeatable && Array.isArray(value) && value.every((v) => typeof v === 'string')) {
      out.set(key, value.map((text: string) => ({ text, source })));
      continue;
    }
    let text: string;
    if (typeof value === 'string') text = value;
    else if (typeof value === 'number' && Number.isFinite(value)) text = String(value);
    else if (typeof value === 'boolean' && spec.boolean) text = String(value);
    else if (Array.isArray(value) && value.every((v) => typeof v === 'string')) text = value.join(',');
    else if (value === null && key === 'http') text = 'off';
    else if (value === null) continue; // null: not set here
    else {
      throw new ConfigError(
        `invalid ${describe(spec, source)}: ${JSON.stringify(value)}; expected a string or number (${spec.valueName})${spec.repeatable ? ', or a list of strings' : ''}`,
      );
    }
    out.set(key, [{ text, source }]);
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

/** Every token differs from every other, and lists only declared streams (or, following a Synapse deployment, any: its streams are learnt as they are heard). */
function checkTokens(config: GatewayConfig): void {
  const flagOf = (c: Credential): string => (c.role === 'writer' ? '--writer-token' : '--subscriber-token');
  const seen = new Map<string, Credential>();
  for (const c of [...config.writerToken, ...config.subscriberToken]) {
    const earlier = seen.get(c.secret);
    if (earlier !== undefined) {
      const what = earlier.role === c.role ? `two ${flagOf(c)} values have the same token` : '--subscriber-token equals --writer-token';
      throw new ConfigError(`${what}; expected every token to differ`);
    }
    seen.set(c.secret, c);
    const undeclared = config.synapseRedis !== null ? undefined : c.streams?.find((s) => !config.streams.includes(s));
    if (undeclared !== undefined) {
      throw new ConfigError(`${flagOf(c)} lists stream '${undeclared}', which is not declared; expected streams of --streams (${config.streams.join(',')})`);
    }
  }
}

/** Settings that are fine alone but not together. */
function checkCombinations(config: GatewayConfig, explicit: ReadonlySet<keyof GatewayConfig>): void {
  if (config.upstream === null) {
    for (const key of ['upstreamName', 'upstreamToken', 'upstreamQueueCommands', 'upstreamTls', 'upstreamTlsCa', 'upstreamTlsCert', 'upstreamTlsKey'] as const) {
      if (explicit.has(key)) {
        throw new ConfigError(`${OPTION_BY_KEY.get(key)!.flag} is set but --upstream is not; expected --upstream HOST:PORT with it`);
      }
    }
  } else if (config.writerToken.length > 0) {
    throw new ConfigError(
      `--writer-token cannot be combined with --upstream ${config.upstream.host}:${config.upstream.port}: in relay mode the upstream writes every stream; expected no --writer-token`,
    );
  }
  checkTokens(config);
  if ((config.synapseRedis === null) !== (config.synapseServerName === null)) {
    throw new ConfigError('--synapse-redis and --synapse-server-name go together: expected both (the Redis and the server_name whose channel is followed) or neither');
  }
  if (config.synapseRedis !== null && config.upstream !== null) {
    throw new ConfigError('--synapse-redis cannot be combined with --upstream: expected one source of streams');
  }
  if (config.synapseRedis !== null && config.log.kind === 'redis') {
    throw new ConfigError('--synapse-redis keeps its history in --log memory or file:DIR; expected one of those, not a Redis log');
  }
  const { listen, http } = config;
  if (http !== null && http.port !== 0 && http.port === listen.port && http.host === listen.host) {
    throw new ConfigError(`--http ${http.host}:${http.port} is the --listen address; expected another port (or off)`);
  }
  checkTlsFiles(config);
  const exposure = { subscriberCredential: config.subscriberToken.length > 0, insecure: config.insecure, anonymousRead: config.anonymousRead };
  const refusal =
    openDoorRefusal({ flag: '--listen', ...listen, tls: config.tlsCert !== null, ...exposure }) ??
    (http === null ? null : openDoorRefusal({ flag: '--http', ...http, tls: httpTlsFiles(config) !== null, ...exposure }));
  if (refusal !== null) throw new ConfigError(refusal);
}

/** A certificate comes with its key; a CA only with a certificate; the --http-tls-* ones only with --http. */
function checkTlsFiles(config: GatewayConfig): void {
  const pairs = [
    ['tlsCert', 'tlsKey', 'tlsCa'],
    ['httpTlsCert', 'httpTlsKey', 'httpTlsCa'],
  ] as const;
  for (const [cert, key, ca] of pairs) {
    const flag = (k: keyof GatewayConfig): string => OPTION_BY_KEY.get(k)!.flag;
    if ((config[cert] === null) !== (config[key] === null)) {
      const [given, missing] = config[cert] === null ? [key, cert] : [cert, key];
      throw new ConfigError(`${flag(given)} is set but ${flag(missing)} is not; expected both (a certificate and its private key)`);
    }
    if (config[ca] !== null && config[cert] === null) throw new ConfigError(`${flag(ca)} is set but ${flag(cert)} is not; expected ${flag(cert)} and ${flag(key)} with it`);
  }
  if (config.http === null && config.httpTlsCert !== null) throw new ConfigError('--http-tls-cert is set but --http is off; expected --http HOST:PORT with it');
}

/** The TCP listener's TLS files, or null for plaintext. */
export function tcpTlsFiles(config: GatewayConfig): ServerTlsFiles | null {
  if (config.tlsCert === null || config.tlsKey === null) return null;
  return { cert: config.tlsCert, key: config.tlsKey, ca: config.tlsCa, flagPrefix: '--tls' };
}

/** The HTTP listener's TLS files: its own --http-tls-* ones, else the --tls-* ones; null for plaintext. */
export function httpTlsFiles(config: GatewayConfig): ServerTlsFiles | null {
  if (config.httpTlsCert !== null && config.httpTlsKey !== null) {
    return { cert: config.httpTlsCert, key: config.httpTlsKey, ca: config.httpTlsCa, flagPrefix: '--http-tls' };
  }
  return tcpTlsFiles(config);
}

/** How the relay reaches its upstream: null for plaintext, else the files to read (each null when not given). */
export function upstreamTlsFiles(config: GatewayConfig): ClientTlsFiles | null {
  const { upstreamTls, upstreamTlsCa: ca, upstreamTlsCert: cert, upstreamTlsKey: key } = config;
  if (!upstreamTls && ca === null && cert === null && key === null) return null;
  return { ca, cert, key, flagPrefix: '--upstream-tls' };
}
