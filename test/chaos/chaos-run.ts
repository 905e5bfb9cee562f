// The chaos run, for the CI test (test/chaos/chaos.test.ts) and for people
// (`npm run chaos -- --rows 5000000 --seed N`): `replication-gateway serve`
// on --log file:DIR as a child process, one ReplicationWriter publishing the
// seed's input (chaos-input.ts) on three streams with start token 1, and ten
// ReplicationClients (four over WebSocket). Each of them reaches the gateway
// through its own cuttable proxy, so a cut lands anywhere in a line or batch.
// A driver seeded from the same seed, at random moments: cuts subscriber
// connections, cuts the writer's, closes the writer and runs the input
// again from its start (only what the gateway lacks is sent), pauses a TCP
// subscriber's reading until the gateway lists it as cut ("Failed to keep
// up"), and SIGKILLs the gateway and starts it again on the same directory
// and ports. Every delivery is checked as it arrives; at the end every
// subscriber holds each stream's tokens 1..head with exactly their rows.

import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { wsClientTransport, type WebSocketConstructor } from '../../src/browser/ws-transport.js';
import { ReplicationClient, ReplicationWriter, type SessionOptions } from '../../src/index.js';
import { startGatewayChild, type GatewayChild } from '../support/gateway-child.js';
import { startCuttableProxy, type CuttableProxy } from '../support/cuttable-proxy.js';
import { CHAOS_STREAMS, SequenceChecker, publishSteps, seededRandom, type SequenceFault } from './chaos-input.js';

export interface ChaosOptions {
  seed: number;
  /** Rows the writer publishes (the last batch may add up to 4). */
  rows: number;
  /** SIGKILLs of the gateway, at random points of the write (default: 6, and one more per 40,000 rows past 240,000). */
  gatewayKills?: number;
  /** Times the writer is closed and the input run again from its start (default 3). */
  writerReruns?: number;
  /** Called with a progress line every progressMs (default 5000). */
  progress?: (line: string) => void;
  progressMs?: number;
  /** How long the subscribers may take to reach the heads once the writer is done (default 120000). */
  settleTimeoutMs?: number;
}

export interface ChaosFaults {
  gatewayKills: number;
  subscriberCuts: number;
  writerCuts: number;
  writerReruns: number;
  /** Short pauses (under the stall limit): past the queue limits the subscriber reads from the log, and is not cut. */
  subscriberPauses: number;
  /** Long pauses the gateway answered with a stall cut of that subscriber (ERROR Failed to keep up). */
  stallCuts: number;
}

export interface ChaosReport {
  seed: number;
  rows: number;
  /** The last token per stream. */
  heads: Record<string, number>;
  faults: ChaosFaults;
  /** Rows the writer's re-runs found stored already (not sent again). */
  alreadyStored: number;
  seconds: number;
}

const SUBSCRIBERS = 10;
/** Which of the ten go over WebSocket. */
const WS_SUBSCRIBERS = new Set([1, 4, 7, 9]);
/** Which start late (half the rows written), so they catch up from 0 beside the live ones. */
const LATE_SUBSCRIBERS = new Set([8, 9]);
const WRITER_TOKEN = 'chaos-writer-token';
/** Small queue limits, so a short pause puts a subscriber past them (it then reads from the log). */
const MAX_QUEUE_COMMANDS = 2000;
const MAX_QUEUE_BYTES = '1MiB';
/** A short stall limit, so a long pause is cut within seconds. */
const MAX_STALL_MS = 1_500;
/** A short pause lasts up to this long: under the stall limit. */
const SHORT_PAUSE_MS = 1_000;
/** A long pause ends by itself after this long without a cut (a gateway restart resets its cut list). */
const PAUSE_LIMIT_MS = 30_000;
/** Keeps publish() near what the gateway holds, so "after N rows" means stored rows, and a kill lands mid-write. */
const WRITER_UNSTORED_ROWS = 5_000;
const SESSION: Partial<SessionOptions> = { pingIntervalMs: 1_000, pingTimeoutMs: 10_000, backoff: { initialMs: 20, maxMs: 200, healthyAfterMs: 0 } };

