/**
 * `replication-gateway serve` (what `npm start` runs): settings from flags,
 * RG_* variables and a JSON file (src/gateway/config.ts), pino JSON logs on
 * stdout with one `listening` line, a hint for a person at a terminal on
 * stderr, a ready file once every listener is bound, and an orderly stop on
 * SIGTERM/SIGINT (a second signal exits at once).
 *
 * Exit codes: 0 stopped by a signal, 1 could not start, 2 bad settings
 * (--ws-engine uws where it cannot run, and TLS files that cannot be used, included).
 */
import { rmSync } from 'node:fs';
import { pino, type Logger } from 'pino';
import { EngineUnavailableError } from '../bindings/engine-choice.js';
import { writeReadyFile } from '../bindings/ready-file.js';
import { TlsFilesError } from '../bindings/tls-files.js';
import { ConfigError, httpTlsFiles, loadConfig, tcpTlsFiles } from '../gateway/config.js';
import { Gateway, type GatewayAddresses } from '../gateway/gateway.js';
import { helpText, type GatewayConfig } from '../gateway/options.js';
import { VERSION } from '../version.js';

/** After run() resolves, how long lingering handles may keep the process before it exits anyway. */
const EXIT_GRACE_MS = 2_000;

export async function run(argv: string[]): Promise<number> {
  let config: GatewayConfig;
  try {
    const loaded = loadConfig({ argv, env: process.env });
    if (loaded.help) {
      process.stdout.write(helpText());
      return 0;
    }
    config = loaded.config;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`replication-gateway serve: ${err.message}\n`);
    return 2;
  }

  const log = pino({ name: 'replication-gateway', level: config.logLevel });
  let gateway: Gateway;
  try {
    gateway = await Gateway.open(config, log);
  } catch (err) {
    if (!(err instanceof EngineUnavailableError || err instanceof TlsFilesError)) throw err;
    process.stderr.write(`replication-gateway serve: ${err.message}\n`);
    return 2;
  }
  const stopped = handleSignals(gateway, log);
  process.on('SIGHUP', () => reload(gateway, argv, log));

  let addresses: GatewayAddresses | null;
  try {
    addresses = await gateway.start();
  } catch (err) {
    const message = (err as Error).message;
    log.fatal({ err: message }, 'could not start');
    process.stderr.write(`replication-gateway serve: ${message}\n`);
    await gateway.stop(1_000);
    return exitSoon(1);
  }
  if (addresses !== null) {
    announce(gateway, config, addresses, log);
    if (config.readyFile !== null) {
      await writeReadyFile(config.readyFile, {
        tcp: addresses.tcp.port,
        http: addresses.http?.port ?? null,
        ...(addresses.monitor !== null ? { monitor: addresses.monitor.port } : {}),
        pid: process.pid,
      });
      log.debug({ path: config.readyFile }, 'ready file written');
    }
  }
  const code = await stopped;
  if (config.readyFile !== null) rmSync(config.readyFile, { force: true });
  return exitSoon(code);
}

/**
 * SIGHUP: the settings are read again (flags, environment and the --config
 * file, which is what can have changed) and the live ones applied; a bad file
 * keeps every running setting. Never stops the gateway.
 */
function reload(gateway: Gateway, argv: string[], log: Logger): void {
  let next: GatewayConfig;
  try {
    next = loadConfig({ argv, env: process.env }).config;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    log.error({ signal: 'SIGHUP', err: err.message }, 'settings not reloaded: the running settings stay; fix the file and send SIGHUP again');
    return;
  }
  const { applied, needsRestart } = gateway.reload(next);
  log.info({ signal: 'SIGHUP', applied, config: next.config }, applied.length > 0 ? 'settings reloaded' : 'settings reloaded: nothing live changed');
  if (needsRestart.length > 0) log.warn({ signal: 'SIGHUP', needsRestart }, `changed settings that take effect only after a restart: ${needsRestart.join(', ')}`);
}

/** First SIGTERM/SIGINT: orderly stop; the second: exit now. Resolves with the exit code. */
function handleSignals(gateway: Gateway, log: Logger): Promise<number> {
  return new Promise((resolve) => {
    let received = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      received++;
      if (received > 1) {
        log.warn({ signal }, 'second signal: exiting now');
        process.exit(signal === 'SIGINT' ? 130 : 143);
      }
      const timeoutMs = gateway.settings.shutdownTimeoutMs;
      log.info({ signal, timeoutMs }, 'signal received: stopping');
      void gateway.stop(timeoutMs).then((clean) => {
        // Out of time: what still holds a socket open must not hold the exit up too.
        if (!clean) setImmediate(() => process.exit(0));
        resolve(0);
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

function announce(gateway: Gateway, config: GatewayConfig, a: GatewayAddresses, log: Logger): void {
  log.info(
    {
      tcp: { host: a.tcp.address, port: a.tcp.port },
      http: a.http === null ? null : { host: a.http.address, port: a.http.port },
      ...(a.monitor !== null ? { monitor: { host: a.monitor.address, port: a.monitor.port } } : {}),
      serverName: gateway.serverName,
      streams: config.streams,
      mode: config.upstream === null ? 'standalone' : 'relay',
      ...(config.upstream !== null ? { upstream: `${config.upstream.host}:${config.upstream.port}` } : {}),
      auth: config.subscriberToken.length > 0 ? 'required' : 'optional',
      tls: { tcp: tcpTlsFiles(config) !== null, http: a.http !== null && httpTlsFiles(config) !== null },
      pid: process.pid,
      version: VERSION,
      log: config.log.kind,
    },
    'listening',
  );
  if (!process.stderr.isTTY) return;
  const host = connectableHost(a.tcp.address);
  const lines = [
    '',
    `replication-gateway: replication on ${host}:${a.tcp.port} (SERVER ${gateway.serverName})` +
      (a.http === null ? '' : `, metrics on ${httpTlsFiles(config) === null ? 'http' : 'https'}://${connectableHost(a.http.address)}:${a.http.port}/metrics`),
    'Try it from another terminal:',
    tcpTlsFiles(config) === null ? `    nc ${host} ${a.tcp.port}` : `    openssl s_client -quiet -connect ${host}:${a.tcp.port}`,
    ...(config.subscriberToken.length > 0 ? ['    AUTH <your --subscriber-token>'] : []),
    '    REPLICATE ALL NOW',
    "You will see SERVER, PING and one POSITION per stream. Ctrl-C stops the gateway.",
    '',
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
}

/** Where a person reaches a listener bound to `address` (a wildcard means this machine). */
function connectableHost(address: string): string {
  if (address === '0.0.0.0' || address === '::') return '127.0.0.1';
  return address;
}

/** Resolves `code`; if something still holds the event loop after a grace period, exits anyway. */
function exitSoon(code: number): number {
  setTimeout(() => process.exit(code), EXIT_GRACE_MS).unref();
  return code;
}
