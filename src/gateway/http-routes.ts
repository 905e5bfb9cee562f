/**
 * The gateway's HTTP answers as plain values (status, headers, body), apart
 * from any listener, so every engine of the --http listener
 * (src/bindings/edge-engine.ts) serves the same thing:
 *
 *     GET /metrics      Prometheus text (prom-client)
 *     GET /healthz      200 or 503, JSON (health.ts)
 *     GET /congestion   the last congestion cuts, JSON
 *     GET /connections  open connections, a page at a time, JSON (connections-report.ts)
 *     GET /             a short index
 */

import { ConnectionsQueryError, parseConnectionsQuery, type ConnectionsQuery } from './connections-report.js';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** GET handlers by path; `query` is the text after `?` ('' for none). */
export type HttpRoute = (query: string) => HttpAnswer | Promise<HttpAnswer>;
export type HttpRoutes = ReadonlyMap<string, HttpRoute>;

export interface RouteSources {
  metricsText: () => Promise<string>;
  metricsContentType: string;
  health: () => { ok: boolean } & object;
  congestion: () => readonly object[];
  /** GET /connections; throws ConnectionsQueryError for a bad query. */
  connections: (query: ConnectionsQuery) => object;
}

const JSON_TYPE = 'application/json; charset=utf-8';
const TEXT_TYPE = 'text/plain; charset=utf-8';

const json = (status: number, value: unknown): HttpAnswer => ({
  status,
  headers: { 'content-type': JSON_TYPE, 'cache-control': 'no-store' },
  body: `${JSON.stringify(value)}\n`,
});

export function gatewayRoutes(src: RouteSources): HttpRoutes {
  return new Map<string, HttpRoute>([
    ['/metrics', async () => ({ status: 200, headers: { 'content-type': src.metricsContentType }, body: await src.metricsText() })],
    [
      '/healthz',
      () => {
        const report = src.health();
        return json(report.ok ? 200 : 503, report);
      },
    ],
    ['/congestion', () => json(200, { cuts: src.congestion() })],
    [
      '/connections',
      (query) => {
        let parsed: ConnectionsQuery;
        try {
          parsed = parseConnectionsQuery(query);
        } catch (err) {
          if (err instanceof ConnectionsQueryError) return { status: 400, headers: { 'content-type': TEXT_TYPE }, body: `bad request: ${err.message}\n` };
          throw err;
        }
        return json(200, src.connections(parsed));
      },
    ],
    [
      '/',
      () => ({
        status: 200,
        headers: { 'content-type': TEXT_TYPE },
        body: 'replication-gateway\n\n/metrics     Prometheus metrics\n/healthz     health as JSON (503 when unhealthy)\n/congestion  the last congestion cuts as JSON\n/connections open connections as JSON (?offset=&limit=&sort=id|lag|queued)\n',
      }),
    ],
  ]);
}

/** What any listener answers for a request: the route's answer, 404, or 405. */
export async function answer(routes: HttpRoutes, method: string, path: string, query = ''): Promise<HttpAnswer> {
  const route = routes.get(path);
  if (route === undefined) return { status: 404, headers: { 'content-type': TEXT_TYPE }, body: `not found: ${path}\n` };
  if (method !== 'GET' && method !== 'HEAD') {
    return { status: 405, headers: { 'content-type': TEXT_TYPE, allow: 'GET, HEAD' }, body: `method ${method} not allowed\n` };
  }
  try {
    return await route(query);
  } catch (err) {
    return { status: 500, headers: { 'content-type': TEXT_TYPE }, body: `internal error: ${(err as Error).message}\n` };
  }
}
