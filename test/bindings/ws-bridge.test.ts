// The WebSocket bridge against the same conformance cases as TCP, with `ws`
// as the client: greeting, catch-up, batches, live rows, errors, limits,
// congestion, liveness and shutdown.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { describeEachEngine, row, TcpPeer, waitUntil, WsPeer, type Gateway } from './ws-harness.js';

describeEachEngine('WebSocket bridge, text mode', (edge) => {
  let gw: Gateway;
  before(async () => {
    gw = await edge.start({ serverName: 'hs.test', writerToken: 'w-secret' });
  });
  after(() => gw.close());

  it('greets with SERVER then PING, each message holding whole lines', async () => {
    const peer = await WsPeer.open(gw.wsUrl);
    await peer.line(/^PING \d+$/);
    assert.equal(peer.lines[0], 'SERVER hs.test');
    for (const m of peer.messages) assert.ok(m.endsWith('\n'), `message ${JSON.stringify(m)} ends in LF`);
    peer.terminate();
  });

  it("refuses a browser page's client commands (they would reach the writers), and takes a program's", async () => {
    const heard: string[] = [];
    const onCommand = (cmd: { name: string }): void => void heard.push(cmd.name);
    gw.server.on('command', onCommand);
    try {
      for (const command of ['USER_SYNC @a:hs.test start 1', 'FEDERATION_ACK 5']) {
        const page = await WsPeer.open(gw.wsUrl, { origin: gw.httpUrl });
        await page.line(/^PING \d+$/);
        page.send(`${command}\n`);
        const name = command.split(' ')[0]!;
        assert.equal(await page.line(/^ERROR /), `ERROR ${name} may not be sent from a browser page: pages only read streams (a token whose spec lists +page may send it)`);
        await page.closed;
      }
      const program = await WsPeer.open(gw.wsUrl);
      await program.line(/^PING \d+$/);
      program.send('FEDERATION_ACK 5\nPING 1\n');
      await waitUntil('the program\'s command heard', () => (heard.length > 0 ? true : undefined));
      assert.deepEqual(heard, ['FEDERATION_ACK'], "only the program's command reached the server");
      program.terminate();
    } finally {
      gw.server.off('command', onCommand);
    }
  });

  it('echoes the replication subprotocol when offered', async () => {
    const peer = await WsPeer.open(gw.wsUrl, { protocol: 'replication' });
    assert.equal(peer.ws.protocol, 'replication');
    await peer.line(/^SERVER /);
    peer.terminate();
  });

  it('catches up from a token, then sends POSITION and live rows with no gap', async () => {
    for (let i = 0; i < 5; i++) await gw.server.publish('caches', [row(i)]);
    const head = gw.server.head('caches');
    const peer = await WsPeer.open(gw.wsUrl);
    peer.send(`REPLICATE caches ${head - 3}`); // no LF: the bridge makes the message whole lines
    await peer.line(`POSITION caches ${head}`);
    assert.deepEqual(
      peer.rdata('caches').map((l) => l.split(' ')[2]),
      [head - 2, head - 1, head].map(String),
    );
    await gw.server.publish('caches', [row(99)]);
    await peer.line(new RegExp(`^RDATA caches ${head + 1} `));
    const tokens = peer.rdata('caches').map((l) => Number(l.split(' ')[2]));
    assert.deepEqual(tokens, [head - 2, head - 1, head, head + 1]);
    peer.terminate();
  });

  it('sends a large catch-up as messages of whole lines, none of them fragments of a line', async () => {
    const big = Array.from({ length: 2_000 }, (_, i) => row(i));
    const token = await gw.server.publish('caches', big);
    const peer = await WsPeer.open(gw.wsUrl);
    peer.send(`REPLICATE caches ${token - 1}`);
    await peer.line(`POSITION caches ${token}`);
    assert.equal(peer.rdata('caches').length, 2_000);
    assert.ok(peer.messages.length > 1, 'more than one message for ~200 KB of rows');
    for (const m of peer.messages) {
      assert.ok(m.endsWith('\n'), 'each message ends a line');
      assert.ok(/^(RDATA|POSITION|SERVER|PING) /.test(m), 'each message starts a line');
    }
    peer.terminate();
  });

  it('keeps batch framing live and in catch-up', async () => {
    const live = await WsPeer.open(gw.wsUrl);
    live.send('REPLICATE events NOW\n');
    const pos = await live.line(/^POSITION events \d+$/);
    const from = Number(pos.split(' ')[2]);
    const token = await gw.server.publish('events', [row(1), row(2), row(3)]);
    await live.line(new RegExp(`^RDATA events ${token} `));
    assert.deepEqual(live.rdata('events').map((l) => l.split(' ')[2]), ['batch', 'batch', String(token)]);

    const late = await WsPeer.open(gw.wsUrl);
    late.send(`REPLICATE events ${from}`);
    await late.line(`POSITION events ${token}`);
    assert.deepEqual(late.rdata('events'), live.rdata('events'));
    live.terminate();
    late.terminate();
  });

  it('takes several lines in one message', async () => {
    const peer = await WsPeer.open(gw.wsUrl);
    peer.send('NAME browser-tab\nPING 1\nREPLICATE typing NOW\nREPLICATE caches NOW\n');
    await peer.line(/^POSITION typing \d+$/);
    await peer.line(/^POSITION caches \d+$/);
    await waitUntil('the NAME', () => gw.server.connections().find((c) => c.name === 'browser-tab'));
    peer.terminate();
  });

  it('delivers rows a TCP writer publishes, byte for byte', async () => {
    const peer = await WsPeer.open(gw.wsUrl);
    peer.send('REPLICATE events NOW');
    const pos = await peer.line(/^POSITION events \d+$/);
    const head = Number(pos.split(' ')[2]);
    const writer = await TcpPeer.connect(gw.tcpPort);
    const lines = [
      `RDATA events batch ["$a:hs","!r:hs","m.room.message","",null]`,
      `RDATA events ${head + 1} ["$b:hs","!r:hs","m.room.message","",null]`,
    ];
    writer.send(`AUTH w-secret\n${lines.join('\n')}\n`);
    await peer.line(lines[1]!);
    assert.deepEqual(peer.rdata('events'), lines);
    writer.close();
    peer.terminate();
  });

  it('lets a WebSocket writer publish only after AUTH with the writer token', async () => {
    const reader = await TcpPeer.connect(gw.tcpPort);
    reader.send('REPLICATE typing NOW\n');
    const pos = await reader.line(/^POSITION typing \d+$/);
    const head = Number(pos.split(' ')[2]);

    const anonymous = await WsPeer.open(gw.wsUrl);
    anonymous.send(`RDATA typing ${head + 1} ["!r:hs",["@u:hs"]]`);
    assert.match(await anonymous.line(/^ERROR /), /^ERROR RDATA may not be sent by a client/);
    await anonymous.waitClosed();

    const writer = await WsPeer.open(gw.wsUrl);
    writer.send(`AUTH w-secret\nRDATA typing ${head + 1} ["!r:hs",["@u:hs"]]`);
    await reader.line(new RegExp(`^RDATA typing ${head + 1} \\["!r:hs",\\["@u:hs"\\]\\]$`));
    writer.terminate();
    reader.close();
  });

  it("stores no half of a row a WebSocket writer split across two messages: each message is whole lines, so the half is a row that is not JSON", async () => {
    const reader = await TcpPeer.connect(gw.tcpPort);
    reader.send('REPLICATE typing NOW\n');
    const head = Number((await reader.line(/^POSITION typing \d+$/)).split(' ')[2]);
    const whole = (token: number): string => `RDATA typing ${token} ["!r:hs",["@u${token}:hs"]]`;

    const writer = await WsPeer.open(gw.wsUrl);
    writer.send(`AUTH w-secret\n${whole(head + 1)}\nRDATA typing ${head + 2} ["!r:hs",`);
    writer.send(`["@u${head + 2}:hs"]]\n${whole(head + 3)}\n`);
    assert.equal(
      await writer.line(/^ERROR /),
      `ERROR row of typing at token ${head + 2} is not valid JSON: unexpected end of the row at byte 9; nothing from it on was stored (typing is at token ${head + 1})`,
    );
    await writer.waitClosed();

    // The writer resends from the stored head; the reader gets each row once, whole.
    const again = await WsPeer.open(gw.wsUrl);
    again.send(`AUTH w-secret\n${whole(head + 2)}\n${whole(head + 3)}\n`);
    await reader.line(new RegExp(`^RDATA typing ${head + 3} `));
    assert.deepEqual(
      reader.lines.filter((l) => l.startsWith('RDATA ')),
      [whole(head + 1), whole(head + 2), whole(head + 3)],
    );
    again.terminate();
    reader.close();
  });

  it('answers bad input with ERROR and a close, and keeps serving others', async () => {
    const cases: [string, RegExp][] = [
      ['HELLO there', /^ERROR unknown command: 'HELLO'/],
      ['REPLICATE nosuch 1', /^ERROR unknown stream: nosuch/],
      ['REPLICATE events x', /^ERROR bad token 'x' in REPLICATE/],
      ['SERVER me', /^ERROR SERVER may not be sent by a client/],
      ['AUTH wrong', /^ERROR AUTH failed/],
    ];
    for (const [line, expected] of cases) {
      const peer = await WsPeer.open(gw.wsUrl);
      peer.send(line);
      assert.match(await peer.line(/^ERROR /), expected);
      await peer.waitClosed();
    }
    const fine = await WsPeer.open(gw.wsUrl);
    await fine.line(/^SERVER /);
    fine.terminate();
  });

  it('answers invalid UTF-8 in a binary message with ERROR', async () => {
    const peer = await WsPeer.open(gw.wsUrl);
    peer.send(Buffer.from([0x4e, 0x41, 0x4d, 0x45, 0x20, 0xff, 0xfe, 0x0a]));
    assert.equal(await peer.line(/^ERROR /), 'ERROR line is not valid UTF-8');
    await peer.waitClosed();
  });

  it('sends WebSocket pings itself', async () => {
    const quick = await edge.start({}, { pingIntervalMs: 50, pingTimeoutMs: 2000 });
    try {
      const peer = await WsPeer.open(quick.wsUrl);
      await waitUntil('two pings', () => (peer.pings >= 2 ? true : undefined));
      assert.equal(peer.closeCode, null);
      peer.terminate();
    } finally {
      await quick.close();
    }
  });

  it('closes a socket that answers no ping with ERROR ping timeout', async () => {
    const quick = await edge.start({}, { pingIntervalMs: 40, pingTimeoutMs: 200 });
    const reasons: string[] = [];
    quick.server.on('disconnect', (_c, reason) => reasons.push(reason));
    try {
      const peer = await WsPeer.open(quick.wsUrl, { autoPong: false });
      assert.equal(await peer.line('ERROR ping timeout'), 'ERROR ping timeout');
      await peer.waitClosed();
      assert.deepEqual(reasons, ['ping_timeout']);
    } finally {
      await quick.close();
    }
  });

  it('keeps a silent client that answers pings (a background tab) open', async () => {
    const quick = await edge.start({}, { pingIntervalMs: 40, pingTimeoutMs: 200 });
    try {
      const peer = await WsPeer.open(quick.wsUrl);
      // A PING line arms the core's own timeout; pongs alone must keep it satisfied.
      peer.send('PING 1');
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(peer.closeCode, null);
      assert.ok(!peer.lines.some((l) => l.startsWith('ERROR')), peer.lines.join('|'));
      peer.terminate();
    } finally {
      await quick.close();
    }
  });

  it('sends ERROR server shutting down when the gateway stops', async () => {
    const other = await edge.start();
    const peer = await WsPeer.open(other.wsUrl);
    await peer.line(/^SERVER /);
    await other.close();
    assert.equal(await peer.line(/^ERROR /), 'ERROR server shutting down');
    await peer.waitClosed();
  });
});

