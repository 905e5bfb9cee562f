// The Redis Streams log against a real redis-server: the stream log
// contract unchanged, then what only a shared log does: two stores (two
// gateways) on one Redis hear one order, race for tokens, see a gap, and
// live through a Redis restart.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Redis } from 'ioredis';
import type { RedisStreamLog } from '../../src/bindings/redis-log.js';
import { RedisLogStore, type RedisLogSpec } from '../../src/bindings/redis-store.js';
import { advanceEntry, type LogEntry, type MemoryLogOptions, type StreamLog } from '../../src/core/stream-log.js';
import { contract, entry, groupText } from '../core/support/log-contract.js';
import { redisSkip, startRedis, type RedisServer } from '../support/redis-server.js';

const skip = redisSkip();

let redis: Promise<RedisServer> | null = null;
const stores: RedisLogStore[] = [];
let prefixes = 0;

function spec(port: number, prefix: string): RedisLogSpec {
  return { kind: 'redis', address: { host: '127.0.0.1', port }, tls: false, username: null, password: null, prefix };
}

async function openStore(prefix: string, healthTimeoutMs = 2_000): Promise<RedisLogStore> {
  redis ??= startRedis();
  const server = await redis;
  const store = await RedisLogStore.open(spec(server.port, prefix), { healthIntervalMs: 200, healthTimeoutMs, blockMs: 500 });
  stores.push(store);
  return store;
}

after(async () => {
  await Promise.all(stores.map((s) => s.close()));
  if (redis !== null) await (await redis).close();
});

if (skip) {
  test('Redis log', { skip }, () => {});
} else {
  let contractStore: Promise<RedisLogStore> | null = null;
  // One store, a fresh key prefix (its own stream) for every log the suite makes.
  const makeLog = async (options?: MemoryLogOptions): Promise<StreamLog> => {
    contractStore ??= openStore('contract');
    return (await contractStore).openLog(`log${++prefixes}`, options ?? {});
  };
  contract('redis log', makeLog, 100);
}

