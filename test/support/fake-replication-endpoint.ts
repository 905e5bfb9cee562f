// A stand-in for a Synapse writer's HTTP replication listener, answering
// get_repl_stream_updates with the responses recorded from Synapse (matched
// by stream, from_token and upto_token), 500 for a wrong secret as Synapse
// does, and noting every request it saw.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HttpEvent } from './synapse-today.js';

/** The recordings' worker_replication_secret (a dummy). */
export const REPLICATION_SECRET = 'DUMMY_worker_replication_secret';

export interface SeenRequest {
  path: string;
  authorization: string | undefined;
}

/** A stand-in for a writer's replication listener, answering with the recorded responses (by stream, from_token, upto_token). */
export async function fakeEndpoint(exchanges: HttpEvent[], fail = false): Promise<{ url: URL; seen: SeenRequest[]; close: () => Promise<void> }> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    seen.push({ path: url.pathname, authorization: req.headers.authorization });
    const stream = url.pathname.split('/')[4];
    const match = exchanges.find(
      (e) =>
        e.request.path.split('/')[4] === stream &&
        e.request.query['from_token'] === url.searchParams.get('from_token') &&
        e.request.query['upto_token'] === url.searchParams.get('upto_token'),
    );
    if (fail || req.headers.authorization !== `Bearer ${REPLICATION_SECRET}`) {
      res.writeHead(500, { 'Content-Type': 'application/json' }).end('{"error":"Internal server error","errcode":"M_UNKNOWN"}');
    } else if (match === undefined) {
      res.writeHead(400, { 'Content-Type': 'application/json' }).end('{"error":"not recorded","errcode":"M_UNKNOWN"}');
    } else {
      res.writeHead(match.response.status, { 'Content-Type': 'application/json' }).end(match.response.body_raw);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: new URL(`http://127.0.0.1:${port}`), seen, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

