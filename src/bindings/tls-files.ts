/**
 * TLS material read from PEM files: a listener's certificate, key and
 * optional client CA (`--tls-cert`, `--tls-key`, `--tls-ca`, and the
 * `--http-tls-*` ones), a client's CA and optional certificate. Each set is
 * read whole and checked by building a secure context from it, so a bad file
 * (missing, not PEM, a key that does not match the certificate) is refused
 * with a message naming the flag and the file before anything uses it: at
 * start-up (exit 2), and on SIGHUP (the certificate in use stays).
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';

/** Where a listener's PEM files are, with the flags that named them (for messages). */
export interface ServerTlsFiles {
  cert: string;
  key: string;
  /** Client certificates signed by this CA are required; null: no client certificate asked for. */
  ca: string | null;
  /** `--tls` or `--http-tls`: the flags are this prefix plus `-cert`, `-key`, `-ca`. */
  flagPrefix: string;
}

/** What a TLS server is built (or re-keyed) with; the same shape node:tls takes. */
export interface ServerTlsOptions {
  cert: string | Buffer;
  key: string | Buffer;
  /** When set, every client must present a certificate this CA signed. */
  ca?: string | Buffer;
}

/** A client's TLS settings, as node:tls takes them (CA to trust, an optional client certificate). */
export interface ClientTlsOptions {
  /** Trust this CA (PEM) instead of the system's. */
  ca?: string | Buffer;
  /** A client certificate and its key (PEM), for a server that requires one. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** The name the server's certificate must carry (default: the host connected to). */
  servername?: string;
}

/** A TLS file that cannot be used; the CLI prints the message and exits 2. */
export class TlsFilesError extends Error {
  override readonly name = 'TlsFilesError';
  readonly code = 'TLS_FILES';
}

function readPem(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new TlsFilesError(`${flag} ${file}: cannot read it (${e.code ?? e.message}); expected a readable PEM file`);
  }
}

/** Reads and checks a listener's files. Throws TlsFilesError naming what is wrong. */
export function loadServerTls(files: ServerTlsFiles): ServerTlsOptions {
  const p = files.flagPrefix;
  const options: ServerTlsOptions = { cert: readPem(`${p}-cert`, files.cert), key: readPem(`${p}-key`, files.key) };
  if (files.ca !== null) options.ca = readPem(`${p}-ca`, files.ca);
  try {
    tls.createSecureContext(options);
  } catch (err) {
    const what = files.ca === null ? `${p}-cert ${files.cert} with ${p}-key ${files.key}` : `${p}-cert ${files.cert}, ${p}-key ${files.key} and ${p}-ca ${files.ca}`;
    throw new TlsFilesError(`${what}: not a usable certificate and key (${(err as Error).message}); expected PEM files, the key matching the certificate`);
  }
  return options;
}

/** The node:tls server options for these: a CA means client certificates are required and checked. */
export function tlsServerOptions(options: ServerTlsOptions): tls.TlsOptions {
  return options.ca === undefined
    ? { cert: options.cert, key: options.key }
    : { cert: options.cert, key: options.key, ca: options.ca, requestCert: true, rejectUnauthorized: true };
}

/** Where a client's PEM files are; each null when not given. */
export interface ClientTlsFiles {
  ca: string | null;
  cert: string | null;
  key: string | null;
  /** `--tls` or `--upstream-tls`, for messages. */
  flagPrefix: string;
}

/** Reads a client's files. Throws TlsFilesError naming what is wrong (a certificate without its key, too). */
export function loadClientTls(files: ClientTlsFiles): ClientTlsOptions {
  const p = files.flagPrefix;
  if ((files.cert === null) !== (files.key === null)) {
    throw new TlsFilesError(`${files.cert === null ? `${p}-key` : `${p}-cert`} is given without ${files.cert === null ? `${p}-cert` : `${p}-key`}; expected both (a client certificate and its key) or neither`);
  }
  const options: ClientTlsOptions = {};
  if (files.ca !== null) options.ca = readPem(`${p}-ca`, files.ca);
  if (files.cert !== null && files.key !== null) {
    options.cert = readPem(`${p}-cert`, files.cert);
    options.key = readPem(`${p}-key`, files.key);
  }
  try {
    tls.createSecureContext(options);
  } catch (err) {
    throw new TlsFilesError(`${p}-ca/${p}-cert/${p}-key: not usable (${(err as Error).message}); expected PEM files, the key matching the certificate`);
  }
  return options;
}