/** What a listener heard: tokens, and whether a gap was reported. */
function hear(log: StreamLog): { tokens: number[]; gaps: number[]; text: string[] } {
  const heard = { tokens: [] as number[], gaps: [] as number[], text: [] as string[] };
  log.listen({
    stored: (e) => {
      heard.tokens.push(e.lastToken);
      heard.text.push(e.bytes.toString());
    },
    gap: (t) => heard.gaps.push(t),
  });
  return heard;
}

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('Redis log shared by two gateways', { skip }, () => {
  let a: RedisLogStore;
  let b: RedisLogStore;
  let n = 0;
  before(async () => {
    a = await openStore('shared');
    b = await openStore('shared');
  });
  /** The same stream opened through both stores. */
  async function pair(options: MemoryLogOptions = { startToken: 0 }): Promise<[RedisStreamLog, RedisStreamLog]> {
    const name = `pair${++n}`;
    const la = await a.openLog(name, options);
    return [la, await b.openLog(name, options)];
  }

  test('both hear every entry once, in token order, whoever appended it; an own entry never before an earlier one of the other', async () => {
    const [la, lb] = await pair();
    const ha = hear(la);
    const hb = hear(lb);
    for (let t = 1; t <= 200; t++) {
      // Each append waits only for its own store to hear it: the other one may not have heard it yet.
      await (t % 2 === 1 ? la : lb).append(entry([{ token: t, rows: 1 + (t % 3) }], 'x'));
    }
    const expected = Array.from({ length: 200 }, (_, i) => i + 1);
    await until('both stores to hear 200 entries', () => ha.tokens.length >= 200 && hb.tokens.length >= 200);
    assert.deepEqual(ha.tokens, expected);
    assert.deepEqual(hb.tokens, expected);
    assert.deepEqual(ha.text, hb.text);
    assert.deepEqual([ha.gaps, hb.gaps], [[], []]);
    assert.equal(la.head, 200);
    assert.equal(lb.head, 200);
  });

  test('two appends racing for one token through two gateways: exactly one is stored, the other fails clearly', async () => {
    const [la, lb] = await pair();
    const ha = hear(la);
    const hb = hear(lb);
    for (let t = 1; t <= 50; t++) {
      const results = await Promise.allSettled([la.append(entry([{ token: t, rows: 1 }], 'a')), lb.append(entry([{ token: t, rows: 1 }], 'b'))]);
      const won = results.filter((r) => r.status === 'fulfilled').length;
      assert.equal(won, 1, `exactly one append of token ${t} succeeded`);
      const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      assert.match(String(lost.reason), /is not above the stream head|another writer appended/);
      await until(`both to hear ${t}`, () => la.head === t && lb.head === t);
    }
    // And a lower token than what the other stored fails too.
    await la.append(entry([{ token: 60, rows: 1 }], 'a'));
    await assert.rejects(lb.append(entry([{ token: 55, rows: 1 }], 'b')), /is not above the stream('s)? head 60/);
    await until('both to hear 60', () => lb.head === 60);
    const expected = [...Array.from({ length: 50 }, (_, i) => i + 1), 60];
    assert.deepEqual(ha.tokens, expected);
    assert.deepEqual(hb.tokens, expected);
    const cursor = (await lb.cursorAfter(0))!;
    const read = (await lb.read(cursor, 1 << 20))!;
    assert.equal(read.lines, 51, 'one stored row per token, none twice');
  });

  test('appends sent behind one that lost a race are never stored', async () => {
    const [la, lb] = await pair();
    const ha = hear(la);
    await lb.append(entry([{ token: 1, rows: 1 }], 'b'));
    await until('A to hear 1', () => la.head === 1);
    // B's 3 and A's 2 race: whichever Redis runs first, A's 4 and 5, sent behind its 2, find the head is not A's.
    const b3 = lb.append(entry([{ token: 3, rows: 1 }], 'b'));
    const answers = await Promise.allSettled([2, 4, 5].map((t) => la.append(entry([{ token: t, rows: 1 }], 'a'))));
    const b3Stored = await b3.then(() => true, () => false);
    assert.deepEqual(answers.slice(1).map((r) => r.status), ['rejected', 'rejected']);
    assert.ok(b3Stored || answers[0]!.status === 'fulfilled', 'one of the racing appends was stored');
    await until('A to settle', () => la.lastAppended === la.head && la.head >= 2);
    const read = (await la.read((await la.cursorAfter(0))!, 1 << 20))!;
    const stored = Buffer.concat(read.chunks).toString().trimEnd().split('\n').map((l) => l.split(' ').slice(1, 3).join(' '));
    assert.deepEqual(stored, ['b 1', ...(answers[0]!.status === 'fulfilled' ? ['a 2'] : []), ...(b3Stored ? ['b 3'] : [])]);
    assert.deepEqual(ha.tokens, stored.map((s) => Number(s.split(' ')[1])));
  });

  test('a catch-up through B reads what was written through A, groups and advances included', async () => {
    const [la, lb] = await pair();
    const written: LogEntry[] = [entry([{ token: 1, rows: 2 }, { token: 2, rows: 1 }], 'c'), advanceEntry(5), entry([{ token: 6, rows: 3 }], 'c')];
    for (const e of written) await la.append(e);
    await until('B to hear 6', () => lb.head === 6);
    const cursor = (await lb.cursorAfter(1))!;
    const read = (await lb.read(cursor, 1 << 20))!;
    assert.equal(Buffer.concat(read.chunks).toString(), groupText('c', { token: 2, rows: 1 }) + groupText('c', { token: 6, rows: 3 }));
    assert.equal(read.lines, 4);
    assert.equal(read.lastToken, 6);
  });

  test('entries B never heard (A restarted the stream meanwhile) are reported as a gap, not skipped', async () => {
    const [la, lb] = await pair();
    const hb = hear(lb);
    await la.append(entry([{ token: 1, rows: 1 }], 'g'));
    await until('B to hear 1', () => lb.head === 1);
    la.restartAt(1000);
    await la.append(entry([{ token: 1001, rows: 1 }], 'g'));
    await until('B to hear 1001', () => lb.head === 1001);
    assert.deepEqual(hb.gaps, [1]);
    assert.deepEqual(hb.tokens, [1, 1001]);
    assert.equal(await lb.cursorAfter(5), null, 'what came before the restart is unknown at B too');
  });
});

describe('Redis log when Redis goes away', { skip }, () => {
  test('appends fail clearly while Redis is down, health says so, and both resume when it is back', async () => {
    // A server of its own: this test stops it.
    const own = await startRedis();
    try {
      const store = await RedisLogStore.open(spec(own.port, 'outage'), { healthIntervalMs: 100, healthTimeoutMs: 1_000, blockMs: 300 });
      stores.push(store);
      const log = await store.openLog('s', { startToken: 0 });
      const heard = hear(log);
      await log.append(entry([{ token: 1, rows: 1 }]));
      assert.equal(store.health().ok, true);
      await own.stop();
      await until('the store to notice', () => !store.health().ok);
      assert.match(store.health().problem ?? '', /Redis at redis:\/\/127\.0\.0\.1:\d+/);
      await assert.rejects(log.append(entry([{ token: 2, rows: 1 }])), /Redis could not store rows of s/);
      assert.equal(log.lastAppended, 1);
      await own.start();
      await until('the store to reconnect', () => store.health().ok, 10_000);
      // Redis lost everything (no persistence): the log goes on from the head it had, without a gap for its listener.
      await log.append(entry([{ token: 2, rows: 1 }]));
      assert.deepEqual(heard.tokens, [1, 2]);
      assert.deepEqual(heard.gaps, []);
    } finally {
      await own.close();
    }
  });
});

/** A TCP proxy to Redis whose current connections can be blackholed: bytes dropped, sockets left open. */
async function blackholeProxy(targetPort: number): Promise<{ port: number; blackhole(): void; close(): Promise<void> }> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket; dropped: boolean }>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    const pair = { client, upstream, dropped: false };
    pairs.add(pair);
    client.on('data', (d) => pair.dropped || upstream.write(d));
    upstream.on('data', (d) => pair.dropped || client.write(d));
    const end = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    blackhole: () => {
      for (const p of pairs) p.dropped = true;
    },
    close: async () => {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise((r) => server.close(r));
    },
  };
}

