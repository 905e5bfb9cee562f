// Binary mode (subprotocol replication.msgpack) over real sockets: the same
// commands as MessagePack arrays (the dialect itself is tested in
// test/core/dialects/msgpack-frames.test.ts), decoding to the same values as
// text mode; RDATA frames are made once per chunk and shared, also when they
// come from the encoder pool later.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pack, unpackMultiple } from 'msgpackr';
import { MsgpackCodec, type RdataTranscoder } from '../../src/bindings/ws-msgpack.js';
import { isFramingFailure, rowsFromLines } from '../../src/core/dialects/msgpack-frames.js';
import { describeEachEngine, row, TcpPeer, waitUntil, WsPeer, type Gateway } from './ws-harness.js';

const MSGPACK = 'replication.msgpack';

describe('MsgpackCodec', () => {
  const codec = new MsgpackCodec();

  it('makes frames of any other lines the hub sends, at once', () => {
    const frames = codec.frames(Buffer.from('SERVER hs\nPOSITION events 7\n'));
    assert.ok(Buffer.isBuffer(frames));
    assert.deepEqual(unpackMultiple(frames), [['SERVER', 'hs'], ['POSITION', 'events', 7]]);
  });

  it('keeps frames of recent chunks only, within its byte budget', () => {
    const small = new MsgpackCodec(null, 1000);
    const chunks = Array.from({ length: 50 }, (_, i) => Buffer.from(`RDATA events ${i + 1} ["row ${i}"]\n`));
    for (const c of chunks) small.frames(c);
    const perChunk = chunks[0]!.length;
    assert.ok(small.cachedChunks <= Math.floor(1000 / perChunk), `${small.cachedChunks} chunks cached`);
    // The newest is still shared; the oldest is made again, equal in value.
    assert.equal(small.frames(chunks[49]!), small.frames(chunks[49]!));
    assert.deepEqual(unpackMultiple(small.frames(chunks[0]!) as Buffer), [['RDATA', 'events', 1, ['row 0']]]);
  });

  it('makes the same frames as the encoder pool task for RDATA runs, once per chunk', () => {
    const chunk = Buffer.from('RDATA events batch ["a"]\nRDATA events 3 {"b":[1,null]}\n');
    const frames = codec.frames(chunk);
    assert.ok(Buffer.isBuffer(frames));
    const fromTask = rowsFromLines(chunk, false);
    assert.ok(!isFramingFailure(fromTask));
    assert.deepEqual(frames, fromTask);
    assert.equal(codec.frames(chunk), frames, 'the same Buffer for every subscriber');
  });
});

/** An async transcoder like the encoder pool's, counting its calls. */
class SlowTranscoder implements RdataTranscoder {
  readonly transcodeInlineMaxBytes = 0;
  calls = 0;
  transcode(lines: Buffer): Promise<Buffer> {
    this.calls++;
    return new Promise((resolve, reject) =>
      setTimeout(() => {
        const out = rowsFromLines(lines, false);
        if (isFramingFailure(out)) reject(new Error(out.error));
        else resolve(out);
      }, 5),
    );
  }
}

