// `serve --log file:DIR` as an operator runs it: streams survive a restart
// of the gateway process (subscribers resume, nothing lost or twice), a
// wiped directory is a new generation (logged, in /healthz and /metrics, and
// a subscriber ahead of the new head is moved back to it, counted), and a
// full disk fails the writer's run without stopping the gateway.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { LineClient, httpGet, killAllGateways, parseMetrics, startGateway, type GatewayProcess } from './support/gateway-process.js';

after(() => killAllGateways());

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rg-file-serve-'));
  dirs.push(dir);
  return dir;
}

const row = (stream: string, token: number | 'batch', i: number): string => `RDATA ${stream} ${token} ["$${i}:hs","!r:hs","m.room.message","",null]`;

async function health(gw: GatewayProcess): Promise<Record<string, any>> {
  return JSON.parse((await httpGet(gw.http!, '/healthz')).body) as Record<string, any>;
}

async function metric(gw: GatewayProcess, name: string): Promise<number | undefined> {
  return parseMetrics((await httpGet(gw.http!, '/metrics')).body).get(name);
}

/** Rows of `stream` a fresh subscriber gets from `token` until POSITION: [token word, row index]. */
async function catchUp(gw: GatewayProcess, stream: string, token: number): Promise<string[]> {
  const sub = await LineClient.connect(gw.tcp);
  sub.send(`REPLICATE ${stream} ${token}`);
  await sub.waitFor((l) => l.startsWith(`POSITION ${stream} `), 10_000);
  sub.close();
  return sub.lines.filter((l) => l.startsWith('RDATA'));
}

