// kill -9 of a gateway on --log file:DIR at random moments while a writer
// (src/writer.ts, resuming from the stored head after each restart) writes
// 200,000 rows, batches included, on three streams: at the end every
// subscriber holds exactly the writer's rows per stream, in order, none
// twice. The seed is printed; RG_CHAOS_SEED=<seed> replays a run.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { ReplicationClient, ReplicationWriter } from '../../src/index.js';
import { killAllGateways, startGateway, type GatewayProcess } from './support/gateway-process.js';

after(() => killAllGateways());

const STREAMS = ['a', 'b', 'c'] as const;
const TOTAL_ROWS = 200_000;
const KILLS = 6;
const SESSION = { pingIntervalMs: 1_000, pingTimeoutMs: 10_000, backoff: { initialMs: 20, maxMs: 200, healthyAfterMs: 0 } };

/** mulberry32: a small seeded generator, so a failing run can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
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

/** What a subscriber got per stream: [token, row] in arrival order. */
function subscribe(port: number, name: string): { client: ReplicationClient; got: Map<string, [number, unknown][]> } {
  const got = new Map<string, [number, unknown][]>(STREAMS.map((s) => [s, []]));
  const client = new ReplicationClient({ port, name, streams: Object.fromEntries(STREAMS.map((s) => [s, 0])), ...SESSION });
  client.on('rows', (stream: string, token: number, rows: readonly { row(): unknown }[]) => {
    const list = got.get(stream)!;
    for (const r of rows) list.push([token, r.row()]);
  });
  client.on('error', () => {}); // reconnects on its own; what it got is checked at the end
  client.start();
  return { client, got };
}

async function until(cond: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('SIGKILL at random moments during a 200,000-row write on three streams: nothing lost, reordered or twice', { timeout: 120_000 }, async (t) => {
  const seed = Number(process.env['RG_CHAOS_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
  t.diagnostic(`chaos seed ${seed} (RG_CHAOS_SEED=${seed} replays it)`);
  console.log(`file-log chaos seed: ${seed}`);
  const rand = random(seed);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rg-file-chaos-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const readyFile = path.join(dir, 'ready.json');
  const start = (): Promise<GatewayProcess> =>
    startGateway(
      ['--listen', `127.0.0.1:${port}`, '--http', 'off', '--ready-file', readyFile, '--log', `file:${path.join(dir, 'log')}`, '--writer-token', 'w', '--streams', STREAMS.join(','), '--log-level', 'warn'],
      { bare: true, readyFile, timeoutMs: 20_000 },
    );
  let gw = await start();

  const writer = new ReplicationWriter({ port, auth: 'w', streams: STREAMS, startToken: 1, name: 'chaos-writer', ...SESSION });
  writer.on('error', () => {});
  writer.start();
  const subs = [subscribe(port, 'sub-1'), subscribe(port, 'sub-2')];
  t.after(async () => {
    await Promise.all([writer.close(), ...subs.map((s) => s.client.close())]);
  });

  // Kills at random points of the write, and at random moments in between.
  const killAt = Array.from({ length: KILLS }, () => Math.floor(rand() * TOTAL_ROWS * 0.9) + 1000).sort((x, y) => x - y);
  let published = 0;
  let kills = 0;
  let writing = true;
  const chaos = (async () => {
    for (const at of killAt) {
      while (published < at && writing) await new Promise((r) => setTimeout(r, 1 + Math.floor(rand() * 5)));
      gw.child.kill('SIGKILL');
      const exit = await gw.exited;
      assert.equal(exit.signal, 'SIGKILL');
      kills++;
      await new Promise((r) => setTimeout(r, Math.floor(rand() * 100)));
      gw = await start();
    }
  })();

  const expected = new Map<string, [number, unknown][]>(STREAMS.map((s) => [s, []]));
  for (let i = 0; published < TOTAL_ROWS; i++) {
    const stream = STREAMS[Math.floor(rand() * STREAMS.length)]!;
    const n = Math.min(TOTAL_ROWS - published, rand() < 0.2 ? 2 + Math.floor(rand() * 4) : 1);
    const rows = Array.from({ length: n }, (_, k) => [stream, i, k, 'x'.repeat(Math.floor(rand() * 40))]);
    const token = await writer.publish(stream, rows);
    for (const r of rows) expected.get(stream)!.push([token, r]);
    published += n;
  }
  writing = false;
  await chaos;
  assert.ok(kills >= 5, `${kills} kills`);
  await writer.flush();
  const heads = Object.fromEntries(STREAMS.map((s) => [s, expected.get(s)!.at(-1)![0]]));

  // One more subscriber, after the last restart, replays everything from the files.
  subs.push(subscribe(port, 'sub-late'));
  for (const [i, sub] of subs.entries()) {
    await until(() => STREAMS.every((s) => sub.client.positions()[s] === heads[s]), `subscriber ${i} at the heads ${JSON.stringify(heads)} (at ${JSON.stringify(sub.client.positions())})`, 30_000);
    for (const s of STREAMS) {
      const got = sub.got.get(s)!;
      const want = expected.get(s)!;
      assert.equal(got.length, want.length, `subscriber ${i}, stream ${s}: ${got.length} rows, the writer wrote ${want.length} (seed ${seed})`);
      for (let k = 0; k < want.length; k++) {
        if (got[k]![0] !== want[k]![0] || JSON.stringify(got[k]![1]) !== JSON.stringify(want[k]![1])) {
          assert.fail(`subscriber ${i}, stream ${s}, row ${k}: got ${JSON.stringify(got[k])}, wrote ${JSON.stringify(want[k])} (seed ${seed})`);
        }
      }
    }
  }
  t.diagnostic(`${kills} kills, ${published} rows on ${STREAMS.length} streams, heads ${JSON.stringify(heads)}`);
  await gw.stop();
});
