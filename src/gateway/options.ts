/**
 * Every setting of `replication-gateway serve`, once: its flag, its
 * `RG_<UPPER_SNAKE>` variable, its JSON config key, its default, and how a
 * text value is checked. config.ts layers the sources; --help and
 * docs/operations.md are written from this table.
 */
import { WS_ENGINE_CHOICES, type WsEngineChoice } from '../bindings/edge-engine.js';
import { parseTokenSpec, type Credential } from '../core/credentials.js';
import { parseHostPort, type HostPort } from '../core/host-port.js';
import { SYNAPSE_STREAMS } from '../core/hub-types.js';
import { parseSynapseRedisUrl, type SynapseRedisSpec } from '../core/synapse-redis-url.js';
import type { FsyncPolicy, LogSpec } from './log-store.js';

export type { HostPort } from '../core/host-port.js';

export interface GatewayConfig {
  listen: HostPort;
  /** null: --http off. */
  http: HostPort | null;
  /** A listener serving only /metrics, /healthz and /connections; null: none. */
  monitor: HostPort | null;
  /** null: `localhost`, or in relay mode the upstream's own name. */
  serverName: string | null;
  streams: string[];
  /** Every --writer-token (none: no writers). */
  writerToken: Credential[];
  /** Every --subscriber-token (any: every connection must AUTH). */
  subscriberToken: Credential[];
  /** Origins (besides the --http listener's own) whose pages may open /replication; null: none. */
  allowOrigins: string[] | null;
  /** The cookie a browser's WebSocket upgrade carries its token in; null: cookies are not read. */
  authCookie: string | null;
  /** What serves --http: uWebSockets.js, `ws` over node:http, or auto (uWS where a native build loads). */
  wsEngine: WsEngineChoice;
  /** Where streams are kept (--log). */
  log: LogSpec;
  /** The Redis password when --log names Redis without one (best from RG_REDIS_PASSWORD, off the command line). */
  redisPassword: string | null;
  /** When a file log forces written lines to the disk (--fsync). */
  fsync: FsyncPolicy;
  retentionRows: number;
  retentionBytes: number;
  /** File log: segments last written longer ago are deleted (ms); null: no age limit. */
  retentionAgeMs: number | null;
  maxQueueCommands: number;
  maxQueueBytes: number;
  /** A connection whose socket takes nothing this long, with bytes waiting for it, is cut. */
  maxStallMs: number;
  maxLineBytes: number;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  /** Bytes held in unfinished lines across all connections at most. */
  maxPartialLineBytes: number;
  /** A connection holding an unfinished line this long is closed. */
  lineTimeoutMs: number;
  /** Worker threads encoding large in-process publishes and MessagePack frames; null: cores - 1, at least 1. */
  encodeThreads: number | null;
  upstream: HostPort | null;
  upstreamName: string | null;
  upstreamToken: string | null;
  upstreamQueueCommands: number;
  /** Connect to the upstream with TLS (also when an --upstream-tls-* file is given). */
  upstreamTls: boolean;
  upstreamTlsCa: string | null;
  upstreamTlsCert: string | null;
  upstreamTlsKey: string | null;
  /** PEM files of the TCP listener's TLS; null: plaintext. With tlsCa, client certificates are required. */
  tlsCert: string | null;
  tlsKey: string | null;
  tlsCa: string | null;
  /** The HTTP listener's own TLS files; null: the --tls-* ones. */
  httpTlsCert: string | null;
  httpTlsKey: string | null;
  httpTlsCa: string | null;
  /** Off loopback, plaintext listeners are meant (src/core/open-door.ts). */
  insecure: boolean;
  /** Off loopback, reading without a subscriber token is meant. */
  anonymousRead: boolean;
  config: string | null;
  logLevel: string;
  readyFile: string | null;
  shutdownTimeoutMs: number;
  /** Follow a current Synapse deployment on its Redis (--synapse-redis); null: not. */
  synapseRedis: SynapseRedisSpec | null;
  /** Its server_name: the channel followed. */
  synapseServerName: string | null;
  /** The password when --synapse-redis gives none (best from RG_SYNAPSE_REDIS_PASSWORD). */
  synapseRedisPassword: string | null;
  /** Also subscribe `<server_name>/USER_IP` (it carries access tokens; never served). */
  synapseUserIp: boolean;
  /** Each instance's HTTP replication listener (--synapse-replication-url), for gap-fill; null: none (gaps are recorded). */
  synapseReplicationUrls: Record<string, string> | null;
  /** Synapse's worker_replication_secret, sent as `Authorization: Bearer`. */
  synapseReplicationSecret: string | null;
}

