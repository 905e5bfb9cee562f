// Property tests (fast-check) of the client connection (src/core/client-connection.ts)
// against random servers: a faithful one whose connections are cut after any
// number of bytes, its output in random chunks, and a hostile one sending
// random valid and invalid lines. Every row arrives once, in order; nothing
// throws out of data(); an invalid line ends in one ERROR and the close; a
// batch that never ends is bounded. Failing runs found are fixed examples.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { chunksOf } from './support/random-chunks.js';
import { ClientConnection, type ClientConnectionOptions } from '../../src/core/client-connection.js';
import type { ProtocolError } from '../../src/core/errors.js';

const STREAMS = ['s1', 's2'] as const;
const MAX_LINE_BYTES = 4096;

interface Client {
  conn: ClientConnection;
  /** Lines written since the last connect. */
  sent: string[];
  delivered: Map<string, [number, unknown][]>;
  closes: ProtocolError[];
}

function client(options: ClientConnectionOptions = {}): Client {
  const c: Client = { conn: null as unknown as ClientConnection, sent: [], delivered: new Map(STREAMS.map((s) => [s, []])), closes: [] };
  c.conn = new ClientConnection(
    {
      write(chunks) {
        for (const chunk of chunks) c.sent.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''));
        return true;
      },
      close(reason) {
        c.closes.push(reason);
      },
      server() {},
      rows(batch) {
        const list = c.delivered.get(batch.stream)!;
        for (const v of batch.values()) list.push([batch.token, v]);
      },
      position() {},
      remoteError() {},
      sync() {},
      forwarded() {},
      generationChanged() {},
    },
    { maxLineBytes: MAX_LINE_BYTES, ...options },
  );
  for (const s of STREAMS) c.conn.follow(s, 0, 0);
  return c;
}

const row = (stream: string, token: number, k: number): unknown[] => [stream, token, k];

/** What a gateway sends after `REPLICATE <stream> <from>` lines: each stream's rows after it, interleaved by `order`, batches framed, then POSITIONs. */
function serverOutput(counts: Record<string, number[]>, from: Record<string, number>, order: readonly boolean[]): Buffer {
  const out = ['SERVER gw.test', 'PING 1'];
  const next: Record<string, number> = { s1: from['s1']! + 1, s2: from['s2']! + 1 };
  const emit = (s: string): void => {
    const t = next[s]!++;
    const n = counts[s]![t - 1]!;
    for (let k = 0; k < n; k++) out.push(`RDATA ${s} ${k < n - 1 ? 'batch' : t} ${JSON.stringify(row(s, t, k))}`);
  };
  const left = (s: string): boolean => next[s]! <= counts[s]!.length;
  for (let i = 0; left('s1') || left('s2'); i++) {
    const pick = order[i % Math.max(1, order.length)] ? 's1' : 's2';
    emit(left(pick) ? pick : pick === 's1' ? 's2' : 's1');
  }
  for (const s of STREAMS) out.push(`POSITION ${s} ${counts[s]!.length}`);
  return Buffer.from(out.map((l) => `${l}\n`).join(''));
}

test('a faithful server cut after any number of bytes, its output in random chunks: after the reconnects every row arrives once, in order', () => {
  const rowsPerToken = fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 40 });
  fc.assert(
    fc.property(
      fc.record({
        counts: fc.record({ s1: rowsPerToken, s2: rowsPerToken }),
        order: fc.array(fc.boolean(), { minLength: 1, maxLength: 20 }),
        /** Per cut connection: how far into its output (a fraction) the cut falls, and its chunking. */
        drops: fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 })), { maxLength: 6 }),
        lastCuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 }),
      }),
      ({ counts, order, drops, lastCuts }) => {
        const c = client();
        const connect = (): Record<string, number> => {
          c.sent.length = 0;
          c.conn.connected(0);
          const from: Record<string, number> = {};
          for (const l of c.sent) {
            const m = /^REPLICATE (\S+) (\d+)$/.exec(l);
            if (m !== null) from[m[1]!] = Number(m[2]);
          }
          assert.deepEqual(Object.keys(from).sort(), [...STREAMS], `REPLICATE per stream: ${JSON.stringify(c.sent)}`);
          return from;
        };
        for (const [at, cuts] of drops) {
          const out = serverOutput(counts, connect(), order);
          for (const chunk of chunksOf(out.subarray(0, Math.floor(at * out.length)), cuts)) c.conn.data(chunk, 0);
          c.conn.disconnected();
        }
        for (const chunk of chunksOf(serverOutput(counts, connect(), order), lastCuts)) c.conn.data(chunk, 0);
        assert.deepEqual(c.closes, []);
        for (const s of STREAMS) {
          const want = counts[s]!.flatMap((n, i) => Array.from({ length: n }, (_, k) => [i + 1, row(s, i + 1, k)]));
          assert.deepEqual(c.delivered.get(s), want, s);
        }
      },
    ),
    { numRuns: 300 },
  );
});

