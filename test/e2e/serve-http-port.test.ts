// The --http listener takes its port for itself, on every engine: a second
// gateway given the same --http refuses to start, as it does for --listen,
// instead of sharing the port (uWS listens with SO_REUSEPORT unless told not to).

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { engineAvailability } from '../../src/bindings/engine-choice.js';
import { httpGet, killAllGateways, runGateway, startGateway } from './support/gateway-process.js';

after(() => killAllGateways());

const availability = engineAvailability();

for (const engine of ['uws', 'ws'] as const) {
  const skip = availability[engine] === true ? false : `${availability[engine]}`;
  describe(`serve --http on a port another gateway holds [${engine}]`, skip === false ? {} : { skip }, () => {
    it('refuses to start (exit 1, naming the port), and the first gateway keeps serving', async () => {
      const first = await startGateway(['--ws-engine', engine, '--streams', 'events']);
      try {
        const port = first.http!;
        const second = await runGateway(['--listen', '127.0.0.1:0', '--http', `127.0.0.1:${port}`, '--ws-engine', engine, '--streams', 'events']);
        assert.equal(second.code, 1, second.stderr);
        assert.match(second.stderr, new RegExp(`^replication-gateway serve: cannot listen for HTTP on 127\\.0\\.0\\.1:${port}: `, 'm'));
        for (let i = 0; i < 5; i++) assert.equal((await httpGet(port, '/healthz')).status, 200, 'every request reaches the first');
      } finally {
        await first.stop();
      }
    });
  });
}
