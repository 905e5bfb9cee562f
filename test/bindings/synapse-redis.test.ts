import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { SynapseRedisLink } from '../../src/bindings/synapse-redis.js';
import { parseSynapseRedisUrl } from '../../src/core/synapse-redis-url.js';
import { fetchStreamUpdates } from '../../src/bindings/synapse-http.js';
import { SynapseFollower } from '../../src/core/synapse-follower.js';
import type { LogEntry } from '../../src/core/stream-log.js';
import { SynapseHistory, memoryPairLogs } from '../../src/gateway/synapse-history.js';
import { redisSkip, startRedis, type RedisServer } from '../support/redis-server.js';
import { REPLICATION_SECRET, fakeEndpoint } from '../support/fake-replication-endpoint.js';
import { loadRecording, synapsePublishes, todayRecordingsSkip, type HttpEvent, type PublishEvent } from '../support/synapse-today.js';

const quiet = pino({ level: 'silent' });

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A follower wired as serve wires it, with every stored entry recorded per pair. */
function gatewaySide(port: number, serverName: string, endpoint: URL | null = null) {
  const history = new SynapseHistory(
    memoryPairLogs({ retentionRows: 1_000_000, retentionBytes: 64 * 1024 * 1024 }),
    quiet,
    () => (endpoint === null ? null : (stream, from, upto) => fetchStreamUpdates({ base: endpoint, secret: REPLICATION_SECRET }, stream, from, upto)),
  );
  const entries = new Map<string, LogEntry[]>();
  history.onPairLog((pair, log) => {
    const list: LogEntry[] = [];
    entries.set(`${pair.stream}/${pair.instance}`, list);
    log.listen({ stored: (e) => list.push(e), gap: () => assert.fail('a memory log never reports a gap') });
  });
  const follower = new SynapseFollower(history);
  const link = new SynapseRedisLink({
    spec: parseSynapseRedisUrl(`redis://127.0.0.1:${port}`)!,
    serverName,
    userIp: false,
    logger: quiet,
    onConnect: () => follower.connected(),
    onLine: (line) => follower.line(line),
    healthIntervalMs: 200,
  });
  return { history, entries, follower, link };
}

/** Everything published on `channels`, as a spy subscriber sees it. */
async function spy(port: number, channels: string[]): Promise<{ seen: string[]; redis: Redis }> {
  const redis = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
  await redis.connect();
  const seen: string[] = [];
  redis.on('message', (_channel: string, message: string) => seen.push(message));
  await redis.subscribe(...channels);
  return { seen, redis };
}

/** Replays publishes in order; pauses over 50 ms in the recording become 2 ms. */
async function replay(publisher: Redis, events: PublishEvent[]): Promise<void> {
  let lastT = events[0]?.t ?? 0;
  for (const e of events) {
    if (e.t - lastT > 50) await new Promise((resolve) => setTimeout(resolve, 2));
    lastT = e.t;
    await publisher.publish(e.channel, e.payload);
  }
}

