// Two gateways, A and B, on one redis-server (`--log redis://127.0.0.1:PORT/PREFIX`):
// a writer on A reaches subscribers of both; B serves catch-up of what was
// written through A; writers racing through A and B never both store a
// token; redis-server restarted mid-stream loses no row for a subscriber.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ReplicationWriter } from '../../src/index.js';
import { loadConfig } from '../../src/gateway/config.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { RawPeer } from '../bindings/support/raw-peer.js';
import { redisSkip, startRedis, type RedisServer } from '../support/redis-server.js';

const skip = redisSkip();
const FAST = { pingIntervalMs: 100, pingTimeoutMs: 2_000, backoff: { initialMs: 20, maxMs: 200, healthyAfterMs: 0 } };

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

let prefixes = 0;

async function gateway(redis: RedisServer, prefix: string): Promise<{ gw: Gateway; port: number }> {
  const { config } = loadConfig({
    argv: ['--listen', '127.0.0.1:0', '--http', 'off', '--streams', 'events,caches', '--writer-token', 'w', '--log', `redis://127.0.0.1:${redis.port}/${prefix}`],
    env: {},
  });
  const gw = await Gateway.open(config, pino({ level: 'silent' }));
  cleanups.push(() => gw.stop(2_000));
  const addresses = await gw.start();
  return { gw, port: addresses!.tcp.port };
}

async function subscriber(port: number, from: string): Promise<RawPeer> {
  const peer = await RawPeer.connect(port);
  cleanups.push(async () => peer.destroy());
  peer.send(`REPLICATE events ${from}`);
  return peer;
}

/** The tokens of the RDATA events rows a peer received, in order. */
function rowTokens(peer: RawPeer): number[] {
  return peer.lines.filter((l) => l.startsWith('RDATA events ')).map((l) => Number(l.split(' ')[2]));
}

function writer(port: number): ReplicationWriter {
  const w = new ReplicationWriter({ port, auth: 'w', streams: ['events'], ...FAST }).start();
  cleanups.push(() => w.close());
  return w;
}

const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