/** A value the parser refused: `allowed` completes "expected ...". */
export class Invalid {
  constructor(readonly allowed: string) {}
}

export interface OptionSpec {
  key: keyof GatewayConfig;
  /** `--listen` */
  flag: string;
  /** `RG_LISTEN` */
  env: string;
  /** What the value looks like in --help: `HOST:PORT`. */
  valueName: string;
  /** The default as text (parsed like any other value), or null for none. */
  defaultText: string | null;
  help: string;
  /** Takes effect on SIGHUP without a restart (the rest need one). */
  live?: true;
  /**
   * Given any number of times: the value is the list of every one given
   * (flags repeated, RG_ variable words separated by spaces, a JSON list),
   * from the highest source that gives any; none: an empty list.
   */
  repeatable?: true;
  /** A switch: the flag alone means true (`--insecure`); as text, true/false (also 1/0, yes/no). */
  boolean?: true;
  /** Text (flag, env, or a JSON string/number) to the value, or Invalid. */
  parse(text: string): unknown;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const MAX_INT = Number.MAX_SAFE_INTEGER;

function hostPort(text: string, minPort: number, what: string): HostPort | Invalid {
  return parseHostPort(text, minPort) ?? new Invalid(`HOST:PORT with a port from ${minPort} to 65535 (IPv6 as [::1]:PORT)${what}`);
}

function count(min: number, unit: string): (text: string) => number | Invalid {
  return (text) => {
    const allowed = `a whole number of ${unit} from ${min} to ${MAX_INT}`;
    if (!/^\d[\d_]*$/.test(text)) return new Invalid(allowed);
    const n = Number(text.replace(/_/g, ''));
    return Number.isSafeInteger(n) && n >= min ? n : new Invalid(allowed);
  };
}

const SIZE_UNITS: Record<string, number> = { '': 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

function size(min: number): (text: string) => number | Invalid {
  return (text) => {
    const allowed = `a whole number of bytes from ${min}, optionally with KiB, MiB or GiB (e.g. 65536 or 64MiB)`;
    const m = /^(\d[\d_]*)\s*(kib|mib|gib)?$/i.exec(text);
    if (m === null) return new Invalid(allowed);
    const n = Number(m[1]!.replace(/_/g, '')) * SIZE_UNITS[(m[2] ?? '').toLowerCase()]!;
    return Number.isSafeInteger(n) && n >= min ? n : new Invalid(allowed);
  };
}

/** A word sent on the wire (a name, a credential): no spaces or control characters. */
function word(what: string): (text: string) => string | Invalid {
  return (text) => (/^[^\s\x00-\x1f\x7f]+$/.test(text) ? text : new Invalid(`${what}: a non-empty word without spaces`));
}

function tokenSpec(role: Credential['role']): (text: string) => Credential | Invalid {
  return (text) => {
    try {
      return parseTokenSpec(text, role);
    } catch {
      return new Invalid('TOKEN, TOKEN:stream,stream or TOKEN:stream,+page (a non-empty word without spaces)');
    }
  };
}

function file(text: string): string | Invalid {
  return text.length > 0 ? text : new Invalid('a file path');
}

function yesNo(text: string): boolean | Invalid {
  const t = text.toLowerCase();
  if (t === 'true' || t === '1' || t === 'yes') return true;
  if (t === 'false' || t === '0' || t === 'no') return false;
  return new Invalid('true or false (the flag alone means true)');
}

/** `event_persister1=http://10.0.0.7:9034,master=http://10.0.0.5:9093`. */
function replicationUrls(text: string): Record<string, string> | Invalid {
  const allowed = 'INSTANCE=http://HOST:PORT (or https://), comma-separated, one per instance';
  const out: Record<string, string> = {};
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const instance = part.slice(0, eq).trim();
    const url = part.slice(eq + 1).trim();
    if (eq <= 0 || !/^[A-Za-z0-9_.-]+$/.test(instance) || instance in out) return new Invalid(allowed);
    try {
      const u = new URL(url);
      if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '') return new Invalid(allowed);
    } catch {
      return new Invalid(allowed);
    }
    out[instance] = url;
  }
  return out;
}

