// Writer and subscriber processes against one running server, and the
// server's CPU and memory around them (from /proc). The common shape of a
// throughput run is runWriterToSubscribers(); the pieces are exported for
// scenarios that order things differently (W3 stores first, W8 reconnects
// while writing).
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readCpu, readMemory, resetPeakRss } from '../load/proc-stats.js';
import { waitForReadyFile } from '../../src/bindings/ready-file.js';
import { benchScript, lastJsonLine, spawnNode, withTimeout, type Child } from './children.js';
import { formatBytes, formatRate } from './format.js';
import { subscriberRows, writerRows, type Phase } from './progress.js';
import type { RunningServer } from './servers.js';
import { DeliveryError, type ScenarioContext } from './types.js';

/** bench/load/subscriber.js's result line (the fields used here). */
export interface SubscriberResult {
  ok: boolean;
  error?: string;
  subscribers: number;
  expect: number;
  startedAt: number;
  allReadyAt: number | null;
  rowsPerSub: number[];
  firstRowAt: number | null;
  lastRowAt: number | null;
  seconds: number;
  deliveredRows: number;
  bytes: number;
  rowsPerSec: number | null;
  mbPerSec: number | null;
  latencyMs: { count: number; p50: number; p99: number; p999: number; max: number; mean: number } | null;
  cpuSeconds: number;
  slow: {
    index: number;
    rows: number;
    lastToken: number;
    error: string | null;
    cut: boolean;
    errorAtMs: number | null;
    closed: string | null;
    closedAtMs: number | null;
  }[];
}

/** bench/load/writer.js's result line. */
export interface WriterResult {
  rows: number;
  seconds: number;
  rowsPerSec: number | null;
  bytes: number;
  startToken: number;
  lastToken: number;
  firstRowAt: number;
  lastRowAt: number;
}

export interface ServerUsage {
  cpuSeconds: number;
  /** RSS when the measured part began (after subscribers connected). */
  rssBeforeBytes: number;
  /** VmHWM over the measured part (reset at its start when /proc allows it). */
  peakRssBytes: number;
  /** Peak minus the RSS at the start. */
  peakGrowthBytes: number;
  /** Whether VmHWM could be reset (otherwise the peak covers the server's whole life). */
  peakReset: boolean;
}

const READY_TIMEOUT_MS = 120_000;
let serial = 0;

export interface SubscriberOptions {
  count: number;
  expect: number;
  extra?: string[];
  /** Progress: rows counted from the subscriber's own progress lines. */
  phase?: Phase;
  timeoutS?: number;
}

export interface StartedSubscriber {
  child: Child;
  readyFile: string;
  label: string;
}

export function startSubscriber(ctx: ScenarioContext, server: RunningServer, o: SubscriberOptions): StartedSubscriber {
  const readyFile = path.join(ctx.workDir, `subscriber-${++serial}.ready`);
  const args = [
    '--port', String(server.port), '--count', String(o.count), '--expect', String(o.expect),
    '--ready-file', readyFile, '--timeout-s', String(o.timeoutS ?? 300),
    ...server.subscriberArgs, ...(o.extra ?? []),
  ];
  if (ctx.dropRow !== undefined && server.system === 'gateway') args.push('--drop-row', String(ctx.dropRow));
  const ws = server.subscriberArgs.includes('ws-msgpack') ? ' WebSocket msgpack' : server.subscriberArgs.includes('ws') ? ' WebSocket' : '';
  const label = `${server.system}${ws} subscribers (S=${o.count})`;
  const child = spawnNode(benchScript('load/subscriber.js'), args, {
    label,
    onStderrLine: (line) => {
      const rows = subscriberRows(line);
      if (rows !== null) o.phase?.rows(rows);
    },
  });
  return { child, readyFile, label };
}

/** Waits until every connection is subscribed; fails with the subscriber's own error if it exits first. */
export async function waitSubscribed(sub: StartedSubscriber): Promise<void> {
  try {
    await waitForReadyFile(sub.readyFile, READY_TIMEOUT_MS, sub.child.alive);
  } catch (err) {
    if (!sub.child.alive()) await subscriberResult(sub); // throws with the subscriber's reason
    throw new Error(`${sub.label}: ${(err as Error).message}\n${sub.child.stderrTail()}`);
  }
}

/** The subscriber's result once it has exited; a DeliveryError unless every fast connection got every row. */
export async function subscriberResult(sub: StartedSubscriber): Promise<SubscriberResult> {
  const exit = await sub.child.exited;
  const result = lastJsonLine<SubscriberResult>(sub.child);
  if (result === null) {
    throw new DeliveryError(
      `${sub.label}: exited (code ${exit.code}, signal ${exit.signal}) without a result line\n${sub.child.stderrTail()}`,
    );
  }
  if (!result.ok || exit.code !== 0) {
    throw new DeliveryError(`${sub.label}: delivery check failed: ${result.error ?? `exit code ${exit.code}`}`);
  }
  return result;
}

export interface WriterOptions {
  rows: number;
  extra?: string[];
  phase?: Phase;
}

export function startWriter(server: RunningServer, o: WriterOptions): Child {
  const args = ['--port', String(server.port), '--rows', String(o.rows), ...server.writerArgs, ...(o.extra ?? [])];
  return spawnNode(benchScript('load/writer.js'), args, {
    label: `writer to ${server.system}`,
    onStderrLine: (line) => {
      const rows = writerRows(line);
      if (rows !== null) o.phase?.rows(rows);
    },
  });
}