describeEachEngine('WebSocket bridge, binary mode', (edge) => {
  let gw: Gateway;
  const pool = new SlowTranscoder();
  before(async () => {
    gw = await edge.start({ writerToken: 'w' }, { transcoder: pool });
  });
  after(() => gw.close());

  it('negotiates replication.msgpack and greets with frames', async () => {
    const peer = await WsPeer.open(gw.wsUrl, { protocol: MSGPACK });
    assert.equal(peer.ws.protocol, MSGPACK);
    await waitUntil('PING', () => (peer.frames.length >= 2 ? true : undefined));
    assert.deepEqual(peer.frames[0], ['SERVER', 'localhost']);
    assert.equal(peer.frames[1]![0], 'PING');
    peer.terminate();
  });

  it('decodes catch-up, batches and live rows to the same values as text mode', async () => {
    await gw.server.publish('events', [row(1)]);
    await gw.server.publish('events', [row(2), row(3)]);
    const binary = await WsPeer.open(gw.wsUrl, { protocol: MSGPACK });
    const text = await WsPeer.open(gw.wsUrl);
    binary.send(pack(['REPLICATE', 'events', 0]));
    text.send('REPLICATE events 0');
    await text.line(/^POSITION events 2$/);
    const live = await gw.server.publish('events', [row(4), { nested: [1.5, 'é', null, true] }]);
    await text.line(new RegExp(`^RDATA events ${live} `));
    await waitUntil('binary rows', () => (binary.frames.filter((f) => f[0] === 'RDATA').length === 5 ? true : undefined));

    const fromText = text.rdata().map((l) => {
      const [name, stream, token, ...rest] = l.split(' ');
      return [name, stream, token === 'batch' ? 'batch' : Number(token), JSON.parse(rest.join(' '))];
    });
    const fromBinary = binary.frames.filter((f) => f[0] === 'RDATA');
    assert.deepEqual(fromBinary, fromText);
    assert.deepEqual(fromBinary.map((f) => f[2]), [1, 'batch', 2, 'batch', live]);
    // The binary peer was still catching up (its frames wait for the pool): its POSITION names where it ends.
    const position = await waitUntil('POSITION', () => binary.frames.find((f) => f[0] === 'POSITION'));
    assert.ok(position[2] === 2 || position[2] === live, String(position));
    binary.terminate();
    text.terminate();
  });

  it('transcodes each live chunk once for all binary subscribers, in order', async () => {
    const peers = await Promise.all([1, 2, 3].map(() => WsPeer.open(gw.wsUrl, { protocol: MSGPACK })));
    for (const p of peers) p.send(pack(['REPLICATE', 'typing', 'NOW']));
    await waitUntil('positions', () => (peers.every((p) => p.frames.some((f) => f[0] === 'POSITION')) ? true : undefined));
    const before = pool.calls;
    const tokens: number[] = [];
    for (let i = 0; i < 20; i++) tokens.push(await gw.server.publish('typing', [['!r:hs', [`@u${i}:hs`]]]));
    const got = (p: WsPeer): unknown[] => p.frames.filter((f) => f[0] === 'RDATA').map((f) => f[2]);
    await waitUntil('all rows', () => (peers.every((p) => got(p).length === 20) ? true : undefined));
    for (const p of peers) assert.deepEqual(got(p), tokens);
    assert.equal(pool.calls - before, 20);
    for (const p of peers) p.terminate();
  });

  it('takes writer frames and serves them as JSON lines to TCP subscribers', async () => {
    const reader = await TcpPeer.connect(gw.tcpPort);
    reader.send('REPLICATE caches NOW\n');
    const head = Number((await reader.line(/^POSITION caches/)).split(' ')[2]);
    const writer = await WsPeer.open(gw.wsUrl, { protocol: MSGPACK });
    writer.send(Buffer.concat([pack(['AUTH', 'w']), pack(['RDATA', 'caches', 'batch', ['f', ['@a:hs'], 1]]), pack(['RDATA', 'caches', head + 1, ['f', ['@b:hs'], 2]])]));
    await reader.line(new RegExp(`^RDATA caches ${head + 1} `));
    assert.deepEqual(reader.lines.filter((l) => l.startsWith('RDATA')), [
      'RDATA caches batch ["f",["@a:hs"],1]',
      `RDATA caches ${head + 1} ["f",["@b:hs"],2]`,
    ]);
    writer.terminate();
    reader.close();
  });

  it('a binary client that pauses past the queue limit reads the rest from the log, frames made later by the pool: every row once, in order, no ERROR', async () => {
    const slowGw = await edge.start({ maxQueueCommands: 50 }, { transcoder: new SlowTranscoder(), sendHighWaterBytes: 64 * 1024 });
    const cuts: string[] = [];
    slowGw.server.on('slowConsumer', (_c, d) => cuts.push(d.limit));
    try {
      const slow = await WsPeer.open(slowGw.wsUrl, { protocol: MSGPACK });
      slow.send(pack(['REPLICATE', 'events', 'NOW']));
      const from = (await waitUntil('POSITION', () => slow.frames.find((f) => f[0] === 'POSITION')))[2] as number;
      (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      const payload = 'z'.repeat(4096);
      let last = 0;
      for (let i = 0; i < 3000; i++) {
        last = await slowGw.server.publish('events', [[payload, i]]);
        if (i % 50 === 0) await new Promise((r) => setImmediate(r));
      }
      await waitUntil('falling behind', () => (slowGw.server.connections().some((c) => c.subscriptions().some((sub) => sub.catchingUp)) ? true : undefined));
      (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
      await waitUntil('POSITION at the head', () => slow.frames.find((f) => f[0] === 'POSITION' && f[2] === last), 20_000);
      const tokens = slow.frames.filter((f) => f[0] === 'RDATA').map((f) => f[2]);
      assert.deepEqual(tokens, Array.from({ length: last - from }, (_, i) => from + 1 + i));
      assert.ok(!slow.frames.some((f) => f[0] === 'ERROR'));
      assert.deepEqual(cuts, []);
      slow.terminate();
    } finally {
      await slowGw.close();
    }
  });

  it('answers a bad frame with an ERROR frame and a close', async () => {
    const peer = await WsPeer.open(gw.wsUrl, { protocol: MSGPACK });
    peer.send(pack({ not: 'an array' }));
    const error = await waitUntil('ERROR', () => peer.frames.find((f) => f[0] === 'ERROR'));
    assert.deepEqual(error, ['ERROR', 'bad frame: expected an array [name, ...args]']);
    await peer.waitClosed();
  });

  it('still reads text lines in binary mode', async () => {
    const peer = await WsPeer.open(gw.wsUrl, { protocol: MSGPACK });
    peer.send('REPLICATE events NOW');
    await waitUntil('POSITION', () => peer.frames.find((f) => f[0] === 'POSITION'));
    peer.terminate();
  });
});
