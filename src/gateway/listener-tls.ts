/**
 * The gateway's TLS: the listeners' certificates read at start (a bad file
 * stops start-up: TlsFilesError, exit 2) and again on every SIGHUP, whether
 * or not their paths changed (a renewed certificate is usually the same file
 * rewritten). New connections get the new certificate, open ones keep
 * theirs; a bad new file is logged and the certificate in use stays. Turning
 * TLS on or off, or client certificates (`--tls-ca`) on or off, changes what
 * kind of listener it is: that needs a restart.
 */
import { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import { loadClientTls, loadServerTls, type ClientTlsOptions, type ServerTlsFiles, type ServerTlsOptions } from '../bindings/tls-files.js';
import type { HttpListener } from '../bindings/http-app.js';
import type { ReplicationServer } from '../server.js';
import { httpTlsFiles, tcpTlsFiles, upstreamTlsFiles } from './config.js';
import type { GatewayConfig } from './options.js';

export interface GatewayTls {
  /** The TCP listener's certificate; null: plaintext. */
  tcp: ServerTlsOptions | null;
  /** The HTTP listener's files (it reads them itself); null: plaintext. */
  http: ServerTlsFiles | null;
  /** How the relay connects to its upstream; undefined: plaintext. */
  upstream: true | ClientTlsOptions | undefined;
}

/** Reads every TLS file the settings name; throws TlsFilesError naming the flag and file that is wrong. */
export function loadGatewayTls(config: GatewayConfig): GatewayTls {
  const tcp = tcpTlsFiles(config);
  const http = httpTlsFiles(config);
  if (http !== null && config.httpTlsCert !== null) loadServerTls(http); // its own files: checked now, so a bad one stops start-up too
  const upstream = upstreamTlsFiles(config);
  const client = upstream === null ? undefined : loadClientTls(upstream);
  return {
    tcp: tcp === null ? null : loadServerTls(tcp),
    http,
    upstream: client === undefined ? undefined : Object.keys(client).length === 0 ? true : client,
  };
}

const TLS_KEYS = {
  tcp: ['tlsCert', 'tlsKey', 'tlsCa'],
  http: ['httpTlsCert', 'httpTlsKey', 'httpTlsCa'],
} as const;

/**
 * Of the TLS settings `next` changes, those a running listener cannot take
 * (TLS or client certificates turned on or off): their keys, to keep at the
 * running values and report as needing a restart.
 */
export function tlsKeysNeedingRestart(current: GatewayConfig, next: GatewayConfig): (keyof GatewayConfig)[] {
  const kind = (f: ServerTlsFiles | null): string => (f === null ? 'plain' : f.ca === null ? 'tls' : 'tls+client-certs');
  const keys: (keyof GatewayConfig)[] = [];
  if (kind(tcpTlsFiles(current)) !== kind(tcpTlsFiles(next))) keys.push(...TLS_KEYS.tcp);
  if (kind(httpTlsFiles(current)) !== kind(httpTlsFiles(next))) keys.push(...TLS_KEYS.tcp, ...TLS_KEYS.http);
  return [...new Set(keys)].filter((k) => current[k] !== next[k]);
}

/** SIGHUP: every TLS listener reads its files again; a file that fails is logged, and that listener keeps its certificate. */
export function reloadListenerTls(config: GatewayConfig, server: ReplicationServer, http: HttpListener | null, log: Logger): void {
  const tcp = tcpTlsFiles(config);
  if (tcp !== null) {
    reloadOne('tcp', tcp, log, () => {
      const options = loadServerTls(tcp);
      server.setTls(options);
      return options.cert;
    });
  }
  const httpFiles = httpTlsFiles(config);
  if (http !== null && httpFiles !== null) {
    reloadOne('http', httpFiles, log, () => http.setTls(httpFiles).cert);
  }
}

function reloadOne(listener: 'tcp' | 'http', files: ServerTlsFiles, log: Logger, apply: () => string | Buffer): void {
  try {
    const cert = apply();
    log.info({ signal: 'SIGHUP', listener, cert: files.cert, fingerprint256: fingerprint(cert) }, 'TLS certificate reloaded: new connections get it');
  } catch (err) {
    // A bad file (TlsFilesError), or the uws engine losing its port to another process while it re-binds.
    if (!(err instanceof Error)) throw err;
    log.error(
      { signal: 'SIGHUP', listener, cert: files.cert, err: err.message },
      'TLS certificate not reloaded: the certificate in use stays; fix the files and send SIGHUP again',
    );
  }
}

/** The SHA-256 fingerprint of the first certificate in a PEM chain, as `openssl x509 -fingerprint -sha256` prints it. */
export function fingerprint(pem: string | Buffer): string {
  return new X509Certificate(pem).fingerprint256;
}
