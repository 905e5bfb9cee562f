/**
 * Synapse's HTTP replication endpoint, the way its own workers call it:
 *
 *     GET /_synapse/replication/get_repl_stream_updates/<stream>/<txn_id>?from_token=F&upto_token=U
 *     Authorization: Bearer <worker_replication_secret>
 *
 * sent to the instance that wrote the rows. Every request has a fresh
 * txn_id: Synapse answers a reused one with its first answer, whatever the
 * parameters. A wrong secret gets 500 (not 401), so the error says to check it.
 */
import { randomInt } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { parseStreamUpdates, type StreamUpdates } from '../core/synapse-catch-up.js';

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** A random 10-letter txn_id, as Synapse's clients make them. */
export function freshTxnId(): string {
  let id = '';
  for (let i = 0; i < 10; i++) id += LETTERS[randomInt(LETTERS.length)];
  return id;
}

export interface ReplicationEndpoint {
  /** `http://host:port` of the instance's replication listener. */
  base: URL;
  secret: string | null;
  timeoutMs?: number;
}

/** One page of the instance's rows of `stream` in (fromToken, uptoToken]. */
export function fetchStreamUpdates(endpoint: ReplicationEndpoint, stream: string, fromToken: number, uptoToken: number): Promise<StreamUpdates> {
  const url = new URL(
    `/_synapse/replication/get_repl_stream_updates/${encodeURIComponent(stream)}/${freshTxnId()}?from_token=${fromToken}&upto_token=${uptoToken}`,
    endpoint.base,
  );
  const get = url.protocol === 'https:' ? https.get : http.get;
  return new Promise((resolve, reject) => {
    const req = get(
      url,
      {
        headers: {
          Accept: 'application/json',
          ...(endpoint.secret !== null ? { Authorization: `Bearer ${endpoint.secret}` } : {}),
        },
        timeout: endpoint.timeoutMs ?? 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) {
            const hint = res.statusCode === 500 ? ' (Synapse answers a wrong or missing secret with 500: check --synapse-replication-secret)' : '';
            reject(new Error(`GET ${url.pathname} answered ${res.statusCode}: ${body.slice(0, 200)}${hint}`));
            return;
          }
          try {
            resolve(parseStreamUpdates(body));
          } catch (err) {
            reject(err as Error);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${url.pathname} timed out`)));
    req.on('error', reject);
  });
}
