// Fairness over WebSocket, on each engine, over real sockets: a socket's
// lines are read about 64 KiB a turn however large its messages (a
// megabyte-long message is read over many turns, in order), as a TCP
// socket's are (tcp-server-fairness.test.ts). Where the engine can pause a
// socket (ws) a fast sender meets backpressure and every line is read; where
// it cannot (uws) a sender that gets maxUnreadBytes ahead is cut. A writer's
// lines are read at once, as on TCP.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { READ_BYTES_PER_TURN } from '../../src/bindings/read-turns.js';
import { watchTurns } from '../support/turn-watch.js';
import { describeEachEngine, waitUntil, WsPeer } from './ws-harness.js';

const PING = 'PING 1490197665618\n';
/** A message of about a megabyte of PINGs (under the 1 MiB line limit a message is held to). */
const MEGABYTE_OF_PINGS = PING.repeat(Math.floor(1_000_000 / PING.length));

describeEachEngine('WebSocket fairness', (edge) => {
  it('reads a megabyte-long message about 64 KiB a turn, every line in order', { timeout: 30_000 }, async () => {
    const gw = await edge.start({ writerToken: 'w' });
    try {
      const peer = await WsPeer.open(gw.wsUrl);
      // A connection's bytes in, as the hub counts what it was handed.
      const busiest = (): number => Math.max(0, ...gw.server.connections().map((c) => c.bytesIn));
      const turns = watchTurns(busiest);
      // The REPLICATE after the PINGs is answered only once every line before it was read.
      peer.send(`${MEGABYTE_OF_PINGS}REPLICATE events NOW\n`);
      await peer.line(/^POSITION events \d+$/, 10_000);
      const { maxPerTurn, turnsGrowing } = turns.stop();
      // At most one piece of whole lines past the share in a turn (it is counted after the piece is read).
      assert.ok(maxPerTurn <= 2 * READ_BYTES_PER_TURN, `at most ${2 * READ_BYTES_PER_TURN} bytes of one connection read in a turn (read ${maxPerTurn})`);
      assert.ok(turnsGrowing >= 1_000_000 / (2 * READ_BYTES_PER_TURN), `read over many turns (${turnsGrowing})`);
      assert.equal(busiest(), MEGABYTE_OF_PINGS.length + 'REPLICATE events NOW\n'.length);
      peer.terminate();
    } finally {
      await gw.close();
    }
  });

  it('reads what came before a bad message first, as the lines before a bad line', { timeout: 30_000 }, async () => {
    const gw = await edge.start();
    const heard: string[] = [];
    gw.server.on('command', (cmd: { name: string }) => void heard.push(cmd.name));
    try {
      const peer = await WsPeer.open(gw.wsUrl);
      // The FEDERATION_ACK waits a dozen turns behind the PINGs; the message after it, over the limit, comes meanwhile.
      peer.send(`${MEGABYTE_OF_PINGS}FEDERATION_ACK 5\n`);
      peer.send(PING.repeat(Math.ceil(gw.http.bridge.maxMessageBytes / PING.length)));
      await peer.line(/^ERROR message too long: over the limit of \d+ bytes$/);
      await peer.waitClosed();
      assert.deepEqual(heard, ['FEDERATION_ACK'], 'the command before the bad message was read');
    } finally {
      await gw.close();
    }
  });

  it('reads a writer’s rows at once and never cuts it, however far ahead it sends', { timeout: 30_000 }, async () => {
    const gw = await edge.start({ writerToken: 'w' }, { maxUnreadBytes: 2 * 1024 * 1024 });
    try {
      const writer = await WsPeer.open(gw.wsUrl);
      writer.send('AUTH w\n');
      await waitUntil('the writer is authenticated', () => (gw.server.connections().some((c) => c.role === 'writer') ? true : undefined));
      // 16 MB of rows in 16 messages sent at once: 8 times maxUnreadBytes.
      const ROWS_PER_MESSAGE = 5_000;
      const pad = 'x'.repeat(160);
      let token = 0;
      for (let m = 0; m < 16; m++) {
        let text = '';
        for (let r = 0; r < ROWS_PER_MESSAGE; r++) text += `RDATA events ${++token} ["${pad}",${token}]\n`;
        writer.send(text);
      }
      await waitUntil('every row stored', () => (gw.server.head('events') === token ? true : undefined), 20_000);
      assert.equal(writer.closeCode, null, 'the writer is still connected');
      assert.deepEqual(writer.lines.filter((l) => l.startsWith('ERROR')), []);
      writer.terminate();
    } finally {
      await gw.close();
    }
  });

  it('cuts a sender that gets maxUnreadBytes ahead only where the engine cannot pause its socket', { timeout: 30_000 }, async () => {
    const limit = 2 * 1024 * 1024;
    const gw = await edge.start({}, { maxUnreadBytes: limit });
    try {
      const peer = await WsPeer.open(gw.wsUrl);
      for (let i = 0; i < 16; i++) peer.send(MEGABYTE_OF_PINGS);
      peer.send('REPLICATE events NOW\n');
      if (edge.engine === 'uws') {
        // uWebSockets.js reads every socket as it comes: 16 MB arrive far faster than 64 KiB a turn is read.
        await peer.line(`ERROR sending faster than the gateway reads: over ${limit} bytes received and not yet read`, 10_000);
        await peer.waitClosed();
      } else {
        // ws pauses the socket: the sender waits on TCP, and every line is read.
        await peer.line(/^POSITION events \d+$/, 20_000);
        assert.equal(peer.closeCode, null);
        assert.deepEqual(peer.lines.filter((l) => l.startsWith('ERROR')), []);
        peer.terminate();
      }
    } finally {
      await gw.close();
    }
  });
});