function streamList(text: string): string[] | Invalid {
  const allowed = "a comma-separated list of stream names (letters, digits, '_', '.', '-'; not ALL; no repeats)";
  const names = text.split(',').map((s) => s.trim());
  if (names.length === 0 || names.some((n) => !/^[A-Za-z0-9_.-]+$/.test(n) || n === 'ALL')) return new Invalid(allowed);
  if (new Set(names).size !== names.length) return new Invalid(allowed);
  return names;
}

const LOG_CHOICES =
  'memory, file:DIR (a directory for the durable file log), redis://[USER:PASSWORD@]HOST[:PORT][/PREFIX], rediss://... (TLS) or unix:/PATH/TO/redis.sock[?prefix=PREFIX] (PREFIX: letters, digits, _ . : -)';
const REDIS_PREFIX = /^[A-Za-z0-9_.:-]+$/;
const DEFAULT_REDIS_PREFIX = 'rg';

/** `memory`, `file:/var/lib/rg`, `redis://127.0.0.1:6379/rg`, `rediss://:pw@redis.internal/rg`, `unix:/run/redis/redis.sock?prefix=rg`. */
function logSpec(text: string): LogSpec | Invalid {
  if (text === 'memory') return { kind: 'memory' };
  if (text.startsWith('file:') && text.length > 'file:'.length) return { kind: 'file', dir: text.slice('file:'.length) };
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return new Invalid(LOG_CHOICES);
  }
  const common = { kind: 'redis' as const, username: null, password: null };
  if (url.protocol === 'unix:') {
    const prefix = url.searchParams.get('prefix') ?? DEFAULT_REDIS_PREFIX;
    if (!url.pathname.startsWith('/') || url.hash !== '' || !REDIS_PREFIX.test(prefix)) return new Invalid(LOG_CHOICES);
    return { ...common, address: { path: decodeURIComponent(url.pathname) }, tls: false, prefix };
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return new Invalid(LOG_CHOICES);
  const prefix = url.pathname === '' || url.pathname === '/' ? DEFAULT_REDIS_PREFIX : url.pathname.slice(1);
  if (url.hostname === '' || url.search !== '' || url.hash !== '' || !REDIS_PREFIX.test(prefix)) return new Invalid(LOG_CHOICES);
  return {
    ...common,
    address: { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port === '' ? 6379 : Number(url.port) },
    tls: url.protocol === 'rediss:',
    username: url.username === '' ? null : decodeURIComponent(url.username),
    password: url.password === '' ? null : decodeURIComponent(url.password),
    prefix,
  };
}

