// The browser client's WebSocket transport (src/browser/ws-transport.ts) under
// Node with `ws`, as the chaos run and the library's users drive it.

import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { wsClientTransport, type WebSocketConstructor } from '../../src/browser/ws-transport.js';

test('a connect that times out is reported as closed, and the late error of the abandoned socket does not crash Node', async (t) => {
  // Accepts TCP and never answers the upgrade.
  const accepted: net.Socket[] = [];
  const silent = net.createServer((socket) => void accepted.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const socket of accepted) socket.destroy();
    return new Promise<void>((resolve) => silent.close(() => resolve()));
  });
  const uncaught: Error[] = [];
  const onUncaught = (err: Error): void => void uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  t.after(() => void process.off('uncaughtException', onUncaught));

  const { port } = silent.address() as net.AddressInfo;
  const transport = wsClientTransport({ url: `ws://127.0.0.1:${port}/replication`, WebSocket: WebSocket as unknown as WebSocketConstructor, connectTimeoutMs: 100 })();
  const reason = await new Promise<string>((resolve) => transport.connect({ open() {}, data() {}, drain() {}, close: resolve }));
  assert.equal(reason, 'connect timed out');
  await sleep(200);
  assert.deepEqual(uncaught.map((e) => e.message), []);
});
