/**
 * Which engine serves the `--http` listener (`--ws-engine auto|uws|ws`).
 * uWebSockets.js is taken where it runs, but its builds are per Node ABI,
 * platform and libc, and where none of them loads its package hands out a JS
 * imitation instead, which crashes on the first HTTP request. So uWS counts
 * as available only when its App is native code; `auto` then takes it, and
 * `ws` over node:http everywhere else.
 */
import { createRequire } from 'node:module';
import type { EdgeEngineFactory, WsEngineChoice, WsEngineName } from './edge-engine.js';
import { nodeWsEngine } from './node-ws-engine.js';
import { uwsEngine, type UwsModule } from './uws-engine.js';

export interface ChosenEngine {
  name: WsEngineName;
  /** Why this one, for the start-up log line. */
  reason: string;
  create: EdgeEngineFactory;
}

/** `--ws-engine uws` where uWS cannot run: the CLI prints the message and exits 2. */
export class EngineUnavailableError extends Error {
  override readonly name = 'EngineUnavailableError';
  readonly code = 'ENGINE_UNAVAILABLE';
}

type UwsProbe = { module: UwsModule } | { unavailable: string };

const UWS_PACKAGE = 'uWebSockets.js';

/** Loads uWebSockets.js if a native build of it runs here; otherwise says why not. */
export function probeUws(): UwsProbe {
  const require = createRequire(import.meta.url);
  let loaded: unknown;
  const { log, warn } = console;
  // On a miss the package tells the console it falls back to its JS imitation;
  // that is never run here, so its advice would only mislead.
  console.log = console.warn = () => {};
  try {
    loaded = require(UWS_PACKAGE);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'MODULE_NOT_FOUND' && e.message.includes(`'${UWS_PACKAGE}'`)) {
      return { unavailable: `${UWS_PACKAGE} is not installed (it is an optional dependency)` };
    }
    return { unavailable: `${UWS_PACKAGE} did not load: ${e.message.split('\n')[0]}` };
  } finally {
    console.log = log;
    console.warn = warn;
  }
  if (isNative(loaded)) return { module: loaded as UwsModule };
  const build = `${UWS_PACKAGE} (${packageOf(require)})`;
  const here = `Node ${process.version} (ABI ${process.versions.modules}) on ${process.platform}-${process.arch}`;
  const why = process.env['UWS_USE_FALLBACK'] ? `UWS_USE_FALLBACK is set, so ${build} gives` : `${build} has no native build for ${here}, only`;
  return { unavailable: `${why} its JS fallback, which fails on the first HTTP request` };
}

function isNative(m: unknown): boolean {
  const app = (m as { App?: unknown } | null)?.App;
  return typeof app === 'function' && Function.prototype.toString.call(app).includes('[native code]');
}

/** The package behind the alias, e.g. `@trufflesuite/uws-js-unofficial 20.30.0-unofficial.0`. */
function packageOf(require: NodeJS.Require): string {
  try {
    const pkg = require(`${UWS_PACKAGE}/package.json`) as { name?: string; version?: string };
    return `${pkg.name} ${pkg.version}`;
  } catch {
    return 'unknown build';
  }
}

/**
 * `clientCertificates`: the HTTP listener must require client certificates
 * (a TLS CA is given). uWebSockets.js 20.30 asks for one but lets a client
 * without one in, so only `ws` serves that.
 */
export function chooseEngine(choice: WsEngineChoice, { clientCertificates = false }: { clientCertificates?: boolean } = {}): ChosenEngine {
  if (choice === 'ws') return { name: 'ws', reason: 'asked for (--ws-engine ws)', create: nodeWsEngine };
  if (clientCertificates) {
    if (choice === 'uws') {
      throw new EngineUnavailableError(
        '--ws-engine uws cannot require client certificates (uWebSockets.js lets a client without one in): use --ws-engine ws (or auto, which picks ws then) with --tls-ca/--http-tls-ca',
      );
    }
    return { name: 'ws', reason: 'auto: client certificates are required (--tls-ca/--http-tls-ca), which only ws enforces', create: nodeWsEngine };
  }
  const uws = probeUws();
  if ('module' in uws) {
    const reason = choice === 'uws' ? 'asked for (--ws-engine uws)' : 'auto: a native uWebSockets.js build loads here';
    return { name: 'uws', reason, create: uwsEngine(uws.module) };
  }
  if (choice === 'uws') throw new EngineUnavailableError(`--ws-engine uws: ${uws.unavailable}; use --ws-engine ws (or auto, which picks ws here)`);
  return { name: 'ws', reason: `auto: ${uws.unavailable}`, create: nodeWsEngine };
}

/** Each engine: true where it runs here, else why not. */
export function engineAvailability(): Record<WsEngineName, true | string> {
  const uws = probeUws();
  return { uws: 'module' in uws ? true : uws.unavailable, ws: true };
}

/** The engines that run here, of those an availability names. */
export function enginesThatRun(availability = engineAvailability()): WsEngineName[] {
  return (Object.keys(availability) as WsEngineName[]).filter((e) => availability[e] === true);
}
