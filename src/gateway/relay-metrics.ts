/**
 * The relay's series (relay mode only): the upstream connection's state,
 * what came from it and what went to it, and how far the relay is behind.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { METRIC_PREFIX as PREFIX, perStreamGauge, scrapedCounter } from './metric-series.js';
import type { ReplicationRelay, StreamLag, UpstreamState } from '../relay.js';

export function registerRelayMetrics(relay: ReplicationRelay, registry: Registry, clock: () => number): void {
  const registers = [registry];
  new Gauge({
    name: `${PREFIX}relay_upstream_connected`,
    help: '1 while the relay is connected to its upstream (SERVER seen), else 0',
    registers,
    collect() {
      this.set(relay.connected ? 1 : 0);
    },
  });
  const states: UpstreamState[] = ['connecting', 'connected', 'waiting', 'closed'];
  new Gauge({
    name: `${PREFIX}relay_upstream_state`,
    help: 'The upstream connection state: 1 for the current one',
    labelNames: ['state'],
    registers,
    collect() {
      for (const state of states) this.set({ state }, relay.state === state ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}relay_upstream_state_seconds`,
    help: 'Seconds in the current upstream state',
    registers,
    collect() {
      this.set(Math.max(0, (clock() - relay.stateSince) / 1000));
    },
  });
  new Gauge({
    name: `${PREFIX}relay_upstream_last_received_age_seconds`,
    help: 'Seconds since the upstream last sent anything (it PINGs every 5 s); no sample before anything',
    registers,
    collect() {
      // remove(): the label-less series, which prom-client would otherwise show as 0.
      if (relay.lastReceivedAt === null) this.remove();
      else this.set(Math.max(0, (clock() - relay.lastReceivedAt) / 1000));
    },
  });
  const counter = (name: string, help: string, value: () => number): void => scrapedCounter(registry, name, help, value);
  counter('relay_upstream_connects_total', 'Connections to the upstream that reached SERVER', () => relay.counters.connects);
  counter('relay_upstream_disconnects_total', 'Upstream connections lost after SERVER', () => relay.counters.disconnects);
  counter('relay_upstream_received_bytes_total', 'Bytes received from the upstream', () => relay.counters.bytesIn);
  counter('relay_rows_stored_total', 'Upstream rows stored in the relay\'s streams', () => relay.counters.rowsStored);
  counter('relay_rows_skipped_total', 'Upstream rows at or below the stored head (replays), not stored again', () => relay.counters.rowsSkipped);
  counter('relay_upstream_behind_total', 'POSITIONs from the upstream below the relay\'s head (the upstream went back)', () => relay.counters.behind);
  counter('relay_now_starts_total', 'Streams the relay never had, followed from NOW after the upstream refused their catch-up', () => relay.counters.nowStarts);
  counter('relay_store_failures_total', 'Upstream entries the stream log could not store (see the log store\'s health)', () => relay.counters.storeFailures);
  counter('relay_commands_dropped_total', 'Client commands dropped because the queue for the absent upstream was full', () => relay.droppedCommands);
  new Counter({
    name: `${PREFIX}relay_commands_forwarded_total`,
    help: 'Downstream client commands sent (or queued) upstream, by name',
    labelNames: ['command'],
    registers,
    collect() {
      this.reset();
      for (const [command, n] of Object.entries(relay.counters.forwarded)) this.inc({ command }, n);
    },
  });
  new Gauge({
    name: `${PREFIX}relay_commands_queued`,
    help: 'Client commands waiting for the upstream to come back',
    registers,
    collect() {
      this.set(relay.queuedCommands);
    },
  });
  const lagGauge = (name: string, help: string, value: (l: StreamLag, now: number) => number): void =>
    perStreamGauge(registry, name, help, () => {
      const now = clock();
      return relay.lag().map((l) => [l.stream, value(l, now)] as const);
    });
  lagGauge('relay_lag_tokens', 'Highest upstream token seen minus the stream\'s stored head', (l) => l.tokens);
  lagGauge('relay_held_rows', 'Catch-up rows held until their token is known complete', (l) => l.heldRows);
  lagGauge(
    'relay_lag_seconds',
    'Age of the oldest upstream row not yet stored; while the upstream is away, the seconds since it was lost',
    (l, now) => (relay.connected ? l.heldMs / 1000 : Math.max(l.heldMs / 1000, (now - relay.stateSince) / 1000)),
  );
}
