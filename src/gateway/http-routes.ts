/**
 * The gateway's HTTP answers as plain values (status, headers, body), apart
 * from any listener, so every engine of the --http listener
 * (src/bindings/edge-engine.ts) serves the same thing:
 *
 *     GET /metrics      Prometheus text (prom-client)
 *     GET /healthz      200 or 503, JSON (health.ts)
 *     GET /congestion   the last congestion cuts, JSON
 *     GET /             a short index
 */

export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** GET handlers by path. */
export type HttpRoutes = ReadonlyMap<string, () => HttpAnswer | Promise<HttpAnswer>>;

export interface RouteSources {
  metricsText: () => Promise<string>;
  metricsContentType: string;
  health: () => { ok: boolean } & object;
  congestion: () => readonly object[];
}

const JSON_TYPE = 'application/json; charset=utf-8';
const TEXT_TYPE = 'text/plain; charset=utf-8';

export function gatewayRoutes(src: RouteSources): HttpRoutes {
  return new Map<string, () => HttpAnswer | Promise<HttpAnswer>>([
    ['/metrics', async () => ({ status: 200, headers: { 'content-type': src.metricsContentType }, body: await src.metricsText() })],
    [
      '/healthz',
      () => {
        const report = src.health();
        return { status: report.ok ? 200 : 503, headers: { 'content-type': JSON_TYPE, 'cache-control': 'no-store' }, body: `${JSON.stringify(report)}\n` };
      },
    ],
    [
      '/congestion',
      () => ({ status: 200, headers: { 'content-type': JSON_TYPE, 'cache-control': 'no-store' }, body: `${JSON.stringify({ cuts: src.congestion() })}\n` }),
    ],
    [
      '/',
      () => ({
        status: 200,
        headers: { 'content-type': TEXT_TYPE },
        body: 'replication-gateway\n\n/metrics     Prometheus metrics\n/healthz     health as JSON (503 when unhealthy)\n/congestion  the last congestion cuts as JSON\n',
      }),
    ],
  ]);
}

/** What any listener answers for a request: the route's answer, 404, or 405. */
export async function answer(routes: HttpRoutes, method: string, path: string): Promise<HttpAnswer> {
  const route = routes.get(path);
  if (route === undefined) return { status: 404, headers: { 'content-type': TEXT_TYPE }, body: `not found: ${path}\n` };
  if (method !== 'GET' && method !== 'HEAD') {
    return { status: 405, headers: { 'content-type': TEXT_TYPE, allow: 'GET, HEAD' }, body: `method ${method} not allowed\n` };
  }
  try {
    return await route();
  } catch (err) {
    return { status: 500, headers: { 'content-type': TEXT_TYPE }, body: `internal error: ${(err as Error).message}\n` };
  }
}