describe('following a Synapse deployment on a real redis-server', { skip: redisSkip() || todayRecordingsSkip() }, () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.close();
  });

  for (const name of ['02_live_multiwriter_events_and_caches', '03_live_other_streams', '06_non_stream_commands', '07_sync_worker_reconnect_gap_fill', '08_http_catchup_contract']) {
    test(`${name} replayed: every row of every (stream, instance) stored once, in order, batches grouped; the gateway publishes only REPLICATE`, async () => {
      const recording = loadRecording(name);
      const serverName = recording.server_name;
      const watcher = await spy(redis.port, [serverName, `${serverName}/USER_IP`]);
      const publisher = new Redis({ host: '127.0.0.1', port: redis.port });
      const g = gatewaySide(redis.port, serverName);
      try {
        await g.link.start();
        await until('the gateway REPLICATE', () => watcher.seen.length === 1);
        assert.deepEqual(watcher.seen, ['REPLICATE ']);
        const events = synapsePublishes(recording);
        await replay(publisher, events);
        // Every row is kept, backfill's descending one (6 after 7, in 02) too, right after the row it follows.
        const kept = events.filter((e) => e.channel === serverName && e.payload.startsWith('RDATA ')).map((e) => e.payload);
        await until('every row stored', () => g.history.stats().rows === kept.length);
        await until('the spy heard the replay', () => watcher.seen.length === events.length + 1);

        const pairs = new Set(kept.map((p) => p.split(' ').slice(1, 3).join('/')));
        assert.deepEqual([...g.entries.keys()].filter((k) => pairs.has(k)).sort(), [...pairs].sort());
        for (const [key, list] of g.entries) {
          const [stream, instance] = key.split('/') as [string, string];
          const stored = list.flatMap((e) => e.bytes.toString('utf8').split('\n').slice(0, -1));
          assert.deepEqual(stored, kept.filter((p) => p.startsWith(`RDATA ${stream} ${instance} `)), `${key}: the stored lines are the published payloads, in order, once`);
          let last = -1;
          for (const e of list) {
            const descending = e.lines > 0 && Number(e.bytes.toString('utf8').trimEnd().split('\n').pop()!.split(' ')[3]) < e.lastToken;
            assert.ok(e.lastToken > last || (descending && e.lastToken === last), `${key}: tokens rise, but for a descending row stored at the token it follows`);
            last = e.lastToken;
            // An entry is whole groups: its last line is the numbered row (or it is an advance).
            if (e.lines > 0) assert.doesNotMatch(e.bytes.toString('utf8').trimEnd().split('\n').pop()!, /^RDATA \S+ \S+ batch /);
          }
        }
        if (name.startsWith('02_')) {
          const topic = g.entries.get('events/event_persister1')!.find((e) => e.lastToken === 1034)!;
          assert.equal(topic.lines, 2, 'the batch row and its numbered row are one entry');
        }
        assert.equal(g.history.stats().descendingRows, name.startsWith('02_') ? 1 : 0);
        assert.equal(g.history.stats().lateRows, 0);
        assert.equal(g.history.stats().gapsOpen, 0);
        // The gateway itself published one REPLICATE and nothing else.
        const ours = watcher.seen.slice();
        for (const e of events) ours.splice(ours.indexOf(e.payload), 1);
        assert.deepEqual(ours, ['REPLICATE ']);
      } finally {
        await g.link.stop();
        publisher.disconnect();
        watcher.redis.disconnect();
      }
    });
  }

  test('the subscription cut mid-stream: the gateway resubscribes, sends REPLICATE again, and the rows it missed are a recorded gap', async () => {
    const serverName = 'cut.example.com';
    const watcher = await spy(redis.port, [serverName]);
    const publisher = new Redis({ host: '127.0.0.1', port: redis.port });
    const g = gatewaySide(redis.port, serverName);
    try {
      await g.link.start();
      await until('the first REPLICATE', () => watcher.seen.includes('REPLICATE '));
      await publisher.publish(serverName, 'POSITION to_device to_device_writer1 418 418');
      await publisher.publish(serverName, 'RDATA to_device to_device_writer1 419 ["@alice:example.com"]');
      await until('row 419', () => g.history.stats().rows === 1);
      // Drop the gateway's subscriber connection (and only it: the spy is subscribed too, so name it).
      const clients = (await publisher.client('LIST')) as string;
      const id = /id=(\d+) [^\n]*name=replication-gateway-follower/.exec(clients)![1]!;
      await publisher.client('KILL', 'ID', id);
      await publisher.publish(serverName, 'RDATA to_device to_device_writer1 420 ["@bob:example.com"]');
      await until('the resubscription', () => g.link.health().connects === 2);
      await until('the second REPLICATE', () => watcher.seen.filter((s) => s === 'REPLICATE ').length === 2);
      await publisher.publish(serverName, 'POSITION to_device to_device_writer1 420 420');
      await publisher.publish(serverName, 'RDATA to_device to_device_writer1 421 ["@carol:example.com"]');
      await until('row 421', () => g.history.stats().rows === 2);
      const pair = g.history.pair('to_device', 'to_device_writer1')!;
      assert.deepEqual(pair.gaps.map((x) => [x.afterToken, x.uptoToken]), [[419, 420]]);
      // Catch-up from before the gap is refused (the log restarted at 420); from the gap's end it is complete.
      assert.equal(pair.log!.cursorAfter(419), null);
      assert.notEqual(pair.log!.cursorAfter(420), null);
    } finally {
      await g.link.stop();
      publisher.disconnect();
      watcher.redis.disconnect();
    }
  });

  test('with USER_IP: its payloads go to onUserIp and the main channel\'s to the follower, LF added; answered PINGs keep the subscription', async () => {
    const serverName = 'userip.example.com';
    const publisher = new Redis({ host: '127.0.0.1', port: redis.port });
    const lines: string[] = [];
    const userIp: string[] = [];
    const link = new SynapseRedisLink({
      spec: parseSynapseRedisUrl(`redis://127.0.0.1:${redis.port}`)!,
      serverName,
      userIp: true,
      logger: quiet,
      onConnect: () => {},
      onLine: (line) => lines.push(line.toString('utf8')),
      onUserIp: (line) => userIp.push(line.toString('utf8')),
      healthIntervalMs: 50,
      healthTimeoutMs: 500,
    });
    try {
      await link.start();
      await publisher.publish(`${serverName}/USER_IP`, 'USER_IP @a:example.com ["tok","::1","ua","DEV",1]');
      await publisher.publish(serverName, 'RDATA typing typing_writer1 5 ["!r:example.com",[]]');
      await until('both lines', () => lines.includes('RDATA typing typing_writer1 5 ["!r:example.com",[]]\n'));
      assert.deepEqual(userIp, ['USER_IP @a:example.com ["tok","::1","ua","DEV",1]\n']);
      // PING rounds for longer than the timeout: an unheard pong would have dropped the subscription.
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      assert.equal(link.health().connects, 1);
      assert.equal(link.health().connected, true);
    } finally {
      await link.stop();
      publisher.disconnect();
    }
  });

  test('an ACL user with its password subscribes; a wrong password is refused at start, with what to do', async () => {
    const serverName = 'acl.example.com';
    const admin = new Redis({ host: '127.0.0.1', port: redis.port });
    await admin.acl('SETUSER', 'follower', 'on', '>s3cret', '&*', '+@all');
    const linkAs = (password: string) =>
      new SynapseRedisLink({
        spec: parseSynapseRedisUrl(`redis://follower:${password}@127.0.0.1:${redis.port}`)!,
        serverName,
        userIp: false,
        logger: quiet,
        onConnect: () => {},
        onLine: () => {},
      });
    const good = linkAs('s3cret');
    try {
      await good.start();
      const clients = (await admin.client('LIST')) as string;
      assert.match(clients, /name=replication-gateway-follower [^\n]*user=follower/);
      await assert.rejects(linkAs('wrong').start(), /could not connect to Synapse's Redis at .*WRONGPASS.*give the password/);
    } finally {
      await good.stop();
      await admin.acl('DELUSER', 'follower');
      admin.disconnect();
    }
  });

  test("the subscription cut while typing_writer1 wrote 115 rows: the gap is filled from its HTTP endpoint in two pages (07's answers), before the live row after it", async () => {
    const serverName = 'fill.example.com';
    const exchanges = loadRecording('07_sync_worker_reconnect_gap_fill').events.filter((e): e is HttpEvent => e.kind === 'http');
    const endpoint = await fakeEndpoint(exchanges);
    const publisher = new Redis({ host: '127.0.0.1', port: redis.port });
    const g = gatewaySide(redis.port, serverName, endpoint.url);
    try {
      await g.link.start();
      await publisher.publish(serverName, 'POSITION typing typing_writer1 1 1');
      await until('typing at 1', () => g.follower.status().some((s) => s.stream === 'typing' && s.token === 1));
      const clients = (await publisher.client('LIST')) as string;
      const id = /id=(\d+) [^\n]*name=replication-gateway-follower/.exec(clients)![1]!;
      await publisher.client('KILL', 'ID', id);
      await until('the resubscription', () => g.link.health().connects === 2);
      await publisher.publish(serverName, 'POSITION typing typing_writer1 116 116');
      await publisher.publish(serverName, 'RDATA typing typing_writer1 117 ["!after:example.com",[]]');
      await until('the fill and the live row', () => g.history.stats().gapsFilled === 1 && g.history.stats().rows === 116);
      const tokens = g.entries.get('typing/typing_writer1')!.filter((e) => e.lines > 0).map((e) => e.lastToken);
      assert.deepEqual(tokens, [...Array.from({ length: 115 }, (_, i) => i + 2), 117]);
      assert.equal(g.history.stats().gapsOpen, 0);
      assert.equal(endpoint.seen.length, 2, 'two pages: limited, then the rest');
    } finally {
      await g.link.stop();
      publisher.disconnect();
      await endpoint.close();
    }
  });
});

