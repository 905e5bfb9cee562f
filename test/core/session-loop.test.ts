import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClientTransport, TransportEvents } from '../../src/core/client-transport.js';
import { SessionLoop, type Scheduler, type SessionLoopOptions } from '../../src/core/session-loop.js';

interface FakeTimer {
  at: number;
  fn: () => void;
  /** The period of an interval; null for a one-shot timer. */
  everyMs: number | null;
}

/** Time moves only when the test says so; timers fire in time order. */
class FakeScheduler implements Scheduler {
  nowMs = 0;
  readonly timers = new Map<number, FakeTimer>();
  private nextId = 1;

  now(): number {
    return this.nowMs;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    return this.add({ at: this.nowMs + ms, fn, everyMs: null });
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  setInterval(fn: () => void, ms: number): unknown {
    return this.add({ at: this.nowMs + ms, fn, everyMs: ms });
  }
  clearInterval(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  advance(ms: number): void {
    const end = this.nowMs + ms;
    for (;;) {
      let due: [number, FakeTimer] | null = null;
      for (const entry of this.timers) if (entry[1].at <= end && (due === null || entry[1].at < due[1].at)) due = entry;
      if (due === null) break;
      const [id, timer] = due;
      this.nowMs = timer.at;
      if (timer.everyMs === null) this.timers.delete(id);
      else timer.at += timer.everyMs;
      timer.fn();
    }
    this.nowMs = end;
  }

  /** Pending one-shot delays and interval periods, as set. */
  pending(): { timeouts: number[]; intervals: number[] } {
    const timeouts: number[] = [];
    const intervals: number[] = [];
    for (const t of this.timers.values()) {
      if (t.everyMs === null) timeouts.push(t.at - this.nowMs);
      else intervals.push(t.everyMs);
    }
    return { timeouts, intervals };
  }

  private add(timer: FakeTimer): number {
    const id = this.nextId++;
    this.timers.set(id, timer);
    return id;
  }
}

/** One connection attempt; the test plays the network by calling `events`. */
class FakeTransport implements ClientTransport {
  events!: TransportEvents;
  readonly lines: string[] = [];
  closeCalls = 0;
  pauseCalls = 0;
  resumeCalls = 0;

  connect(events: TransportEvents): void {
    this.events = events;
  }
  write(chunks: Buffer[]): boolean {
    for (const c of chunks) this.lines.push(...c.toString('utf8').split('\n').filter((l) => l !== ''));
    return true;
  }
  close(): void {
    this.closeCalls++;
  }
  pause(): void {
    this.pauseCalls++;
  }
  resume(): void {
    this.resumeCalls++;
  }
  feed(text: string): void {
    this.events.data(Buffer.from(text, 'utf8'));
  }
}

interface Harness {
  loop: SessionLoop;
  clock: FakeScheduler;
  transports: FakeTransport[];
  /** Events and log lines, in order. */
  seen: unknown[][];
  /** The newest transport. */
  last(): FakeTransport;
}

function harness(options: Partial<Omit<SessionLoopOptions, 'transport' | 'scheduler' | 'events' | 'log'>> = {}): Harness {
  const clock = new FakeScheduler();
  const transports: FakeTransport[] = [];
  const seen: unknown[][] = [];
  const loop = new SessionLoop({
    transport: () => {
      const t = new FakeTransport();
      transports.push(t);
      return t;
    },
    scheduler: clock,
    log: {
      info: (_obj, msg) => seen.push(['log', msg]),
      warn: (_obj, msg) => seen.push(['log', msg]),
    },
    events: {
      connected: (serverName) => seen.push(['connected', serverName]),
      disconnected: (reason, retryInMs) => seen.push(['disconnected', reason, retryInMs]),
      error: (err) => seen.push(['error', err.code]),
      rows: (batch) => seen.push(['rows', batch.stream, batch.token]),
      position: (stream, token) => seen.push(['position', stream, token]),
      closed: () => seen.push(['closed']),
      stopped: (err) => seen.push(['stopped', err.code]),
    },
    // random() = 1: every delay is its full step, 100, 200, 400 ms...
    backoff: { random: () => 1, ...options.backoff },
    ...(options.connection !== undefined ? { connection: options.connection } : {}),
    ...(options.tickMs !== undefined ? { tickMs: options.tickMs } : {}),
    ...(options.onRefused !== undefined ? { onRefused: options.onRefused } : {}),
  });
  return { loop, clock, transports, seen, last: () => transports[transports.length - 1]! };
}

test('reconnects after a drop once the backoff delay has passed on the scheduler, the delay growing', () => {
  const h = harness();
  h.loop.conn.follow('events', 'NOW', 0);
  h.loop.start();
  assert.equal(h.transports.length, 1);
  assert.equal(h.loop.state, 'connecting');
  h.clock.advance(10);
  h.last().events.open();
  assert.equal(h.loop.state, 'open');
  assert.deepEqual(h.last().lines, ['PING 10', 'REPLICATE events NOW']);

  h.last().events.close('peer closed');
  assert.equal(h.loop.state, 'waiting');
  assert.deepEqual(h.seen, [['log', 'replication connection lost'], ['disconnected', 'peer closed', 100]]);
  assert.deepEqual(h.clock.pending(), { timeouts: [100], intervals: [] });
  h.clock.advance(99);
  assert.equal(h.transports.length, 1);
  h.clock.advance(1);
  assert.equal(h.transports.length, 2);
  assert.equal(h.loop.state, 'connecting');

  // Never opened: a failed connect, and the next step of the backoff.
  h.last().events.close('ECONNREFUSED');
  assert.deepEqual(h.seen.slice(2), [['log', 'replication connect failed'], ['disconnected', 'ECONNREFUSED', 200]]);
  h.clock.advance(200);
  assert.equal(h.transports.length, 3);
  h.last().events.close('ECONNREFUSED');
  assert.deepEqual(h.seen.at(-1), ['disconnected', 'ECONNREFUSED', 400]);
});

test('starts again from the initial delay after a healthy connection, and only then', () => {
  const h = harness({ backoff: { healthyAfterMs: 5000 } });
  /** The next connection comes up, SERVER arrives, and it is cut after upMs; returns the next delay. */
  const serveFor = (upMs: number): unknown => {
    h.last().events.open();
    h.last().feed('SERVER gw\n');
    h.clock.advance(upMs);
    h.last().events.close('peer closed');
    const delayMs = h.seen.at(-1)![2];
    h.clock.advance(delayMs as number);
    return delayMs;
  };
  h.loop.start();
  h.last().events.close('ECONNREFUSED');
  h.clock.advance(100);
  h.last().events.close('ECONNREFUSED');
  h.clock.advance(200);
  // Up with SERVER, but cut after 1 s: not healthy, the delay keeps growing.
  assert.equal(serveFor(1000), 400);
  // Up with SERVER for 5 s: healthy, back to the first step.
  assert.equal(serveFor(5000), 100);
  assert.equal(serveFor(0), 200);
  assert.deepEqual(
    h.seen.filter((e) => e[0] === 'connected' || e[0] === 'disconnected'),
    [
      ['disconnected', 'ECONNREFUSED', 100],
      ['disconnected', 'ECONNREFUSED', 200],
      ['connected', 'gw'],
      ['disconnected', 'peer closed', 400],
      ['connected', 'gw'],
      ['disconnected', 'peer closed', 100],
      ['connected', 'gw'],
      ['disconnected', 'peer closed', 200],
    ],
  );
});

test('told to keep trying, waits the long refusal delay when SERVER names another server', () => {
  const h = harness({ connection: { expectedServerName: 'gw' }, backoff: { refusedMs: 30_000 }, onRefused: 'retry' });
  h.loop.start();
  h.last().events.open();
  h.last().feed('SERVER someone-else\n');
  assert.deepEqual(h.seen, [['log', 'closing the replication connection'], ['error', 'WRONG_REMOTE']]);
  assert.equal(h.last().lines.at(-1), 'ERROR Wrong remote');
  assert.equal(h.last().closeCalls, 1);
  h.last().events.close('closed by client');
  assert.deepEqual(h.seen.at(-1), ['disconnected', 'closed by client', 30_000]);
});

test('stops, without reconnecting, when SERVER names another server', () => {
  const h = harness({ connection: { expectedServerName: 'gw' } });
  h.loop.start();
  h.last().events.open();
  h.last().feed('SERVER someone-else\n');
  h.last().events.close('closed by client');
  assert.deepEqual(h.seen.slice(-3), [['log', 'replication refused: not reconnecting'], ['stopped', 'WRONG_REMOTE'], ['closed']]);
  assert.equal(h.loop.state, 'closed');
  h.clock.advance(60_000);
  assert.equal(h.transports.length, 1, 'no second connection');
});

for (const [line, code] of [
  ['ERROR AUTH failed: the token matches no configured credential', 'AUTH_FAILED'],
  ['ERROR authentication required: send AUTH <token> before REPLICATE', 'AUTH_REQUIRED'],
  ['ERROR unknown stream: evnets', 'UNKNOWN_STREAM'],
  ['ERROR not permitted to read stream events', 'NOT_PERMITTED'],
] as const) {
  test(`stops on the server's refusal ${code}, reported with its code; told to keep trying, waits the refusal delay`, () => {
    const h = harness();
    h.loop.start();
    h.last().events.open();
    h.last().feed(`${line}\n`);
    assert.deepEqual(h.seen.at(-1), ['error', code]);
    h.last().events.close('peer closed');
    assert.deepEqual(h.seen.slice(-2), [['stopped', code], ['closed']]);
    h.clock.advance(60_000);
    assert.equal(h.transports.length, 1);
    assert.equal(h.loop.close() instanceof Promise, true, 'close() after a stop still answers');

    const retrying = harness({ onRefused: 'retry', backoff: { refusedMs: 20_000 } });
    retrying.loop.start();
    retrying.last().events.open();
    retrying.last().feed(`${line}\n`);
    retrying.last().events.close('peer closed');
    assert.deepEqual(retrying.seen.at(-1), ['disconnected', 'peer closed', 20_000]);
    retrying.clock.advance(20_000);
    assert.equal(retrying.transports.length, 2, 'tried again after the refusal delay');
  });
}

test('reports ERROR from the server as a REMOTE_ERROR and keeps the connection to the server', () => {
  const h = harness();
  h.loop.start();
  h.last().events.open();
  h.last().feed('ERROR not today\n');
  assert.deepEqual(h.seen, [['log', 'replication server sent ERROR'], ['error', 'REMOTE_ERROR']]);
  assert.equal(h.last().closeCalls, 0);
});

test('keeps alive with one interval timer while open, and stops it on a drop', () => {
  const h = harness({ connection: { pingIntervalMs: 1000 } });
  h.loop.start();
  assert.deepEqual(h.clock.pending(), { timeouts: [], intervals: [] });
  h.last().events.open();
  // The default period: a fifth of the ping interval.
  assert.deepEqual(h.clock.pending(), { timeouts: [], intervals: [200] });
  h.clock.advance(999);
  assert.deepEqual(h.last().lines, ['PING 0']);
  h.clock.advance(1);
  assert.deepEqual(h.last().lines, ['PING 0', 'PING 1000']);
  h.last().events.close('peer closed');
  assert.deepEqual(h.clock.pending(), { timeouts: [100], intervals: [] });
});

test('ignores the events of a transport it has replaced', () => {
  const h = harness();
  h.loop.start();
  const old = h.last();
  old.events.open();
  old.events.close('peer closed');
  h.clock.advance(100);
  assert.equal(h.transports.length, 2);
  old.events.open();
  old.feed('SERVER stale\n');
  old.events.close('again');
  assert.equal(h.loop.state, 'connecting');
  assert.deepEqual(h.seen, [['log', 'replication connection lost'], ['disconnected', 'peer closed', 100]]);
});

test('pauses the transport while paused, also one opened later, and resumes once per pause', () => {
  const h = harness();
  h.loop.pause();
  h.loop.pause();
  h.loop.start();
  h.last().events.open();
  assert.equal(h.last().pauseCalls, 1);
  h.loop.resume();
  assert.equal(h.last().resumeCalls, 0);
  h.loop.resume();
  assert.equal(h.last().resumeCalls, 1);
  h.loop.resume();
  assert.equal(h.last().resumeCalls, 1);
});

test('close() stops everything: the connection, the keep-alive, the reconnecting', async () => {
  const h = harness();
  h.loop.start();
  h.last().events.open();
  let resolved = false;
  const done = h.loop.close().then(() => (resolved = true));
  assert.equal(h.loop.state, 'closed');
  assert.equal(h.last().closeCalls, 1);
  assert.deepEqual(h.clock.pending(), { timeouts: [], intervals: [] });
  await Promise.resolve();
  assert.equal(resolved, false, 'resolves only once the transport has closed');
  h.last().events.close('closed by client');
  await done;
  h.clock.advance(60_000);
  h.loop.start();
  assert.equal(h.transports.length, 1);
  assert.deepEqual(h.seen, [['closed']]);
  await h.loop.close();
});

test('close() while waiting to reconnect cancels the retry and resolves at once', async () => {
  const h = harness();
  h.loop.start();
  h.last().events.close('ECONNREFUSED');
  assert.deepEqual(h.clock.pending(), { timeouts: [100], intervals: [] });
  await h.loop.close();
  assert.deepEqual(h.clock.pending(), { timeouts: [], intervals: [] });
  h.clock.advance(60_000);
  assert.equal(h.transports.length, 1);
  assert.deepEqual(h.seen.at(-1), ['closed']);
});