const word = fc.stringMatching(/^[a-z0-9._-]{1,12}$/);
const stream = fc.constantFrom('s1', 's2', 'other');
const tokenWord = fc.oneof(fc.constant('batch'), fc.nat(30).map(String));
const json = fc.oneof(fc.constant('[1]'), word.map((w) => JSON.stringify([w, { k: w }])));

/** Lines a server may send a (non-writer) client. */
const validServerLine = fc.oneof(
  word.map((w) => `SERVER ${w}`),
  fc.nat().map((n) => `PING ${n}`),
  fc.tuple(stream, tokenWord, json).map(([s, t, j]) => `RDATA ${s} ${t} ${j}`),
  fc.tuple(stream, fc.nat(30)).map(([s, t]) => `POSITION ${s} ${t}`),
  word.map((w) => `SYNC ${w}`),
  word.map((w) => `ERROR ${w}`),
  fc.oneof(word, fc.constant('none')).map((w) => `GENERATION ${w}`),
  fc.constantFrom('', '  '),
);

/** Lines no server may send: each gets ERROR and the close. */
const invalidServerLine: fc.Arbitrary<string | Buffer> = fc.oneof(
  fc.constantFrom(
    'HELLO there', 'ping 1', 'rdata s1 1 [1]', 'REPLICATE s1 NOW', 'NAME x', 'AUTH x', 'USER_SYNC @u:hs start 1', 'FEDERATION_ACK 1',
    'RDATA s1 -1 [1]', 'RDATA s1 x [1]', 'RDATA s1', 'POSITION s1 abc', 'POSITION s1', 'SERVER', 'GENERATION',
  ),
  fc.integer({ min: MAX_LINE_BYTES + 1, max: 2 * MAX_LINE_BYTES }).map((n) => `PING ${'7'.repeat(n)}`),
  fc.constant(Buffer.from([0x50, 0x49, 0x4e, 0x47, 0x20, 0xe2, 0x28, 0xa1])),
);

test('a hostile server, random lines in random chunks: nothing throws; a run of valid lines keeps the connection, one invalid line ends it with ERROR', () => {
  fc.assert(
    fc.property(
      fc.array(validServerLine, { maxLength: 30 }),
      fc.option(invalidServerLine, { nil: null }),
      fc.array(validServerLine, { maxLength: 5 }),
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 20 }),
      (before, invalid, after, cuts) => {
        const c = client();
        c.conn.connected(0);
        c.sent.length = 0;
        const parts = [...before.map((l) => Buffer.from(`${l}\n`)), ...(invalid === null ? [] : [Buffer.concat([Buffer.from(invalid), Buffer.from('\n')])]), ...after.map((l) => Buffer.from(`${l}\n`))];
        let deliveredAtClose = -1;
        for (const chunk of chunksOf(Buffer.concat(parts), cuts)) {
          c.conn.data(chunk, 0);
          if (c.closes.length > 0 && deliveredAtClose < 0) deliveredAtClose = [...c.delivered.values()].reduce((n, l) => n + l.length, 0);
        }
        if (invalid === null) {
          assert.deepEqual(c.closes, []);
          assert.deepEqual(c.sent, []);
          return;
        }
        assert.equal(c.closes.length, 1, `closes after ${JSON.stringify(invalid.toString())}`);
        assert.deepEqual(c.sent.length, 1);
        assert.match(c.sent[0]!, /^ERROR /);
        assert.equal([...c.delivered.values()].reduce((n, l) => n + l.length, 0), deliveredAtClose, 'rows delivered after the close');
      },
    ),
    { numRuns: 400 },
  );
});

test('arbitrary bytes from a server: nothing throws, and a close always comes after an ERROR sent', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 6000 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 20 }), (bytes, cuts) => {
      const c = client();
      c.conn.connected(0);
      c.sent.length = 0;
      for (const chunk of chunksOf(Buffer.from(bytes), cuts)) c.conn.data(chunk, 0);
      assert.ok(c.closes.length <= 1);
      if (c.closes.length === 1) assert.match(c.sent.at(-1) ?? '', /^ERROR /);
    }),
    { numRuns: 400 },
  );
});

test('batch rows that never get their numbered row are bounded: past maxBatchBytes the client says ERROR and closes', () => {
  const c = client({ maxBatchBytes: 10_000 });
  c.conn.connected(0);
  c.sent.length = 0;
  const line = Buffer.from(`RDATA s1 batch ${JSON.stringify(['x'.repeat(100)])}\n`);
  for (let i = 0; i < 1_000 && c.closes.length === 0; i++) c.conn.data(line, 0);
  assert.deepEqual(c.closes.map((e) => e.code), ['BATCH_TOO_LARGE']);
  assert.deepEqual(c.sent, ['ERROR batch of s1 over 10000 bytes without its numbered row']);
  assert.deepEqual(c.delivered.get('s1'), []);
});
