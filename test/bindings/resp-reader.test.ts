import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RespReader, type RespReply } from '../../src/bindings/resp-reader.js';

/** What a reply says, as plain values: [type, part texts] (null for a null bulk). */
type Seen = [string, (string | null)[]];

function readAll(chunks: Buffer[]): Seen[] {
  const seen: Seen[] = [];
  const reader = new RespReader((r: RespReply) => {
    const parts: (string | null)[] = [];
    for (let i = 0; i < r.count; i++) parts.push(r.starts[i] === -1 ? null : r.text(i));
    seen.push([String.fromCharCode(r.type), parts]);
  });
  for (const c of chunks) reader.feed(c);
  return seen;
}

const bulk = (text: string): string => `$${Buffer.byteLength(text)}\r\n${text}\r\n`;

const PUSHES = Buffer.from(
  [
    '+OK\r\n',
    '-NOAUTH Authentication required.\r\n',
    '*3\r\n$9\r\nsubscribe\r\n$14\r\nw9.example.com\r\n:1\r\n',
    `*3\r\n${bulk('message')}${bulk('w9.example.com')}${bulk('RDATA events w9_writer 1 ["é"]')}`,
    '*2\r\n$4\r\npong\r\n$0\r\n\r\n',
    '*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$-1\r\n',
  ].join(''),
);

const EXPECTED: Seen[] = [
  ['+', ['OK']],
  ['-', ['NOAUTH Authentication required.']],
  ['*', ['subscribe', 'w9.example.com', '1']],
  ['*', ['message', 'w9.example.com', 'RDATA events w9_writer 1 ["é"]']],
  ['*', ['pong', '']],
  ['*', ['message', 'c', null]],
];

describe('RespReader', () => {
  test('what a subscribed connection is sent, in one chunk', () => {
    assert.deepEqual(readAll([PUSHES]), EXPECTED);
  });

  test('the same bytes cut at every place, in two chunks and one byte at a time', () => {
    for (let cut = 1; cut < PUSHES.length; cut++) {
      assert.deepEqual(readAll([PUSHES.subarray(0, cut), PUSHES.subarray(cut)]), EXPECTED, `cut at ${cut}`);
    }
    const bytes = Array.from({ length: PUSHES.length }, (_, i) => PUSHES.subarray(i, i + 1));
    assert.deepEqual(readAll(bytes), EXPECTED);
  });

  test('a payload larger than a chunk, over many chunks', () => {
    const payload = 'x'.repeat(300_000);
    const wire = Buffer.from(`*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$${payload.length}\r\n${payload}\r\n+OK\r\n`);
    const chunks: Buffer[] = [];
    for (let i = 0; i < wire.length; i += 65_536) chunks.push(wire.subarray(i, i + 65_536));
    assert.deepEqual(readAll(chunks), [
      ['*', ['message', 'c', payload]],
      ['+', ['OK']],
    ]);
  });

  test('bytes that are not RESP2 throw', () => {
    for (const bad of ['!x\r\n', '*1\r\n*1\r\n:1\r\n', '$abc\r\n', '*99\r\n', '$5\r\nhello\r\n'.replace('$5', '$-5')]) {
      assert.throws(() => readAll([Buffer.from(bad)]), Error, bad);
    }
  });
});