/** `always`, `interval:MS` or `never`. */
function fsyncPolicy(text: string): FsyncPolicy | Invalid {
  const allowed = 'always, interval:MS (MS from 1 to 60000) or never';
  if (text === 'always' || text === 'never') return { kind: text };
  const m = /^interval:(\d{1,5})$/.exec(text);
  if (m === null) return new Invalid(allowed);
  const ms = Number(m[1]);
  return ms >= 1 && ms <= 60_000 ? { kind: 'interval', ms } : new Invalid(allowed);
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `7d`, `12h`, `90m`, `30s`, `500ms`, a bare number of ms, or `off`. */
function duration(text: string): number | null | Invalid {
  if (text === 'off') return null;
  const m = /^(\d[\d_]*)(ms|s|m|h|d)?$/.exec(text);
  const n = m === null ? NaN : Number(m[1]!.replace(/_/g, '')) * DURATION_UNITS[m[2] ?? 'ms']!;
  return Number.isSafeInteger(n) && n >= 1 ? n : new Invalid('a duration like 7d, 12h, 90m, 30s or 500ms (a bare number is ms), or off');
}

function originList(text: string): string[] | Invalid {
  const allowed = 'a comma-separated list of origins like https://dash.example (scheme://host[:port]), or *';
  const origins = text.split(',').map((s) => s.trim());
  if (origins.length === 1 && origins[0] === '*') return origins;
  return origins.every((o) => /^https?:\/\/[^\s/]+$/i.test(o)) ? origins : new Invalid(allowed);
}

export const OPTIONS: readonly OptionSpec[] = [
  {
    key: 'listen',
    flag: '--listen',
    env: 'RG_LISTEN',
    valueName: 'HOST:PORT',
    defaultText: '127.0.0.1:9092',
    help: 'TCP replication listener (port 0 picks a free port)',
    parse: (t) => hostPort(t, 0, ''),
  },
  {
    key: 'http',
    flag: '--http',
    env: 'RG_HTTP',
    valueName: 'HOST:PORT|off',
    defaultText: '127.0.0.1:9093',
    help: 'HTTP listener for /metrics, /healthz, /congestion, the status page (/), /client.js and the WebSocket bridge (/replication); off for none',
    parse: (t) => (t === 'off' ? null : hostPort(t, 0, ', or off')),
  },
  {
    key: 'monitor',
    flag: '--monitor',
    env: 'RG_MONITOR',
    valueName: 'HOST:PORT|off',
    defaultText: 'off',
    help: 'a second HTTP listener serving only /metrics, /healthz and /connections (no stream data, so it may be public without --subscriber-token); off for none',
    parse: (t) => (t === 'off' ? null : hostPort(t, 0, ', or off')),
  },
  {
    key: 'serverName',
    flag: '--server-name',
    env: 'RG_SERVER_NAME',
    valueName: 'NAME',
    defaultText: null,
    help: 'name sent in SERVER (default localhost; in relay mode the upstream\'s own name)',
    parse: word('a server name'),
  },
  {
    key: 'streams',
    flag: '--streams',
    env: 'RG_STREAMS',
    valueName: 'a,b,c',
    defaultText: SYNAPSE_STREAMS.join(','),
    help: "declared streams (default: Synapse 2017's fifteen; none with --synapse-redis, which serves the streams it follows)",
    parse: streamList,
  },
  {
    key: 'writerToken',
    live: true,
    repeatable: true,
    flag: '--writer-token',
    env: 'RG_WRITER_TOKEN',
    valueName: 'T[:STREAMS]',
    defaultText: null,
    help: 'credential that makes a connection a writer (AUTH T): of every stream, or T:events,typing of those only (it reads what it writes); ,+page lets browser pages using it write; repeatable; default: no writers',
    parse: tokenSpec('writer'),
  },
  {
    key: 'subscriberToken',
    live: true,
    repeatable: true,
    flag: '--subscriber-token',
    env: 'RG_SUBSCRIBER_TOKEN',
    valueName: 'T[:STREAMS]',
    defaultText: null,
    help: 'when set, every connection must AUTH (with a subscriber or writer token) before anything but PING; T:events,typing reads those streams only; ,+page lets browser pages using it send USER_SYNC and the other client commands; repeatable',
    parse: tokenSpec('subscriber'),
  },
  {
    key: 'allowOrigins',
    flag: '--allow-origin',
    env: 'RG_ALLOW_ORIGIN',
    valueName: 'ORIGIN,ORIGIN|*',
    defaultText: null,
    help: "origins whose pages may open the WebSocket at /replication besides the --http listener's own (default: same origin only); * for any",
    parse: originList,
  },
  {
    key: 'authCookie',
    flag: '--auth-cookie',
    env: 'RG_AUTH_COOKIE',
    valueName: 'NAME',
    defaultText: null,
    help: 'the cookie (set HttpOnly by your site) whose value a WebSocket upgrade to /replication authenticates with, as AUTH would; default: cookies are not read',
    parse: (t) => (/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(t) ? t : new Invalid('a cookie name (letters, digits and !#$%&\'*+.^_`|~-)')),
  },
  {
    key: 'wsEngine',
    flag: '--ws-engine',
    env: 'RG_WS_ENGINE',
    valueName: 'auto|uws|ws',
    defaultText: 'auto',
    help: 'what serves --http: uws (uWebSockets.js; needs a native build for this Node), ws (the ws package over node:http; runs everywhere), auto (uws where it loads, else ws)',
    parse: (t) => ((WS_ENGINE_CHOICES as readonly string[]).includes(t) ? t : new Invalid(`one of ${WS_ENGINE_CHOICES.join(', ')}`)),
  },
  {
    key: 'log',
    flag: '--log',
    env: 'RG_LOG',
    valueName: 'memory|file:DIR|redis://HOST:PORT[/PREFIX]',
    defaultText: 'memory',
    help: 'where streams are kept: memory (bounded by the retention options; a restart forgets them), file:DIR (segment files in DIR that survive restarts and kill -9), or Redis streams under PREFIX (default rg), shared by every gateway given the same Redis and prefix; rediss:// for TLS, unix:/PATH?prefix=PREFIX for a unix socket',
    parse: logSpec,
  },
  {
    key: 'redisPassword',
    flag: '--redis-password',
    env: 'RG_REDIS_PASSWORD',
    valueName: 'PASSWORD',
    defaultText: null,
    help: 'the Redis password when --log gives none (set it in the environment, not on the command line); default: none',
    parse: (t) => t,
  },
  {
    key: 'fsync',
    flag: '--fsync',
    env: 'RG_FSYNC',
    valueName: 'always|interval:MS|never',
    defaultText: 'interval:100',
    help: 'file log: when written rows are forced to the disk: always (before a row is served), interval:MS (every MS ms; a machine crash loses at most the last MS ms), never (the OS decides)',
    parse: fsyncPolicy,
  },
  {
    key: 'retentionRows',
    flag: '--retention-rows',
    env: 'RG_RETENTION_ROWS',
    valueName: 'N',
    defaultText: '1000000',
    help: 'rows kept per stream for catch-up',
    parse: count(1, 'rows'),
  },
  {
    key: 'retentionBytes',
    flag: '--retention-bytes',
    env: 'RG_RETENTION_BYTES',
    valueName: 'N',
    defaultText: '512MiB',
    help: 'bytes of lines kept per stream for catch-up',
    parse: size(1),
  },
  {
    key: 'retentionAgeMs',
    flag: '--retention-age',
    env: 'RG_RETENTION_AGE',
    valueName: 'DURATION|off',
    defaultText: 'off',
    help: 'file log: segment files last written longer ago than this are deleted (e.g. 7d, 12h; never the newest rows)',
    parse: duration,
  },
  {
    key: 'maxQueueCommands',
    live: true,
    flag: '--max-queue-commands',
    env: 'RG_MAX_QUEUE_COMMANDS',
    valueName: 'N',
    defaultText: '10000',
    help: 'commands queued for a live subscriber whose socket is full; past it, it reads from the log instead',
    parse: count(1, 'commands'),
  },
  {
    key: 'maxQueueBytes',
    live: true,
    flag: '--max-queue-bytes',
    env: 'RG_MAX_QUEUE_BYTES',
    valueName: 'N',
    defaultText: '64MiB',
    help: 'bytes queued for a live subscriber whose socket is full; past it, it reads from the log instead',
    parse: size(1),
  },
  {
    key: 'maxStallMs',
    live: true,
    flag: '--max-stall-ms',
    env: 'RG_MAX_STALL_MS',
    valueName: 'MS',
    defaultText: '10000',
    help: "a connection whose socket takes no bytes for this long is cut ('ERROR Failed to keep up')",
    parse: count(1, 'milliseconds'),
  },
  {
    key: 'maxLineBytes',
    flag: '--max-line-bytes',
    env: 'RG_MAX_LINE_BYTES',
    valueName: 'N',
    defaultText: '1MiB',
    help: 'longest line accepted from a connection (longer: ERROR and close)',
    parse: size(64),
  },
  {
    key: 'maxConnections',
    live: true,
    flag: '--max-connections',
    env: 'RG_MAX_CONNECTIONS',
    valueName: 'N',
    defaultText: '100000',
    help: 'open connections at most; past it a new one gets ERROR and is closed',
    parse: count(1, 'connections'),
  },
  {
    key: 'maxConnectionsPerAddress',
    live: true,
    flag: '--max-connections-per-address',
    env: 'RG_MAX_CONNECTIONS_PER_ADDRESS',
    valueName: 'N',
    defaultText: '10000',
    help: 'open connections from one host (TCP and WebSocket) at most; past it a new one gets ERROR and is closed (behind a proxy every peer has its address: raise it)',
    parse: count(1, 'connections'),
  },
  {
    key: 'maxPartialLineBytes',
    live: true,
    flag: '--max-partial-line-bytes',
    env: 'RG_MAX_PARTIAL_LINE_BYTES',
    valueName: 'N',
    defaultText: '256MiB',
    help: 'bytes held in unfinished lines across all connections; past it the connections holding the most get ERROR and are closed first',
    parse: size(1),
  },
  {
    key: 'lineTimeoutMs',
    live: true,
    flag: '--line-timeout-ms',
    env: 'RG_LINE_TIMEOUT_MS',
    valueName: 'MS',
    defaultText: '30000',
    help: 'a connection holding an unfinished line this long gets ERROR and is closed, whether it has sent PING or not',
    parse: count(1, 'milliseconds'),
  },
  {
    key: 'encodeThreads',
    flag: '--encode-threads',
    env: 'RG_ENCODE_THREADS',
    valueName: 'N|auto',
    defaultText: 'auto',
    help: 'worker threads that encode large publishes and MessagePack frames off the main thread (auto: cores - 1, at least 1; 0: all inline)',
    parse: (t) => (t === 'auto' ? null : count(0, 'threads')(t)),
  },
  {
    key: 'upstream',
    flag: '--upstream',
    env: 'RG_UPSTREAM',
    valueName: 'HOST:PORT',
    defaultText: null,
    help: 'relay mode: follow every declared stream of this master (or gateway) and serve it downstream',
    parse: (t) => hostPort(t, 1, ''),
  },
  {
    key: 'upstreamName',
    flag: '--upstream-name',
    env: 'RG_UPSTREAM_NAME',
    valueName: 'NAME',
    defaultText: null,
    help: "the SERVER name the upstream must announce (another: 'ERROR Wrong remote'); default: accept the first one seen",
    parse: word('a server name'),
  },
  {
    key: 'upstreamToken',
    flag: '--upstream-token',
    env: 'RG_UPSTREAM_TOKEN',
    valueName: 'T',
    defaultText: null,
    help: 'send AUTH T to the upstream first (an upstream gateway with --subscriber-token); default: none',
    parse: word('a token'),
  },
  {
    key: 'upstreamQueueCommands',
    flag: '--upstream-queue-commands',
    env: 'RG_UPSTREAM_QUEUE_COMMANDS',
    valueName: 'N',
    defaultText: '1000',
    help: 'client commands held for the upstream while it is away (past it the oldest are dropped and counted)',
    parse: count(1, 'commands'),
  },
  {
    key: 'upstreamTls',
    boolean: true,
    flag: '--upstream-tls',
    env: 'RG_UPSTREAM_TLS',
    valueName: '',
    defaultText: 'false',
    help: "connect to the upstream with TLS, checking its certificate against the system's CAs (or --upstream-tls-ca)",
    parse: yesNo,
  },
  {
    key: 'upstreamTlsCa',
    flag: '--upstream-tls-ca',
    env: 'RG_UPSTREAM_TLS_CA',
    valueName: 'FILE',
    defaultText: null,
    help: "PEM file of the CA that signed the upstream's certificate, trusted instead of the system's (implies --upstream-tls)",
    parse: file,
  },
  {
    key: 'upstreamTlsCert',
    flag: '--upstream-tls-cert',
    env: 'RG_UPSTREAM_TLS_CERT',
    valueName: 'FILE',
    defaultText: null,
    help: 'PEM client certificate for an upstream that requires one (with --upstream-tls-key; implies --upstream-tls)',
    parse: file,
  },
  {
    key: 'upstreamTlsKey',
    flag: '--upstream-tls-key',
    env: 'RG_UPSTREAM_TLS_KEY',
    valueName: 'FILE',
    defaultText: null,
    help: 'PEM key of --upstream-tls-cert',
    parse: file,
  },
  {
    key: 'tlsCert',
    live: true,
    flag: '--tls-cert',
    env: 'RG_TLS_CERT',
    valueName: 'FILE',
    defaultText: null,
    help: 'PEM certificate (chain) of the TCP listener, which then speaks TLS only (with --tls-key); also the HTTP listener\'s unless --http-tls-cert; re-read on SIGHUP',
    parse: file,
  },
  {
    key: 'tlsKey',
    live: true,
    flag: '--tls-key',
    env: 'RG_TLS_KEY',
    valueName: 'FILE',
    defaultText: null,
    help: 'PEM private key of --tls-cert',
    parse: file,
  },
  {
    key: 'tlsCa',
    live: true,
    flag: '--tls-ca',
    env: 'RG_TLS_CA',
    valueName: 'FILE',
    defaultText: null,
    help: 'PEM CA: every TLS client must present a certificate it signed (default: no client certificate asked for)',
    parse: file,
  },
  {
    key: 'httpTlsCert',
    live: true,
    flag: '--http-tls-cert',
    env: 'RG_HTTP_TLS_CERT',
    valueName: 'FILE',
    defaultText: null,
    help: 'PEM certificate of the HTTP listener (HTTPS and wss://), when it is not --tls-cert (with --http-tls-key)',
    parse: file,
  },
  {
    key: 'httpTlsKey',
    live: true,
    flag: '--http-tls-key',
    env: 'RG_HTTP_TLS_KEY',
    valueName: 'FILE',
    defaultText: null,
    help: 'PEM private key of --http-tls-cert',
    parse: file,
  },
  {
    key: 'httpTlsCa',
    live: true,
    flag: '--http-tls-ca',
    env: 'RG_HTTP_TLS_CA',
    valueName: 'FILE',
    defaultText: null,
    help: 'with --http-tls-cert: PEM CA whose client certificates the HTTP listener requires',
    parse: file,
  },
  {
    key: 'insecure',
    boolean: true,
    flag: '--insecure',
    env: 'RG_INSECURE',
    valueName: '',
    defaultText: 'false',
    help: 'let a listener off loopback run without TLS (a TLS proxy or a private network protects it); without it, such a listener refuses to start',
    parse: yesNo,
  },
  {
    key: 'anonymousRead',
    boolean: true,
    flag: '--anonymous-read',
    env: 'RG_ANONYMOUS_READ',
    valueName: '',
    defaultText: 'false',
    help: 'let a listener off loopback run without --subscriber-token (anyone who can connect reads every stream); without it, such a listener refuses to start',
    parse: yesNo,
  },
  {
    key: 'config',
    flag: '--config',
    env: 'RG_CONFIG',
    valueName: 'FILE',
    defaultText: null,
    help: 'JSON file of settings, keyed by the camelCase option names (flags and RG_ variables win over it)',
    parse: (t) => (t.length > 0 ? t : new Invalid('a file path')),
  },
  {
    key: 'logLevel',
    live: true,
    flag: '--log-level',
    env: 'RG_LOG_LEVEL',
    valueName: 'LEVEL',
    defaultText: 'info',
    help: `pino log level: ${LOG_LEVELS.join(', ')}`,
    parse: (t) => ((LOG_LEVELS as readonly string[]).includes(t) ? t : new Invalid(`one of ${LOG_LEVELS.join(', ')}`)),
  },
  {
    key: 'readyFile',
    flag: '--ready-file',
    env: 'RG_READY_FILE',
    valueName: 'PATH',
    defaultText: null,
    help: 'once every listener is bound, write {"tcp":port,"http":port|null,"pid":pid} here, with "monitor":port when --monitor is set (removed on a clean stop)',
    parse: (t) => (t.length > 0 ? t : new Invalid('a file path')),
  },
  {
    key: 'shutdownTimeoutMs',
    live: true,
    flag: '--shutdown-timeout-ms',
    env: 'RG_SHUTDOWN_TIMEOUT_MS',
    valueName: 'MS',
    defaultText: '10000',
    help: 'on SIGTERM/SIGINT, how long connections may take to flush and close before the process exits anyway',
    parse: count(1, 'milliseconds'),
  },
  {
    key: 'synapseRedis',
    flag: '--synapse-redis',
    env: 'RG_SYNAPSE_REDIS',
    valueName: 'redis://HOST:PORT[/DB]',
    defaultText: null,
    help: "follow a current Synapse deployment (1.67 and later) on its Redis: its streams are kept per writer instance (--log memory or file) and served to subscribers (REPLICATE <stream> <instance|*> <token|NOW>, docs/synapse.md); rediss:// for TLS, unix:/PATH[?db=N] for a unix socket; needs --synapse-server-name; default: off",
    parse: (t) => parseSynapseRedisUrl(t) ?? new Invalid('redis://[USER:PASSWORD@]HOST[:PORT][/DB], rediss://... or unix:/PATH[?db=N]'),
  },
  {
    key: 'synapseServerName',
    flag: '--synapse-server-name',
    env: 'RG_SYNAPSE_SERVER_NAME',
    valueName: 'NAME',
    defaultText: null,
    help: "the followed Synapse's server_name: the Redis channel its processes publish on",
    parse: word('a server name'),
  },
  {
    key: 'synapseRedisPassword',
    flag: '--synapse-redis-password',
    env: 'RG_SYNAPSE_REDIS_PASSWORD',
    valueName: 'PASSWORD',
    defaultText: null,
    help: "the password of Synapse's Redis when --synapse-redis gives none (set it in the environment, not on the command line); default: none",
    parse: (t) => t,
  },
  {
    key: 'synapseUserIp',
    boolean: true,
    flag: '--synapse-user-ip',
    env: 'RG_SYNAPSE_USER_IP',
    valueName: '',
    defaultText: 'false',
    help: 'also subscribe <server_name>/USER_IP (its lines carry access tokens: counted, never stored or served)',
    parse: yesNo,
  },
  {
    key: 'synapseReplicationUrls',
    flag: '--synapse-replication-url',
    env: 'RG_SYNAPSE_REPLICATION_URL',
    valueName: 'INSTANCE=URL[,INSTANCE=URL...]',
    defaultText: null,
    help: "each Synapse instance's replication listener (its instance_map entry, e.g. event_persister1=http://10.0.0.7:9034): a gap in that instance's rows is filled from it; default: none (gaps are recorded, catch-up across them refused)",
    parse: replicationUrls,
  },
  {
    key: 'synapseReplicationSecret',
    flag: '--synapse-replication-secret',
    env: 'RG_SYNAPSE_REPLICATION_SECRET',
    valueName: 'SECRET',
    defaultText: null,
    help: "Synapse's worker_replication_secret, sent as Authorization: Bearer to --synapse-replication-url (set it in the environment); default: none",
    parse: (t) => t,
  },
];

export const OPTION_BY_FLAG: ReadonlyMap<string, OptionSpec> = new Map(OPTIONS.map((o) => [o.flag, o]));
export const OPTION_BY_KEY: ReadonlyMap<string, OptionSpec> = new Map(OPTIONS.map((o) => [o.key, o]));

export function helpText(): string {
  const lines = [
    'usage: replication-gateway serve [options]',
    '',
    'Runs the gateway. Every option can also be set as the RG_<NAME> environment',
    'variable shown, or in a JSON --config file under its camelCase key;',
    'flags win over the environment, which wins over the file.',
    '',
    'options:',
  ];
  for (const o of OPTIONS) {
    lines.push(`  ${(o.boolean ? o.flag : `${o.flag} ${o.valueName}`).padEnd(30)} ${o.help}`);
    const dflt = (o.defaultText === null ? '' : `default ${o.defaultText}; `) + (o.repeatable ? 'repeatable; ' : '');
    lines.push(`  ${''.padEnd(30)} (${dflt}env ${o.env}; config "${o.key}")`);
  }
  lines.push(`  ${'-h, --help'.padEnd(30)} this text`, '');
  return lines.join('\n');
}
