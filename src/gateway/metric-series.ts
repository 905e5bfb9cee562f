/** What the gateway's and the relay's metrics share: the name prefix and the per-stream gauge. */
import { Gauge, type Registry } from 'prom-client';

export const METRIC_PREFIX = 'replication_gateway_';

/** A gauge `replication_gateway_<name>{stream}`, one series per `[stream, value]` that `read()` gives at each scrape. */
export function perStreamGauge(registry: Registry, name: string, help: string, read: () => Iterable<readonly [string, number]>): void {
  new Gauge({
    name: `${METRIC_PREFIX}${name}`,
    help,
    labelNames: ['stream'],
    registers: [registry],
    collect() {
      for (const [stream, value] of read()) this.set({ stream }, value);
    },
  });
}