describe('serve --log file:DIR', () => {
  it('keeps every stream across a restart: a subscriber resumes from its token and a new one replays all, nothing twice', async () => {
    const dir = tempDir();
    const args = ['--log', `file:${dir}`, '--writer-token', 'w', '--streams', 'events,caches', '--fsync', 'always'];
    const gw = await startGateway(args);
    const writer = await LineClient.connect(gw.tcp);
    const sub = await LineClient.connect(gw.tcp);
    sub.send('REPLICATE events 0', 'REPLICATE caches 0');
    await sub.waitForCount((l) => l.startsWith('POSITION'), 2);
    const first = [row('events', 1, 1), row('caches', 'batch', 2), row('caches', 1, 3), row('events', 2, 4), 'POSITION events 5'];
    writer.send('AUTH w', ...first);
    await sub.waitFor((l) => l === 'POSITION events 5');
    await sub.waitFor((l) => l === row('caches', 1, 3));
    // Order is per stream: each stream's log stores (and confirms) on its own.
    for (const s of ['events', 'caches']) {
      const mine = (l: string): boolean => l.startsWith(`RDATA ${s} `);
      assert.deepEqual(sub.lines.filter(mine), first.filter(mine));
    }
    const h = await health(gw);
    assert.equal(h['log']['kind'], 'file');
    assert.equal(h['log']['ok'], true);
    const generation = h['log']['generation']['id'] as string;
    assert.match(generation, /^[0-9a-f]{32}$/);
    assert.equal(h['log']['generation']['createdByThisStart'], true);
    assert.equal((await gw.stop()).code, 0);

    const again = await startGateway(args);
    const h2 = await health(again);
    assert.equal(h2['log']['generation']['id'], generation, 'the same directory, the same generation');
    assert.equal(h2['log']['generation']['createdByThisStart'], false);
    assert.deepEqual([h2['streams']['events']['head'], h2['streams']['caches']['head']], [5, 1]);
    assert.equal(await metric(again, 'replication_gateway_log_generations_created_total'), 0);
    // The subscriber comes back with the tokens it had; a writer goes on after the stored head.
    const resumed = await LineClient.connect(again.tcp);
    resumed.send('REPLICATE events 2', 'REPLICATE caches 1');
    await resumed.waitForCount((l) => l.startsWith('POSITION'), 2);
    assert.deepEqual(resumed.lines.filter((l) => l.startsWith('POSITION')).sort(), ['POSITION caches 1', 'POSITION events 5']);
    const w2 = await LineClient.connect(again.tcp);
    w2.send('AUTH w', 'REPLICATE events NOW');
    await w2.waitFor((l) => l === 'POSITION events 5');
    w2.send(row('events', 6, 6));
    await resumed.waitFor((l) => l === row('events', 6, 6));
    assert.equal(resumed.lines.filter((l) => l.startsWith('RDATA')).length, 1, 'only the new row: nothing replayed twice');
    assert.deepEqual(await catchUp(again, 'events', 0), [row('events', 1, 1), row('events', 2, 4), row('events', 6, 6)]);
    assert.deepEqual(await catchUp(again, 'caches', 0), [row('caches', 'batch', 2), row('caches', 1, 3)]);
    for (const c of [writer, sub, resumed, w2]) c.close();
    assert.equal((await again.stop()).code, 0);
  });

  it('a wiped directory is a new generation: logged, in /healthz and /metrics; a subscriber ahead is moved back to the head, counted', async () => {
    const dir = tempDir();
    const args = ['--log', `file:${dir}`, '--writer-token', 'w', '--streams', 'events'];
    const gw = await startGateway(args);
    const writer = await LineClient.connect(gw.tcp);
    writer.send('AUTH w', 'REPLICATE events NOW', ...[1, 2, 3].map((t) => row('events', t, t)));
    await writer.waitFor((l) => l === row('events', 3, 3));
    const before = (await health(gw))['log']['generation']['id'] as string;
    writer.close();
    assert.equal((await gw.stop()).code, 0);

    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    const again = await startGateway(args);
    const h = await health(again);
    assert.notEqual(h['log']['generation']['id'], before);
    assert.equal(h['log']['generation']['createdByThisStart'], true);
    assert.equal(h['streams']['events']['head'], 0);
    const logged = await again.logs.waitFor((e) => typeof e['msg'] === 'string' && (e["msg"] as string).startsWith("new log generation"), 5_000);
    assert.equal(logged['generation'], h['log']['generation']['id']);
    assert.equal(await metric(again, 'replication_gateway_log_generations_created_total'), 1);
    assert.equal(await metric(again, `replication_gateway_log_generation_info{generation="${h['log']['generation']['id']}"}`), 1);

    const sub = await LineClient.connect(again.tcp);
    sub.send('REPLICATE events 3');
    assert.equal(await sub.waitFor((l) => l.startsWith('POSITION')), 'POSITION events 0', 'v1: moved back to the head');
    assert.equal(await metric(again, 'replication_gateway_tokens_ahead_total'), 1);
    sub.close();
    assert.equal((await again.stop()).code, 0);
  });

  it('a directory wiped under the running gateway makes /healthz say so (log_failing) until it is restarted', async () => {
    const dir = tempDir();
    const gw = await startGateway(['--log', `file:${dir}`, '--streams', 'events']);
    assert.equal((await health(gw))['status'], 'ok');
    rmSync(path.join(dir, 'generation'));
    const h = await health(gw);
    assert.equal(h['status'], 'log_failing');
    assert.match(h['log']['problem'] as string, /is gone or changed under the running gateway \(the directory was wiped or replaced\)/);
    assert.equal(await metric(gw, 'replication_gateway_log_store_up{kind="file"}'), 0);
    assert.equal((await gw.stop()).code, 0);
  });

  it('a second gateway on the same directory is refused at start with the pid of the first', async () => {
    const dir = tempDir();
    const gw = await startGateway(['--log', `file:${dir}`, '--streams', 'events']);
    await assert.rejects(startGateway(['--log', `file:${dir}`, '--streams', 'events']), new RegExp(`in use by process ${gw.pid}`));
    assert.equal((await gw.stop()).code, 0);
  });

  const root = process.getuid?.() === 0;
  const ci = process.env['CI'] === 'true';
  it(
    'a full disk (ENOSPC, a 1 MiB tmpfs): the writer gets ERROR and a close, nothing of its failed run is served, the gateway keeps serving and says so',
    { skip: !root && !ci ? 'needs root to mount a size-limited tmpfs (mount -t tmpfs -o size=1m); run as root, or with CI=true where it is mandatory' : false },
    async () => {
      assert.ok(root, 'CI=true: the ENOSPC test is mandatory and needs root to mount a tmpfs');
      const dir = tempDir();
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
      try {
        const gw = await startGateway(['--log', `file:${dir}`, '--writer-token', 'w', '--streams', 'events', '--fsync', 'always']);
        const writer = await LineClient.connect(gw.tcp);
        writer.send('AUTH w', 'REPLICATE events NOW');
        await writer.waitFor((l) => l === 'POSITION events 0');
        const pad = 'x'.repeat(1000);
        let token = 0;
        // 2 MiB in runs of 64 rows: the disk fills part way through.
        for (let run = 0; run < 32 && writer.socket.writable; run++) {
          const lines: string[] = [];
          for (let i = 0; i < 64; i++) lines.push(`RDATA events ${++token} ["${pad}",${token}]`);
          writer.send(...lines);
          await new Promise((r) => setTimeout(r, 5));
        }
        const error = await writer.waitFor((l) => l.startsWith('ERROR'), 10_000);
        assert.match(error, /could not be stored/);
        assert.match(error, /ENOSPC|no space/i);
        await writer.closed;

        const h = await health(gw);
        assert.equal(h['ok'], false);
        assert.equal(h['status'], 'log_failing');
        assert.match(h['log']['problem'] as string, /ENOSPC|disk is full/);
        assert.ok(((await metric(gw, 'replication_gateway_log_append_errors_total')) ?? 0) >= 1);
        const failed = await gw.logs.waitFor((e) => typeof e['msg'] === 'string' && (e["msg"] as string).startsWith("append to the file log failed"), 5_000);
        assert.equal(failed['code'], 'ENOSPC');

        // What is served is exactly what was stored: rows 1..head, whole, in order.
        const head = h['streams']['events']['head'] as number;
        assert.ok(head > 0 && head < token, `head ${head} of ${token} sent`);
        const served = await catchUp(gw, 'events', 0);
        assert.equal(served.length, head);
        served.forEach((l, i) => assert.equal(l, `RDATA events ${i + 1} ["${pad}",${i + 1}]`));
        assert.ok(readdirSync(path.join(dir, 'streams', 'events')).length >= 1);
        assert.equal((await gw.stop()).code, 0);
      } finally {
        execFileSync('umount', [dir]);
      }
    },
  );
});
