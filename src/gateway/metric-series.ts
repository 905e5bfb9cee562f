/** What the gateway's and the relay's metrics share: the name prefix, the per-stream gauge and the scrape-time counter. */
import { Counter, Gauge, type Registry } from 'prom-client';

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

/** A counter `replication_gateway_<name>` whose total is read from a plain number at each scrape. */
export function scrapedCounter(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name: `${METRIC_PREFIX}${name}`,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}
