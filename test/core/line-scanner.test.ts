import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LineScanner, DEFAULT_MAX_LINE_BYTES } from '../../src/core/line-scanner.js';
import { ProtocolError } from '../../src/core/errors.js';

interface Seen {
  lines: string[];
  errors: string[];
  buffers: Buffer[];
}

function scanner(options: ConstructorParameters<typeof LineScanner>[1] = {}): { s: LineScanner; seen: Seen } {
  const seen: Seen = { lines: [], errors: [], buffers: [] };
  const s = new LineScanner(
    {
      onLine(buf, start, end) {
        seen.lines.push(buf.toString('utf8', start, end));
        seen.buffers.push(buf);
      },
      onLineError(err) {
        assert.ok(err instanceof ProtocolError);
        seen.errors.push(err.code);
      },
    },
    options,
  );
  return { s, seen };
}

function feed(chunks: Buffer[], options?: ConstructorParameters<typeof LineScanner>[1]): Seen {
  const { s, seen } = scanner(options);
  for (const c of chunks) s.push(c);
  return seen;
}

test('yields each line of one chunk as a view of that chunk', () => {
  const chunk = Buffer.from('PING 1\nREPLICATE events NOW\n');
  const seen = feed([chunk]);
  assert.deepEqual(seen.lines, ['PING 1', 'REPLICATE events NOW']);
  for (const b of seen.buffers) assert.equal(b, chunk);
});

test('joins a line split across chunks with one copy ending in LF', () => {
  const { s, seen } = scanner();
  s.push(Buffer.from('RDATA ev'));
  s.push(Buffer.from('ents 1 '));
  s.push(Buffer.from('[1]\nPI'));
  assert.deepEqual(seen.lines, ['RDATA events 1 [1]']);
  const joined = seen.buffers[0]!;
  assert.equal(joined.length, 'RDATA events 1 [1]'.length + 1);
  assert.equal(joined[joined.length - 1], 0x0a);
  assert.equal(s.pendingBytes, 2);
});

test('the byte after a line is its LF, or the CR that was stripped', () => {
  const got: number[] = [];
  const s = new LineScanner({
    onLine: (buf, _start, end) => got.push(buf[end]!),
    onLineError: () => assert.fail('no error expected'),
  });
  s.push(Buffer.from('A 1\nB 2\r\nC'));
  s.push(Buffer.from(' 3\n'));
  assert.deepEqual(got, [0x0a, 0x0d, 0x0a]);
});

test('strips one CR before LF, and only one', () => {
  assert.deepEqual(feed([Buffer.from('PING 1\r\nPING 2\r\r\n')]).lines, ['PING 1', 'PING 2\r']);
});

test('skips empty and whitespace-only lines', () => {
  assert.deepEqual(feed([Buffer.from('\n\r\n  \n\t \r\nPING 1\n \tx\n')]).lines, ['PING 1', ' \tx']);
});

test('a line over the limit is an error naming the limit, and input is dropped until the next LF', () => {
  const msgs: string[] = [];
  const lines: string[] = [];
  const s = new LineScanner(
    { onLine: (b, a, e) => lines.push(b.toString('utf8', a, e)), onLineError: (e) => msgs.push(e.message) },
    { maxLineBytes: 10 },
  );
  s.push(Buffer.from('PING 1\nPING 0123456789'));
  assert.deepEqual(msgs, ['line too long: over the limit of 10 bytes']);
  s.push(Buffer.from('more bytes of the same line'));
  s.push(Buffer.from('still more\nPING 2\n'));
  assert.equal(msgs.length, 1);
  assert.deepEqual(lines, ['PING 1', 'PING 2']);
  // An over-long line within one chunk is caught too.
  s.push(Buffer.from('PING 0123456789\nPING 3\n'));
  assert.equal(msgs.length, 2);
  assert.deepEqual(lines, ['PING 1', 'PING 2', 'PING 3']);
});