export async function writerResult(writer: Child): Promise<WriterResult> {
  const exit = await writer.exited;
  const result = lastJsonLine<WriterResult>(writer);
  if (exit.code !== 0 || result === null) {
    throw new Error(`${writer.label} failed (exit code ${exit.code}, signal ${exit.signal}): ${writer.stderrTail()}`);
  }
  return result;
}

/**
 * `result`, unless the writer fails first (refused, dropped): then its error,
 * at once rather than when the subscriber times out waiting for rows.
 */
export function firstFailure<T>(result: Promise<T>, writer: Child): Promise<T> {
  const writerFailed = writer.exited.then((exit) =>
    exit.code === 0 ? new Promise<never>(() => {}) : writerResult(writer).then(() => new Promise<never>(() => {})),
  );
  return Promise.race([result, writerFailed]);
}

/** Starts measuring a server's CPU and peak memory. */
export function usageStart(pid: number): () => ServerUsage {
  let peakReset = true;
  try {
    resetPeakRss(pid);
  } catch {
    peakReset = false;
  }
  const cpu0 = readCpu(pid).cpuSeconds;
  const rssBeforeBytes = readMemory(pid).rssBytes;
  return () => {
    const cpuSeconds = readCpu(pid).cpuSeconds - cpu0;
    const { peakRssBytes } = readMemory(pid);
    // VmHWM restarts at the RSS of the reset, a moment before rssBefore was read: never below it but for that moment's noise.
    return { cpuSeconds, rssBeforeBytes, peakRssBytes, peakGrowthBytes: Math.max(0, peakRssBytes - rssBeforeBytes), peakReset };
  };
}

export interface FanOutRun {
  subscriber: SubscriberResult;
  writer: WriterResult;
  usage: ServerUsage;
}

/**
 * The throughput shape: S subscribers connect (and subscribe), then one
 * writer sends `rows` rows; done when every subscriber has them all. If the
 * subscriber fails first (a lost row), the writer is stopped and the run fails.
 */
export async function runWriterToSubscribers(
  ctx: ScenarioContext,
  server: RunningServer,
  o: {
    subscribers: number;
    rows: number;
    phase?: Phase;
    subscriberExtra?: string[];
    writerExtra?: string[];
    timeoutS?: number;
    /** Where the subscribers connect when not where the writer does (the gateway's WebSocket port). */
    subscribeTo?: RunningServer;
  },
): Promise<FanOutRun> {
  const sub = startSubscriber(ctx, o.subscribeTo ?? server, {
    count: o.subscribers,
    expect: o.rows,
    extra: o.subscriberExtra ?? [],
    timeoutS: o.timeoutS ?? 300,
    ...(o.phase ? { phase: o.phase } : {}),
  });
  try {
    await waitSubscribed(sub);
    const usage = usageStart(server.pid);
    const writer = startWriter(server, { rows: o.rows, extra: o.writerExtra ?? [] });
    // A subscriber that fails early (gap) exits while the writer may still be sending: stop it then.
    void sub.child.exited.then((exit) => {
      if (exit.code !== 0 && writer.alive()) void writer.stop(1000);
    });
    const subscriber = await firstFailure(subscriberResult(sub), writer);
    const used = usage();
    const writerOut = await withTimeout(writerResult(writer), 30_000, `${writer.label} did not finish`);
    return { subscriber, writer: writerOut, usage: used };
  } finally {
    if (sub.child.alive()) await sub.child.stop(1000);
  }
}

/**
 * The gateway's head token of `stream`, asked as a subscriber would
 * (`REPLICATE <stream> NOW` is answered `POSITION <stream> <head>`).
 */
export function streamHead(port: number, stream = 'events'): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no POSITION ${stream} from 127.0.0.1:${port} within 10 s`));
    }, 10_000);
    socket.on('connect', () => socket.write(`REPLICATE ${stream} NOW\n`));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const m = new RegExp(`^POSITION ${stream} (\\d+)$`, 'm').exec(text);
      if (m === null) return;
      clearTimeout(timer);
      socket.destroy();
      resolve(Number(m[1]));
    });
  });
}

/** Polls streamHead until it reaches `token`: the gateway has stored every row a writer sent. */
export async function waitForHead(port: number, token: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const head = await streamHead(port);
    if (head >= token) return;
    if (Date.now() > deadline) throw new Error(`the gateway's head is ${head} after ${timeoutMs} ms, expected ${token}`);
    await sleep(50);
  }
}

/** Retention that keeps every row of a catch-up of `rows` (W3, W7): at least the gateway's defaults. */
export function catchUpRetention(rows: number): { retentionRows: number; retentionBytes: number } {
  return { retentionRows: Math.max(rows, 1_000_000), retentionBytes: Math.max(512 * 1024 ** 2, rows * 400) };
}

/**
 * One subscriber reads `rows` rows from token 0 (checking every row), with the
 * gateway's peak RSS growth over the catch-up: the measurement W3 and W7 share.
 */
export async function catchUpFromZero(
  ctx: ScenarioContext,
  server: RunningServer,
  rows: number,
  title: string,
): Promise<{ result: SubscriberResult; usage: ServerUsage }> {
  const phase = ctx.progress.phase(title, rows);
  const measure = usageStart(server.pid);
  const sub = startSubscriber(ctx, server, { count: 1, expect: rows, extra: ['--from', '0'], phase, timeoutS: 600 });
  let result: SubscriberResult;
  try {
    result = await subscriberResult(sub);
  } catch (err) {
    phase.end('FAILED');
    throw err;
  }
  const usage = measure();
  phase.end(`${formatRate(result.rowsPerSec)} rows/s, peak RSS growth ${formatBytes(usage.peakGrowthBytes)}`);
  return { result, usage };
}