describe('two gateways on one Redis', { skip, timeout: 60_000 }, () => {
  let redis: RedisServer;
  test('start redis-server', async () => {
    redis = await startRedis();
    cleanups.push(() => redis.close());
  });

  test('a writer on A: subscribers on A and B get every row once, in order; B serves catch-up of them', async () => {
    const prefix = `p${++prefixes}`;
    const a = await gateway(redis, prefix);
    const b = await gateway(redis, prefix);
    const onA = await subscriber(a.port, 'NOW');
    const onB = await subscriber(b.port, 'NOW');
    await onA.line(/^POSITION events/);
    await onB.line(/^POSITION events/);
    const w = writer(a.port);
    for (let i = 1; i <= 2_000; i++) void w.publish('events', [[`row ${i}`]]);
    await w.flush();
    await onA.until(() => rowTokens(onA).length >= 2_000, 'A subscriber: 2000 rows');
    await onB.until(() => rowTokens(onB).length >= 2_000, 'B subscriber: 2000 rows');
    assert.deepEqual(rowTokens(onA), upTo(2_000));
    assert.deepEqual(rowTokens(onB), upTo(2_000));

    const late = await subscriber(b.port, '1000');
    await late.until(() => late.lines.some((l) => l.startsWith('POSITION events 2000')), 'catch-up from B to end with POSITION');
    assert.deepEqual(rowTokens(late), upTo(2_000).slice(1_000));
    const none = await subscriber(b.port, '2000');
    await none.line(/^POSITION events 2000$/);
    assert.deepEqual(rowTokens(none), [], 'a catch-up of zero rows still ends with POSITION');
  });

  test('writers racing on one stream through A and B: each token stored once, subscribers see no duplicate', async () => {
    const prefix = `p${++prefixes}`;
    const a = await gateway(redis, prefix);
    const b = await gateway(redis, prefix);
    const onA = await subscriber(a.port, 'NOW');
    const onB = await subscriber(b.port, 'NOW');
    await onA.line(/^POSITION events/);
    await onB.line(/^POSITION events/);
    // Raw writers, each sending the same tokens: whoever's append Redis runs first stores the token.
    const writers = await Promise.all([RawPeer.connect(a.port), RawPeer.connect(b.port)]);
    for (const [i, peer] of writers.entries()) {
      cleanups.push(async () => peer.destroy());
      peer.send('AUTH w', `NAME racer-${i}`);
    }
    for (let t = 1; t <= 200; t++) for (const [i, peer] of writers.entries()) if (peer.closedBy === null) peer.send(`RDATA events ${t} ["from ${i}"]`);
    await Promise.race(writers.map((p) => p.closed(10_000)));
    await new Promise((r) => setTimeout(r, 300));
    const errors = writers.flatMap((p) => p.lines.filter((l) => l.startsWith('ERROR')));
    assert.ok(errors.length >= 1, 'a losing writer is told');
    assert.equal(writers.filter((p) => p.closedBy !== null).length, errors.length, 'each told writer was closed');
    assert.ok(errors.every((e) => /could not be stored|not above/.test(e)), errors.join('\n'));
    for (const peer of [onA, onB]) {
      const tokens = rowTokens(peer);
      assert.deepEqual(tokens, [...new Set(tokens)].sort((x, y) => x - y), 'rising, none twice');
    }
    assert.deepEqual(onA.lines.filter((l) => l.startsWith('RDATA')), onB.lines.filter((l) => l.startsWith('RDATA')), 'both gateways served the same rows');
    const stored = await subscriber(b.port, '0');
    await stored.until(() => stored.lines.some((l) => l.startsWith('POSITION events')), 'catch-up of what was stored');
    assert.deepEqual(stored.lines.filter((l) => l.startsWith('RDATA')), onA.lines.filter((l) => l.startsWith('RDATA')));
  });

  /**
   * Gateways A and B on `server`, a writer on A publishing `total` rows and a
   * subscriber on each; redis-server is stopped and started again once B's
   * subscriber has 1000 rows. Resolves when the writer has flushed.
   */
  async function restartMidStream(server: RedisServer, total: number) {
    const prefix = `p${++prefixes}`;
    const a = await gateway(server, prefix);
    const b = await gateway(server, prefix);
    const onA = await subscriber(a.port, 'NOW');
    const onB = await subscriber(b.port, 'NOW');
    await onA.line(/^POSITION events/);
    await onB.line(/^POSITION events/);
    const w = writer(a.port);
    let disconnects = 0;
    w.on('disconnected', () => disconnects++);
    w.on('error', () => {});
    const restart = (async () => {
      await onB.until(() => rowTokens(onB).length >= 1_000, 'B subscriber: 1000 rows before the restart', 20_000);
      await server.stop();
      await new Promise((r) => setTimeout(r, 300));
      await server.start();
    })();
    for (let i = 1; i <= total; i++) {
      await w.publish('events', [[`row ${i}`]]);
      if (i % 20 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    await restart;
    await w.flush();
    return { a, b, onA, onB, disconnects };
  }

  test('redis-server (append-only file) restarted mid-stream: the writer gets ERROR and resumes, subscribers on A and B miss nothing and get nothing twice', async () => {
    const durable = await startRedis({ persistent: true });
    cleanups.push(() => durable.close());
    const total = 3_000;
    const { a, onA, onB, disconnects } = await restartMidStream(durable, total);
    assert.ok(disconnects >= 1, 'the writer was closed while Redis was down');
    await onA.until(() => rowTokens(onA).length >= total, `A subscriber: ${total} rows`, 20_000);
    await onB.until(() => rowTokens(onB).length >= total, `B subscriber: ${total} rows`, 20_000);
    assert.deepEqual(rowTokens(onA), upTo(total));
    assert.deepEqual(rowTokens(onB), upTo(total));
    assert.equal(onA.closedBy, null);
    assert.equal(onB.closedBy, null);
    assert.equal(a.gw.health().log.ok, true);
  });

  test('redis-server without persistence restarted mid-stream: each subscriber gets every row in order, or every row up to a too-old ERROR, never a silent gap', async () => {
    const total = 3_000;
    const { onA, onB } = await restartMidStream(redis, total);
    await new Promise((r) => setTimeout(r, 500));
    for (const [name, peer] of [['A', onA], ['B', onB]] as const) {
      const tokens = rowTokens(peer);
      assert.deepEqual(tokens, upTo(tokens.length), `${name}: rows from 1, none skipped, none twice`);
      // Rows Redis lost before this gateway read them cannot reach its subscribers: they are told, not skipped.
      if (tokens.length < total) assert.match(peer.lines.at(-1) ?? '', /^ERROR token \d+ is older than the oldest retained token/, `${name} was told`);
    }
  });
});