test('a line of exactly the limit is accepted', () => {
  const seen = feed([Buffer.from('0123456789\n')], { maxLineBytes: 10 });
  assert.deepEqual(seen.lines, ['0123456789']);
});

test('the default limit is 1 MiB', () => {
  assert.equal(DEFAULT_MAX_LINE_BYTES, 1048576);
});

test('a 1 MiB line fed one byte at a time is searched in linear time', () => {
  const size = 1024 * 1024 - 16;
  const { s, seen } = scanner();
  const line = Buffer.alloc(size + 1, 0x61);
  line[size] = 0x0a;
  for (let i = 0; i <= size; i++) s.push(line.subarray(i, i + 1));
  assert.equal(seen.lines.length, 1);
  assert.equal(seen.lines[0]!.length, size);
  // every byte is handed to indexOf exactly once
  assert.equal(s.searchedBytes, size + 1);
});

test('bytes of many lines are searched once each', () => {
  const { s } = scanner();
  const data = Buffer.from('PING 1\nPING 22\nPING 333\n'.repeat(100));
  for (let i = 0; i < data.length; i += 7) s.push(data.subarray(i, i + 7));
  assert.equal(s.searchedBytes, data.length);
});

test('invalid UTF-8 is an error for that line only', () => {
  const chunk = Buffer.concat([Buffer.from('NAME ok\nNAME '), Buffer.from([0xc3, 0x28]), Buffer.from('\nPING 1\n')]);
  const seen = feed([chunk]);
  assert.deepEqual(seen.lines, ['NAME ok', 'PING 1']);
  assert.deepEqual(seen.errors, ['INVALID_UTF8']);
});

test('a multi-byte character split across chunks is valid', () => {
  const bytes = Buffer.from('NAME café\n');
  const seen = feed([bytes.subarray(0, 9), bytes.subarray(9)]);
  assert.deepEqual(seen.lines, ['NAME café']);
  assert.deepEqual(seen.errors, []);
});

test('invalid UTF-8 in a line split across chunks is an error', () => {
  const seen = feed([Buffer.from('NAME a'), Buffer.from([0xff, 0x0a]), Buffer.from('PING 1\n')]);
  assert.deepEqual(seen.lines, ['PING 1']);
  assert.deepEqual(seen.errors, ['INVALID_UTF8']);
});

const lineArb = fc.stringMatching(/^[ -~é€\r]{0,40}$/);

test('property: any split of a stream into chunks yields the same lines as the whole', () => {
  fc.assert(
    fc.property(fc.array(lineArb, { maxLength: 30 }), fc.array(fc.nat(400), { maxLength: 20 }), (lines, cuts) => {
      const data = Buffer.from(lines.map((l) => `${l}\n`).join(''));
      const whole = feed([data]);
      const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
      const chunks: Buffer[] = [];
      let prev = 0;
      for (const p of points) {
        chunks.push(data.subarray(prev, p));
        prev = p;
      }
      chunks.push(data.subarray(prev));
      const split = feed(chunks.filter((c) => c.length > 0));
      assert.deepEqual(split.lines, whole.lines);
      assert.deepEqual(split.errors, whole.errors);
    }),
  );
});

test('property: arbitrary bytes never make the scanner throw', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }), (chunks) => {
      const seen = feed(chunks.map((c) => Buffer.from(c)), { maxLineBytes: 32 });
      for (const l of seen.lines) assert.ok(l.length > 0);
    }),
  );
});

test('byte by byte gives the same lines as whole chunks', () => {
  const data = Buffer.from('SERVER hs\r\nPING 1\n\nRDATA events 1 ["a b"]\nRDATA caches batch [1]\n');
  const bytes: Buffer[] = [];
  for (let i = 0; i < data.length; i++) bytes.push(data.subarray(i, i + 1));
  assert.deepEqual(feed(bytes).lines, feed([data]).lines);
  assert.deepEqual(feed([data]).lines, ['SERVER hs', 'PING 1', 'RDATA events 1 ["a b"]', 'RDATA caches batch [1]']);
});