describe('Redis log when Redis stops answering', { skip }, () => {
  test('a blackholed Redis is noticed within the health timeout: appends fail, /healthz says so, and it recovers on new connections', async () => {
    redis ??= startRedis();
    const proxy = await blackholeProxy((await redis).port);
    try {
      const store = await RedisLogStore.open(spec(proxy.port, 'blackhole'), { healthIntervalMs: 100, healthTimeoutMs: 500, blockMs: 300 });
      stores.push(store);
      const log = await store.openLog('s', { startToken: 0 });
      await log.append(entry([{ token: 1, rows: 1 }]));
      const cursor = log.cursorAfter(0)!;
      proxy.blackhole();
      const since = Date.now();
      // A catch-up read in flight when the link goes is asked again on the new connection.
      const catchUp = log.read(cursor, 1 << 20);
      const stuck = log.append(entry([{ token: 2, rows: 1 }])).then(
        () => null,
        (err: Error) => err,
      );
      await until('the store to notice', () => !store.health().ok, 3_000);
      assert.ok(Date.now() - since < 2_000, `noticed after ${Date.now() - since} ms (PING timeout 500 ms)`);
      assert.match(String(await stuck), /Redis could not store rows of s|XREAD connection failed before the rows were heard back/);
      assert.match(store.health().problem ?? '', /did not answer PING|no XREAD answer|closed|failed/);
      // Both connections are found silent (the reader once its XREAD is past its block time) and replaced by new ones, which pass again.
      const seenDown = new Set<string>();
      await until('both connections to be found silent', () => {
        for (const [link, up] of Object.entries(store.health().links)) if (!up) seenDown.add(link);
        return seenDown.size === 2;
      }, 5_000);
      await until('the store to reconnect', () => store.health().ok, 5_000);
      const read = await catchUp;
      assert.equal(Buffer.concat(read!.chunks).toString(), groupText('s', { token: 1, rows: 1 }));
      await log.append(entry([{ token: 3, rows: 1 }]));
      assert.equal(log.head, 3);
    } finally {
      await proxy.close();
    }
  });
});

describe('opening the Redis log', { skip }, () => {
  test('says which Redis could not be reached and why, and what to do', async () => {
    // A port nothing listens on: take a free one and close it.
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen({ host: '127.0.0.1', port: 0 }, r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    await assert.rejects(
      RedisLogStore.open(spec(port, 'rg')),
      new RegExp(`^Error: could not connect to Redis at redis://127\\.0\\.0\\.1:${port} \\(prefix rg\\): .*ECONNREFUSED.*is redis-server running there\\? check --log`),
    );
  });

  test('a unix socket path', async () => {
    const own = await startRedis({ unixSocket: true });
    try {
      const store = await RedisLogStore.open({ ...spec(0, 'sock'), address: { path: own.socketPath! } });
      stores.push(store);
      const log = await store.openLog('s', { startToken: 0 });
      const heard = hear(log);
      await log.append(entry([{ token: 1, rows: 2 }]));
      assert.deepEqual(heard.tokens, [1]);
      assert.match(store.where, /^unix:\/.*redis\.sock \(prefix sock\)$/);
      await store.close();
    } finally {
      await own.close();
    }
  });

  test('a Redis that wants a password: refused without it (naming RG_REDIS_PASSWORD), opened with it', async () => {
    const own = await startRedis();
    const admin = new Redis({ host: '127.0.0.1', port: own.port });
    try {
      await admin.config('SET', 'requirepass', 'sekrit');
      await assert.rejects(RedisLogStore.open(spec(own.port, 'pw')), /(NOAUTH|WRONGPASS).*RG_REDIS_PASSWORD/);
      await assert.rejects(RedisLogStore.open({ ...spec(own.port, 'pw'), password: 'wrong' }), /RG_REDIS_PASSWORD/);
      const store = await RedisLogStore.open({ ...spec(own.port, 'pw'), password: 'sekrit' });
      stores.push(store);
      const log = await store.openLog('s', { startToken: 0 });
      await log.append(entry([{ token: 1, rows: 1 }]));
      assert.equal(log.head, 1);
    } finally {
      admin.disconnect();
      await own.close();
    }
  });
});
