// A throwaway PKI made with `openssl` at test time (none is committed): a CA,
// server certificates for 127.0.0.1 / localhost signed by it, and client
// certificates. P-256 keys, so making one takes milliseconds.
//
//   const pki = await makeTestPki();          // t.after(() => pki.remove())
//   pki.server.cert, pki.server.key, pki.ca    // paths of PEM files
//   const next = await pki.issue('server-2', 'server');

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface IssuedCert {
  /** Paths of the PEM certificate and its key. */
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  /** Path of the CA's PEM certificate. */
  ca: string;
  /** For 127.0.0.1 and localhost (serverAuth). */
  server: IssuedCert;
  /** A client certificate (clientAuth). */
  client: IssuedCert;
  /** Another certificate signed by the same CA, in files named after `name`. */
  issue(name: string, use: 'server' | 'client'): Promise<IssuedCert>;
  /** The SHA-256 fingerprint of a PEM certificate file, as a TLS peer's fingerprint256 reads. */
  fingerprint(certFile: string): Promise<string>;
  remove(): Promise<void>;
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 10_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    throw new Error(`openssl ${args[0]} failed (${e.code ?? ''}): ${e.stderr ?? e.message}; the TLS tests need openssl (apt-get install openssl)`);
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A CA plus one server and one client certificate in a fresh temporary directory. */
export async function makeTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rg-pki-'));
  const at = (name: string): string => path.join(dir, name);
  await openssl([
    'req', '-x509', ...EC_KEY, '-keyout', at('ca.key'), '-out', at('ca.pem'), '-days', '2', '-subj', '/CN=replication-gateway test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  let serial = 1;
  const issue = async (name: string, use: 'server' | 'client'): Promise<IssuedCert> => {
    const cert = at(`${name}.pem`);
    const key = at(`${name}.key`);
    const ext = at(`${name}.ext`);
    await writeFile(
      ext,
      use === 'server'
        ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n'
        : 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n',
    );
    await openssl(['req', ...EC_KEY, '-keyout', key, '-out', at(`${name}.csr`), '-subj', `/CN=${name}`]);
    await openssl([
      'x509', '-req', '-in', at(`${name}.csr`), '-CA', at('ca.pem'), '-CAkey', at('ca.key'), '-set_serial', String(serial++),
      '-days', '2', '-extfile', ext, '-out', cert,
    ]);
    return { cert, key };
  };
  const server = await issue('server', 'server');
  const client = await issue('client', 'client');
  return {
    dir,
    ca: at('ca.pem'),
    server,
    client,
    issue,
    fingerprint: async (certFile) => new X509Certificate(await readFile(certFile)).fingerprint256,
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
