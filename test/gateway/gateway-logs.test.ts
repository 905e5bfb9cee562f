// What the gateway's log rate limit lets through: each kind of trouble has its
// own bucket, so a crowd of ordinary disconnects never hides a failed AUTH,
// and lines below the log level are not counted against anything.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { loadConfig } from '../../src/gateway/config.js';
import { Gateway } from '../../src/gateway/gateway.js';

/** A connection that sends `lines` and waits for the server to close it (or closes it itself after a reply). */
function visit(port: number, lines: string, closeAfterReply: boolean): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(lines));
    socket.on('data', () => {
      if (closeAfterReply) socket.end();
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve());
    socket.setTimeout(5_000, () => socket.destroy());
  });
}

for (const level of ['info', 'warn'] as const) {
  test(`at log level ${level}, 300 ordinary disconnects do not hide the failed AUTH that follows`, { timeout: 30_000 }, async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    const { config } = loadConfig({ argv: ['--listen', '127.0.0.1:0', '--http', 'off', '--subscriber-token', 's', '--log-level', level], env: {} });
    const gateway = await Gateway.open(config, pino({ level }, sink));
    try {
      const { tcp } = (await gateway.start())!;
      for (let i = 0; i < 300; i += 30) await Promise.all(Array.from({ length: 30 }, () => visit(tcp.port, 'PING 1\n', true)));
      await visit(tcp.port, 'AUTH wrong\n', false);
      const deadline = Date.now() + 5_000;
      // Logged as the start of a burst of failed AUTHs from the host, not as a closed connection.
      const authClosed = (): boolean =>
        lines.some((l) => l['msg'] === 'AUTH failed from 127.0.0.1: the token matches no configured credential' && l['host'] === '127.0.0.1');
      while (!authClosed() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok(authClosed(), 'the failed AUTH is logged');
      const routine = lines.filter((l) => l['msg'] === 'connection closed' && l['reason'] === 'peer_closed').length;
      if (level === 'warn') assert.equal(routine, 0, 'info lines are not logged at warn');
      else assert.ok(routine >= 90 && routine < 300, `routine closes were rate-limited (${routine} logged)`);
    } finally {
      await gateway.stop(2_000);
    }
  });
}