describe('a Redis on a unix socket', { skip: redisSkip() }, () => {
  test('unix:/PATH subscribes there and hears the channel', async () => {
    const server = await startRedis({ unixSocket: true });
    const publisher = new Redis({ path: server.socketPath! });
    const lines: string[] = [];
    const link = new SynapseRedisLink({
      spec: parseSynapseRedisUrl(`unix:${server.socketPath!}`)!,
      serverName: 'unix.example.com',
      userIp: false,
      logger: quiet,
      onConnect: () => {},
      onLine: (line) => lines.push(line.toString('utf8')),
    });
    try {
      await link.start();
      await publisher.publish('unix.example.com', 'POSITION typing typing_writer1 1 1');
      // Our own `REPLICATE ` comes back on the channel too.
      await until('the line', () => lines.includes('POSITION typing typing_writer1 1 1\n'));
    } finally {
      await link.stop();
      publisher.disconnect();
      await server.close();
    }
  });
});

describe('no Redis there', () => {
  test('start rejects with what to check', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as net.AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    const link = new SynapseRedisLink({
      spec: parseSynapseRedisUrl(`redis://127.0.0.1:${port}`)!,
      serverName: 'none.example.com',
      userIp: false,
      logger: quiet,
      onConnect: () => {},
      onLine: () => {},
    });
    await assert.rejects(link.start(), /could not connect to Synapse's Redis at redis:\/\/127\.0\.0\.1:\d+\/0: .*ECONNREFUSED.*check --synapse-redis/);
  });
});

describe('--synapse-redis URLs', () => {
  test('redis, rediss and unix forms, with the database and the password', () => {
    assert.deepEqual(parseSynapseRedisUrl('redis://127.0.0.1:6380/2'), { address: { host: '127.0.0.1', port: 6380 }, tls: false, db: 2, username: null, password: null });
    assert.deepEqual(parseSynapseRedisUrl('rediss://u:p%40ss@redis.internal'), { address: { host: 'redis.internal', port: 6379 }, tls: true, db: 0, username: 'u', password: 'p@ss' });
    assert.deepEqual(parseSynapseRedisUrl('unix:/run/redis.sock?db=1'), { address: { path: '/run/redis.sock' }, tls: false, db: 1, username: null, password: null });
    for (const bad of ['http://x', 'redis://', 'redis://h/x', 'unix:rel.sock', 'unix:/s?prefix=a', 'redis://h/1?x=1']) assert.equal(parseSynapseRedisUrl(bad), null, bad);
  });
});