describeEachEngine('WebSocket bridge limits', (edge) => {
  it('answers a message over --max-line-bytes with ERROR and a close, never a crash', async () => {
    const gw = await edge.start({ maxLineBytes: 1024 });
    try {
      assert.equal(gw.http.bridge.maxPayloadBytes, 2 * 1025);
      for (const size of [1500, 2 * 1025]) {
        const peer = await WsPeer.open(gw.wsUrl);
        peer.send(`NAME ${'x'.repeat(size - 5)}`);
        assert.equal(await peer.line(/^ERROR /), 'ERROR message too long: over the limit of 1025 bytes');
        await peer.waitClosed();
      }
      // Far past the limit the engine closes the socket itself; the gateway carries on.
      const huge = await WsPeer.open(gw.wsUrl);
      huge.send(`NAME ${'x'.repeat(64 * 1024)}`);
      await huge.waitClosed();
      const fine = await WsPeer.open(gw.wsUrl);
      fine.send('REPLICATE events NOW');
      await fine.line(/^POSITION events /);
      fine.terminate();
    } finally {
      await gw.close();
    }
  });

  it("sends rows larger than uWS's default 16 KiB payload limit", async () => {
    const gw = await edge.start({ maxLineBytes: 256 * 1024 });
    try {
      const peer = await WsPeer.open(gw.wsUrl);
      peer.send('REPLICATE events NOW');
      await peer.line(/^POSITION events /);
      const big = 'y'.repeat(100 * 1024);
      const token = await gw.server.publish('events', [[big]]);
      const line = await peer.line(new RegExp(`^RDATA events ${token} `));
      assert.equal(line.length, `RDATA events ${token} `.length + big.length + 4);
      // And a writer may send one that large in one message.
      peer.send(`NAME ${'n'.repeat(200 * 1024)}`);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(peer.closeCode, null);
      peer.terminate();
    } finally {
      await gw.close();
    }
  });

  it('a client that pauses past the queue limit is not cut: it reads the rest from the log, every row once and in order, then live', async () => {
    const gw = await edge.start({ maxQueueCommands: 50 }, { sendHighWaterBytes: 64 * 1024 });
    const cuts: string[] = [];
    gw.server.on('slowConsumer', (_c, d) => cuts.push(d.limit));
    try {
      const slow = await WsPeer.open(gw.wsUrl);
      const fast = await WsPeer.open(gw.wsUrl);
      slow.send('REPLICATE events NOW');
      fast.send('REPLICATE events NOW');
      const from = Number((await slow.line(/^POSITION events /)).split(' ')[2]);
      await fast.line(/^POSITION events /);
      // Stop reading: the kernel buffers fill, then the engine's, then the hub's queue, then it reads the log.
      (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      const payload = 'z'.repeat(4096);
      let last = 0;
      let queued = 0;
      for (let i = 0; i < 4000; i++) {
        last = await gw.server.publish('events', [[payload, i]]);
        if (i % 50 === 0) {
          queued = Math.max(queued, ...gw.server.connections().map((c) => c.queuedCommands));
          await new Promise((r) => setImmediate(r));
        }
      }
      await fast.line(new RegExp(`^RDATA events ${last} `), 10_000);
      assert.ok(queued <= 50, `queued ${queued}`);
      const behind = gw.server.connections().filter((c) => c.subscriptions().some((sub) => sub.catchingUp));
      assert.equal(behind.length, 1, 'the paused client reads from the log');
      (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
      await slow.line(`POSITION events ${last}`, 10_000);
      const next = await gw.server.publish('events', [[payload, 'live']]);
      await slow.line(new RegExp(`^RDATA events ${next} `));
      const tokens = slow.rdata('events').map((l) => Number(l.split(' ')[2]));
      assert.deepEqual(tokens, Array.from({ length: next - from }, (_, i) => from + 1 + i));
      assert.ok(!slow.lines.some((l) => l.startsWith('ERROR')));
      assert.equal(slow.closeCode, null);
      assert.deepEqual(cuts, []);
      slow.terminate();
      fast.terminate();
    } finally {
      await gw.close();
    }
  });

  it('cuts a client that stops reading after maxStallMs with ERROR Failed to keep up, sent after what was buffered', async () => {
    const gw = await edge.start({ maxQueueCommands: 50, maxStallMs: 500 }, { sendHighWaterBytes: 64 * 1024 });
    const cuts: string[] = [];
    gw.server.on('slowConsumer', (_c, d) => cuts.push(d.limit));
    try {
      const slow = await WsPeer.open(gw.wsUrl);
      const fast = await WsPeer.open(gw.wsUrl);
      slow.send('REPLICATE events NOW');
      fast.send('REPLICATE events NOW');
      await slow.line(/^POSITION events /);
      await fast.line(/^POSITION events /);
      (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      const payload = 'z'.repeat(4096);
      let last = 0;
      for (let i = 0; i < 4000 && cuts.length === 0; i++) {
        last = await gw.server.publish('events', [[payload, i]]);
        if (i % 50 === 0) await new Promise((r) => setImmediate(r));
      }
      await waitUntil('the cut', () => (cuts.length > 0 ? true : undefined));
      assert.deepEqual(cuts, ['stall']);
      // The other subscriber was not held back.
      await fast.line(new RegExp(`^RDATA events ${last} `), 10_000);
      (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
      assert.equal(await slow.line(/^ERROR /, 10_000), 'ERROR Failed to keep up');
      await slow.waitClosed();
      // Rows before the ERROR came in order, none after it.
      const tokens = slow.rdata('events').map((l) => Number(l.split(' ')[2]));
      for (let i = 1; i < tokens.length; i++) assert.equal(tokens[i], tokens[i - 1]! + 1);
      assert.equal(slow.lines.at(-1), 'ERROR Failed to keep up');
      fast.terminate();
    } finally {
      await gw.close();
    }
  });

  it('refuses connections past the per-address limit with ERROR naming the address', async () => {
    const gw = await edge.start({ maxConnectionsPerAddress: 1 });
    try {
      const first = await WsPeer.open(gw.wsUrl);
      await first.line(/^SERVER /);
      const second = await WsPeer.open(gw.wsUrl);
      assert.match(await second.line(/^ERROR /), /^ERROR too many connections from (::ffff:)?127\.0\.0\.1 \(limit 1 per address\); try again later$/);
      await second.waitClosed();
      first.terminate();
    } finally {
      await gw.close();
    }
  });

  it('refuses connections past the connection limit with ERROR', async () => {
    const gw = await edge.start({ maxConnections: 1 });
    try {
      const first = await WsPeer.open(gw.wsUrl);
      await first.line(/^SERVER /);
      const second = await WsPeer.open(gw.wsUrl);
      assert.match(await second.line(/^ERROR /), /^ERROR too many connections/);
      await second.waitClosed();
      first.terminate();
    } finally {
      await gw.close();
    }
  });
});
