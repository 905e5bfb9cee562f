/**
 * The Synapse link's series (--synapse-redis only): whether it is connected,
 * how old its last message is, each (stream, instance)'s position, and what
 * the history kept, refused and could not fill.
 */
import { Gauge, type Registry } from 'prom-client';
import { METRIC_PREFIX as PREFIX, scrapedCounter } from './metric-series.js';
import type { SynapseFollow } from './synapse-follow.js';

export function registerSynapseMetrics(synapse: SynapseFollow, registry: Registry): void {
  const registers = [registry];
  new Gauge({
    name: `${PREFIX}synapse_connected`,
    help: '1 while the gateway is subscribed to the followed Synapse channel, else 0',
    registers,
    collect() {
      this.set(synapse.link.health().connected ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}synapse_last_message_age_seconds`,
    help: 'Seconds since the last message on the Synapse channel (-1: none yet)',
    registers,
    collect() {
      const age = synapse.link.health().lastMessageAgeMs;
      this.set(age === null ? -1 : age / 1000);
    },
  });
  new Gauge({
    name: `${PREFIX}synapse_position`,
    help: 'The token the gateway holds per (stream, writer instance) of the followed Synapse',
    labelNames: ['stream', 'instance'],
    registers,
    collect() {
      for (const s of synapse.follower.status()) if (s.token !== null) this.set({ stream: s.stream, instance: s.instance }, s.token);
    },
  });
  new Gauge({
    name: `${PREFIX}synapse_gaps_open`,
    help: 'Ranges of a Synapse stream published while the gateway did not hear them and not filled: catch-up across them is refused',
    registers,
    collect() {
      this.set(synapse.history.stats().gapsOpen);
    },
  });
  scrapedCounter(registry, 'synapse_gaps_filled_total', "Gaps filled from the writer's HTTP replication endpoint (--synapse-replication-url)", () => synapse.history.stats().gapsFilled);
  scrapedCounter(registry, 'synapse_connects_total', 'Subscriptions to the Synapse channel made (each one sends REPLICATE once)', () => synapse.link.health().connects);
  scrapedCounter(registry, 'synapse_rows_total', 'Rows of the followed Synapse stored in the history', () => synapse.history.stats().rows);
  scrapedCounter(registry, 'synapse_descending_rows_total', "Rows stored below the token of the row just before them (backfill publishes a batch descending): kept after it, served in arrival order", () => synapse.history.stats().descendingRows);
  scrapedCounter(registry, 'synapse_late_rows_total', "Rows at or below their writer's position that do not descend from the row just before them (a replay): not stored, logged", () => synapse.history.stats().lateRows);
  scrapedCounter(registry, 'synapse_refused_lines_total', "Lines on the Synapse channel that are not today's dialect (ignored, logged)", () => synapse.history.stats().refusedLines);
}