interface Subscriber {
  readonly name: string;
  readonly overWs: boolean;
  readonly proxy: CuttableProxy;
  readonly checker: SequenceChecker;
  client: ReplicationClient | null;
  rewinds: number;
}

/** Runs the chaos; resolves with what was done, throws naming the first fault found (and the seed). */
export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const { seed, rows } = opts;
  const started = Date.now();
  const rand = seededRandom(seed);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rg-chaos-'));
  const gatewayLog = createWriteStream(path.join(dir, 'gateway.log'));
  const readyFile = path.join(dir, 'ready.json');
  const [tcpPort, httpPort] = [await freePort(), await freePort()];
  const faults: ChaosFaults = { gatewayKills: 0, subscriberCuts: 0, writerCuts: 0, writerReruns: 0, subscriberPauses: 0, stallCuts: 0 };
  const killsWanted = opts.gatewayKills ?? 6 + Math.max(0, Math.ceil((rows - 240_000) / 40_000));
  const rerunsWanted = opts.writerReruns ?? 3;

  const startGateway = (): Promise<GatewayChild> => {
    rmSync(readyFile, { force: true }); // a killed gateway leaves its ready file behind
    return startGatewayChild({
      args: [
        '--listen', `127.0.0.1:${tcpPort}`, '--http', `127.0.0.1:${httpPort}`,
        '--log', `file:${path.join(dir, 'log')}`, '--streams', CHAOS_STREAMS.join(','), '--writer-token', WRITER_TOKEN,
        '--max-queue-commands', String(MAX_QUEUE_COMMANDS), '--max-queue-bytes', MAX_QUEUE_BYTES, '--max-stall-ms', String(MAX_STALL_MS), '--log-level', 'warn',
      ],
      readyFile,
      readyTimeoutMs: 30_000,
      stdout: (out) => out.pipe(gatewayLog, { end: false }),
    });
  };
  let gw = await startGateway();

  const writerProxy = await startCuttableProxy(tcpPort);
  const newWriter = (): ReplicationWriter => {
    const w = new ReplicationWriter({ port: writerProxy.port, auth: WRITER_TOKEN, streams: CHAOS_STREAMS, startToken: 1, name: 'chaos-writer', maxUnstoredRows: WRITER_UNSTORED_ROWS, ...SESSION });
    w.on('error', () => {}); // it reconnects by itself; what it stored is checked at the subscribers
    return w.start();
  };
  let writer = newWriter();

  const subscribers: Subscriber[] = [];
  for (let i = 0; i < SUBSCRIBERS; i++) {
    const overWs = WS_SUBSCRIBERS.has(i);
    const proxy = await startCuttableProxy(overWs ? httpPort : tcpPort);
    subscribers.push({ name: `chaos-sub-${i}${overWs ? '-ws' : ''}`, overWs, proxy, checker: new SequenceChecker(seed), client: null, rewinds: 0 });
  }
  const startSubscriber = (sub: Subscriber): void => {
    const transport = sub.overWs
      ? { transport: wsClientTransport({ url: `ws://127.0.0.1:${sub.proxy.port}/replication`, WebSocket: WebSocket as unknown as WebSocketConstructor }) }
      : { port: sub.proxy.port };
    const client = new ReplicationClient({ ...transport, name: sub.name, streams: Object.fromEntries(CHAOS_STREAMS.map((s) => [s, 0])), ...SESSION });
    client.on('rows', (stream, token, got) => sub.checker.receive(stream, token, got.map((r) => r.rowJson)));
    client.on('rewound', () => sub.rewinds++);
    client.on('error', () => {}); // cuts and restarts are the point; it reconnects by itself
    sub.client = client.start();
  };
  for (const [i, sub] of subscribers.entries()) if (!LATE_SUBSCRIBERS.has(i)) startSubscriber(sub);

  let keepDir = false;
  let published = 0;
  let writing = true;
  let rerunRequested = false;
  let alreadyStored = 0;
  const heads: Record<string, number> = {};
  const progress = opts.progress === undefined ? null : setInterval(() => opts.progress!(progressLine()), opts.progressMs ?? 5_000);
  // A cut asked for while a connection is down is not made: count the cuts the proxies made.
  const countCuts = (): void => {
    faults.subscriberCuts = subscribers.reduce((n, s) => n + s.proxy.cuts, 0);
    faults.writerCuts = writerProxy.cuts;
  };
  const progressLine = (): string => {
    countCuts();
    const reached = subscribers.map((s) => s.checker.rowsReceived.reduce((a, b) => a + b, 0));
    return `${Math.round((Date.now() - started) / 1000)} s: written ${published}/${rows} rows; subscribers hold ${Math.min(...reached)} to ${Math.max(...reached)}; faults ${JSON.stringify(faults)}`;
  };

  try {
    // The fault driver: kills at random points of the write, other faults at random moments in between.
    const killAt = Array.from({ length: killsWanted }, () => Math.floor((0.05 + rand() * 0.9) * rows)).sort((x, y) => x - y);
    let pausing: Promise<void> | null = null;
    let paused: Subscriber | null = null;
    /** A long pause is on: kills wait (a restart would start the paused connection's stall over). */
    let stalling = false;
    // A short pause falls behind to the log and catches up; a long one stalls past the limit and is cut.
    const pause = async (sub: Subscriber, long: boolean): Promise<void> => {
      const client = sub.client!;
      const since = Date.now();
      client.pause();
      paused = sub;
      stalling = long;
      // A long pause also stops its proxy reading, so only the gateway's side must fill before it stalls.
      if (long) sub.proxy.hold(true);
      if (!long) {
        faults.subscriberPauses++;
        await sleep(200 + Math.floor(rand() * (SHORT_PAUSE_MS - 200)));
      }
      while (long && writing && Date.now() - since < PAUSE_LIMIT_MS) {
        await sleep(50);
        if (await cutListed(httpPort, sub.name, since)) {
          faults.stallCuts++;
          break;
        }
      }
      sub.proxy.hold(false);
      client.resume();
      paused = null;
      stalling = false;
    };
    const driver = (async () => {
      while (faults.gatewayKills < killsWanted) {
        await sleep(10 + Math.floor(rand() * 90));
        if ((published >= killAt[faults.gatewayKills]! && !stalling) || !writing) {
          gw.child.kill('SIGKILL');
          const exit = await gw.exited;
          if (exit.signal !== 'SIGKILL') throw new Error(`the gateway exited by itself (${JSON.stringify(exit)}) before the kill; stderr: ${gw.stderr()}`);
          faults.gatewayKills++;
          await sleep(Math.floor(rand() * 200));
          gw = await startGateway();
          continue;
        }
        // Each kind of pause comes at least once: a long one early (the kernel's socket buffers, several MiB,
        // must fill before the gateway sees a stalled socket, so most of the rows must still be to come), a short one later.
        const longDue = faults.stallCuts === 0 && published > rows * 0.1;
        const shortDue = faults.subscriberPauses === 0 && published > rows * 0.5;
        const pauseDue: boolean = pausing === null && (longDue || shortDue);
        // A writer re-run comes at least once too, with a third of the rows stored for it to find (a fast run may draw none).
        const rerunDue = faults.writerReruns === 0 && !rerunRequested && published > rows * 0.3;
        const r = pauseDue ? 0.8 : rerunDue ? 0.87 : rand();
        const live = subscribers.filter((s) => s.client !== null);
        if (r < 0.45) {
          // Not the paused one: a new connection would start its stall over.
          const cuttable = live.filter((s) => s !== paused);
          cuttable[Math.floor(rand() * cuttable.length)]!.proxy.cutAfter(Math.floor(rand() * 32_768));
        } else if (r < 0.7) {
          writerProxy.cutAfter(Math.floor(rand() * 4_096));
        } else if (r < 0.85) {
          const tcp = live.filter((s) => !s.overWs);
          const sub = tcp[Math.floor(rand() * tcp.length)]!;
          const long: boolean = pauseDue ? longDue : rand() < 0.5;
          if (pausing === null) pausing = pause(sub, long).finally(() => (pausing = null));
        } else if (r < 0.9 && faults.writerReruns < rerunsWanted && published > rows * 0.1 * (faults.writerReruns + 1)) {
          rerunRequested = true;
        }
      }
    })();
    // A driver that fails (a gateway that will not start again) ends the run, not a writer left waiting.
    const driverFailed = driver.then(() => new Promise<never>(() => {}));

    // The writer: the input from its start, again after each re-run; the input fixes every token.
    const write = async (): Promise<void> => {
      for (let run = 0; ; run++) {
        let sent = 0;
        let rerun = false;
        for (const step of publishSteps(seed, rows)) {
          if (rerunRequested) {
            rerun = true;
            break;
          }
          const token = await writer.publish(step.stream, step.rows);
          if (token !== step.token) throw new Error(`the writer gave ${step.stream} row token ${token}, the input says ${step.token} (seed ${seed}, run ${run})`);
          sent += step.rows.length;
          if (sent > published) published = sent;
          heads[step.stream] = step.token;
          if (sent >= rows / 2) for (const [i, sub] of subscribers.entries()) if (LATE_SUBSCRIBERS.has(i) && sub.client === null) startSubscriber(sub);
        }
        if (!rerun) break;
        // A writer that dies: what it had not got stored is gone with it; the next run sends it.
        alreadyStored += writer.alreadyStored;
        await writer.close();
        writer = newWriter();
        rerunRequested = false;
        faults.writerReruns++;
      }
      await writer.flush();
    };
    await Promise.race([write(), driverFailed]);
    alreadyStored += writer.alreadyStored;
    writing = false;
    await driver;
    await pausing;

    const settleMs = opts.settleTimeoutMs ?? 120_000;
    const deadline = Date.now() + settleMs;
    const atHeads = (s: Subscriber): boolean => CHAOS_STREAMS.every((st, i) => s.checker.lastToken[i] === heads[st]);
    while (!subscribers.every((s) => s.checker.fault !== null || atHeads(s))) {
      if (Date.now() > deadline) {
        const behind = subscribers.filter((s) => !atHeads(s)).map((s) => `${s.name} at ${JSON.stringify(s.checker.lastToken)}`);
        throw new Error(`not every subscriber reached the heads ${JSON.stringify(heads)} within ${settleMs} ms: ${behind.join(', ')} (seed ${seed})`);
      }
      await sleep(20);
    }
    for (const sub of subscribers) {
      const f: SequenceFault | null = sub.checker.fault;
      if (f !== null) throw new Error(`${sub.name}, stream ${f.stream}, token ${f.token}: ${f.what} (seed ${seed}; faults so far ${JSON.stringify(faults)})`);
      if (sub.rewinds > 0) throw new Error(`${sub.name} was rewound ${sub.rewinds} times: the file log lost rows it had served (seed ${seed})`);
    }
    countCuts();
    return { seed, rows: published, heads, faults, alreadyStored, seconds: (Date.now() - started) / 1000 };
  } catch (err) {
    keepDir = true;
    if (err instanceof Error) err.message += ` (the gateway's log lines and its --log directory are kept in ${dir})`;
    throw err;
  } finally {
    writing = false;
    if (progress !== null) clearInterval(progress);
    await Promise.all([writer.close(), ...subscribers.map((s) => s.client?.close())]);
    await Promise.all([writerProxy.close(), ...subscribers.map((s) => s.proxy.close())]);
    await gw.stop();
    gatewayLog.end();
    if (!keepDir) rmSync(dir, { recursive: true, force: true });
  }
}

/** Whether the gateway's /congestion lists a cut of `name` since `sinceMs` (false while it is down). */
async function cutListed(httpPort: number, name: string, sinceMs: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${httpPort}/congestion`, { signal: AbortSignal.timeout(2_000) });
    const body = (await res.json()) as { cuts: { name: string | null; at: number }[] };
    return body.cuts.some((c) => c.name === name && c.at >= sinceMs);
  } catch {
    return false;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
