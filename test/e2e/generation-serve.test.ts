// The GENERATION extension end to end: `serve --log file:DIR` as an operator
// runs it, and the project's own ReplicationClient with followGeneration.
// The gateway is stopped, DIR wiped, and a gateway started again on it (on a
// new port, where the client's transport now points): the client says the log
// is a new generation, naming both ids /healthz showed, and follows the new log.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { tcpClientTransport } from '../../src/bindings/tcp-client-transport.js';
import { ReplicationClient } from '../../src/client.js';
import { LineClient, httpGet, killAllGateways, startGateway, type GatewayProcess } from './support/gateway-process.js';

after(() => killAllGateways());

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const FAST = { pingIntervalMs: 200, pingTimeoutMs: 2_000, backoff: { initialMs: 20, maxMs: 100, healthyAfterMs: 0 } };

async function generationOf(gw: GatewayProcess): Promise<string> {
  const health = JSON.parse((await httpGet(gw.http!, '/healthz')).body) as { log: { generation: { id: string } } };
  return health.log.generation.id;
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function writeRows(gw: GatewayProcess, tokens: number[]): Promise<void> {
  const writer = await LineClient.connect(gw.tcp);
  const lines = tokens.map((t) => `RDATA events ${t} ["$${t}:hs"]`);
  writer.send('AUTH w', 'REPLICATE events NOW', ...lines);
  await writer.waitFor((l) => l === lines.at(-1), 10_000);
  writer.close();
}

describe('serve --log file:DIR with a followGeneration client', () => {
  it("a wiped and restarted log: the client emits 'generation' with the old and new ids, is rewound to the new head, and follows the new log", async (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rg-generation-'));
    dirs.push(dir);
    const args = ['--log', `file:${dir}`, '--writer-token', 'w', '--streams', 'events'];
    const first = await startGateway(args);
    t.after(() => first.stop());
    await writeRows(first, [1, 2, 3]);
    const firstId = await generationOf(first);

    let port = first.tcp;
    const client = new ReplicationClient({
      transport: () => tcpClientTransport({ host: '127.0.0.1', port })(),
      streams: { events: 0 },
      followGeneration: true,
      ...FAST,
    });
    t.after(() => client.close());
    const generations: [string | null, string | null][] = [];
    const seen: string[] = [];
    client.on('generation', (previous: string | null, current: string | null) => {
      generations.push([previous, current]);
      seen.push('generation');
    });
    client.on('rewound', (stream: string, before: number, token: number) => seen.push(`rewound ${stream} ${before} ${token}`));
    const tokens: number[] = [];
    client.on('rows', (_stream: string, token: number) => tokens.push(token));
    client.start();
    await until(() => tokens.length === 3, 10_000, 'the first log rows');
    assert.equal(client.generation, firstId);

    assert.equal((await first.stop()).code, 0);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    const second = await startGateway(args);
    t.after(() => second.stop());
    const secondId = await generationOf(second);
    assert.notEqual(secondId, firstId);
    port = second.tcp;

    await until(() => seen.length === 2, 10_000, "'generation' and 'rewound'");
    assert.deepEqual(generations, [[firstId, secondId]]);
    assert.deepEqual(seen, ['generation', 'rewound events 3 0'], 'the generation first: it explains the rewind');
    assert.equal(client.generation, secondId);

    await writeRows(second, [1]);
    await until(() => tokens.length === 4, 10_000, 'the new log row');
    assert.deepEqual(tokens, [1, 2, 3, 1]);
    await client.close();
    assert.equal((await second.stop()).code, 0);
  });
});
