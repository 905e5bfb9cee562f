import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pack, unpackMultiple } from 'msgpackr';
import { RdataCommand, SENT_BY, type Command } from '../../../src/core/commands.js';
import { isFramingFailure, MsgpackFrames, rowsFromLines } from '../../../src/core/dialects/msgpack-frames.js';
import { v1Text } from '../../../src/core/dialects/v1-text.js';
import { ProtocolError } from '../../../src/core/errors.js';

const frames = new MsgpackFrames();

/** Same bytes (msgpackr's decoder hangs a DataView on what it reads, so deepEqual would compare that too). */
function sameBytes(actual: Buffer, expected: Buffer, message?: string): void {
  assert.equal(actual.toString('hex'), expected.toString('hex'), message);
}

test('server lines become frames, JSON arguments decoded', () => {
  const lines = Buffer.from(
    'SERVER hs\nPING 123\nPOSITION events 7\nERROR Failed to keep up\n' +
      'RDATA caches batch ["f",["@a:hs"],1]\nRDATA caches 54 ["f",["@b:hs"],2]\n' +
      'INVALIDATE_CACHE f ["k"]\nGENERATION 9f2c\nGENERATION none\n',
  );
  assert.deepEqual(unpackMultiple(frames.fromLines(lines)), [
    ['SERVER', 'hs'],
    ['PING', '123'],
    ['POSITION', 'events', 7],
    ['ERROR', 'Failed to keep up'],
    ['RDATA', 'caches', 'batch', ['f', ['@a:hs'], 1]],
    ['RDATA', 'caches', 54, ['f', ['@b:hs'], 2]],
    ['INVALIDATE_CACHE', 'f', ['k']],
    ['GENERATION', '9f2c'],
    ['GENERATION', 'none'],
  ]);
});

test('a batch is one frame per row, "batch" in place of the token on all but the last', () => {
  const batch = frames.encodeRows('caches', 54, ['["a"]', '{"b":[1,null]}', '"c"']);
  assert.deepEqual(unpackMultiple(batch), [
    ['RDATA', 'caches', 'batch', ['a']],
    ['RDATA', 'caches', 'batch', { b: [1, null] }],
    ['RDATA', 'caches', 54, 'c'],
  ]);
  sameBytes(frames.encodeRow('caches', null, Buffer.from('["a"]')), frames.encodeRow('caches', null, '["a"]'));
  assert.deepEqual(unpackMultiple(frames.encodePosition('caches', 54)), [['POSITION', 'caches', 54]]);
});

test('a row that is not JSON is refused with BAD_JSON, as its value would be', () => {
  assert.throws(() => frames.encodeRow('events', 1, '{not json'), (err: unknown) => err instanceof ProtocolError && err.code === 'BAD_JSON');
});

test('client frames become the v1 lines they stand for', () => {
  const message = Buffer.concat([
    pack(['AUTH', 'tok']),
    pack(['REPLICATE', 'events', 12]),
    pack(['REPLICATE', 'ALL', 'NOW']),
    pack(['NAME', 'a tab']),
    pack(['RDATA', 'events', 'batch', { k: [1, 'x'] }]),
    pack(['USER_IP', '@u:hs', ['tok', '1.2.3.4', 'UA', null, 5]]),
    pack(['GENERATION']),
  ]);
  assert.equal(
    frames.toLines(message).toString(),
    'AUTH tok\nREPLICATE events 12\nREPLICATE ALL NOW\nNAME a tab\nRDATA events batch {"k":[1,"x"]}\n' +
      'USER_IP @u:hs ["tok","1.2.3.4","UA",null,5]\nGENERATION\n',
  );
  sameBytes(frames.encode({ name: 'GENERATION' }), pack(['GENERATION']));
});

test('frames that would split or shift a line, or are no command, are refused with BAD_ARGUMENT', () => {
  const bad = [
    pack(['NAME', 'x\nRDATA events 1 []']),
    pack(['REPLICATE', 'events 1', 2]),
    pack({ name: 'PING' }),
    pack(['PING', { a: 1 }]),
    Buffer.from([0xc1]), // never used in MessagePack
  ];
  for (const frame of bad) {
    assert.throws(() => frames.toLines(frame), (err: unknown) => err instanceof ProtocolError && err.code === 'BAD_ARGUMENT', frame.toString('hex'));
  }
});

test('a chunk starts with a row only when its first line is an RDATA line', () => {
  assert.equal(frames.startsWithRow(Buffer.from('RDATA events 1 [1]\n')), true);
  assert.equal(frames.startsWithRow(Buffer.from('RDATA events batch [1]\nRDATA events 2 [2]\n')), true);
  assert.equal(frames.startsWithRow(Buffer.from('POSITION events 1\nRDATA events 2 [2]\n')), false);
  assert.equal(frames.startsWithRow(Buffer.from('PING 1\n')), false);
});

test('rowsFromLines refuses what is not whole RDATA lines, naming the line', () => {
  const position = rowsFromLines(Buffer.from('RDATA events 1 [1]\nPOSITION events 1\n'), false);
  assert.ok(isFramingFailure(position));
  assert.deepEqual(position, { error: 'line 1: expected RDATA, got POSITION', line: 1 });
  const open = rowsFromLines(Buffer.from('RDATA events 1 [1]'), false);
  assert.ok(isFramingFailure(open));
  assert.equal(open.line, 0);
  assert.match(open.error, /not terminated by LF/);
  const badJson = rowsFromLines(Buffer.from('RDATA events 1 [1\n'), false);
  assert.ok(isFramingFailure(badJson));
  assert.match(badJson.error, /^line 0: bad JSON in RDATA/);
});

// ------------------------------------------------------------ properties

const word = fc.stringMatching(/^[!-~]{1,12}$/).filter((w) => w !== 'batch' && w !== 'ALL');
const text = fc.stringMatching(/^[!-~][ -~é]{0,18}[!-~]$/);
const token = fc.nat({ max: Number.MAX_SAFE_INTEGER });
// msgpackr's decoder renames a `__proto__` key (against prototype pollution): such rows do not read back.
const json = fc.jsonValue().map((v) => JSON.stringify(v)).filter((j) => !j.includes('"__proto__"'));

/** Commands whose v1 line a frame can say: every word without spaces, JSON compact as JSON.stringify writes it. */
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  text.map((serverName): Command => ({ name: 'SERVER', serverName })),
  fc.tuple(word, fc.option(token), json).map(([s, t, j]): Command => RdataCommand.fromJson(s, t, Buffer.from(j))),
  fc.tuple(word, token).map(([stream, t]): Command => ({ name: 'POSITION', stream, token: t })),
  text.map((message): Command => ({ name: 'ERROR', message })),
  text.map((data): Command => ({ name: 'PING', data })),
  text.map((data): Command => ({ name: 'SYNC', data })),
  text.map((clientName): Command => ({ name: 'NAME', clientName })),
  fc.tuple(word, fc.oneof(token, fc.constant('NOW' as const))).map(([stream, t]): Command => ({ name: 'REPLICATE', stream, token: t })),
  fc.tuple(word, fc.constantFrom('start' as const, 'end' as const), token).map(
    ([userId, state, lastSyncMs]): Command => ({ name: 'USER_SYNC', userId, state, lastSyncMs }),
  ),
  token.map((t): Command => ({ name: 'FEDERATION_ACK', token: t })),
  fc.tuple(word, word, text).map(([appId, pushKey, userId]): Command => ({ name: 'REMOVE_PUSHER', appId, pushKey, userId })),
  fc.tuple(word, json).map(([cacheFunc, keysJson]): Command => ({ name: 'INVALIDATE_CACHE', cacheFunc, keysJson })),
  fc.tuple(word, fc.tuple(fc.string(), fc.string(), fc.string(), fc.option(fc.string()), fc.nat())).map(
    ([userId, info]): Command => ({ name: 'USER_IP', userId, infoJson: JSON.stringify(info) }),
  ),
  word.map((credential): Command => ({ name: 'AUTH', credential })),
  // The gateway's answer; the client's bare question has its own test below.
  fc.option(word).map((id): Command => ({ name: 'GENERATION', id: id === 'none' ? null : id })),
);

test('property: a command encoded as a frame reads back as its v1 line, and a line a gateway sends translates to the same frame', () => {
  fc.assert(
    fc.property(commandArb, (cmd) => {
      const line = v1Text.encode(cmd);
      const frame = frames.encode(cmd);
      assert.equal(unpackMultiple(frame).length, 1, 'one frame');
      sameBytes(frames.toLines(frame), line);
      // fromLines translates what a gateway sends: its commands, and the client actions it passes to writers.
      if (SENT_BY.gateway.has(cmd.name)) sameBytes(frames.fromLines(line), frame);
    }),
    { numRuns: 2000 },
  );
});

test('property: the frames of stored rows are the MessagePack dialect writing the same rows', () => {
  fc.assert(
    fc.property(word, token, fc.array(json, { minLength: 1, maxLength: 8 }), fc.boolean(), (stream, t, rows, viaAnyLines) => {
      const lines = v1Text.encodeRows(stream, t, rows);
      const expected = frames.encodeRows(stream, t, rows);
      const made = viaAnyLines ? frames.fromLines(lines) : rowsFromLines(lines, false);
      assert.ok(Buffer.isBuffer(made));
      sameBytes(made, expected);
      sameBytes(frames.toLines(expected), lines, 'and the frames read back as the lines');
    }),
    { numRuns: 1000 },
  );
});

/** The frames as rowsFromLines made them before it wrote them itself: msgpackr pack of each row's frame value. */
function framesByPack(lines: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (const line of lines.toString('utf8').split('\n').slice(0, -1)) {
    const [, stream, token] = line.split(' ', 3) as [string, string, string];
    const row: unknown = JSON.parse(line.slice(`RDATA ${stream} ${token} `.length));
    parts.push(Buffer.from(pack(['RDATA', stream, token === 'batch' ? 'batch' : Number(token), row])));
  }
  return Buffer.concat(parts);
}

test('property: whole chunks of rows decode to the frames msgpackr pack of their parsed rows gave', () => {
  fc.assert(
    fc.property(
      word,
      fc.array(fc.tuple(token, fc.array(json, { minLength: 1, maxLength: 4 })), { minLength: 1, maxLength: 6 }),
      (stream, updates) => {
        const lines = Buffer.concat(updates.map(([t, rows]) => v1Text.encodeRows(stream, t, rows)));
        const made = rowsFromLines(lines, false);
        assert.ok(Buffer.isBuffer(made));
        assert.deepStrictEqual(unpackMultiple(made), unpackMultiple(framesByPack(lines)));
      },
    ),
    { numRuns: 1000 },
  );
});

test('the benchmarks\' rows (a float timestamp each) and rows with wide, deep and escaped values decode as before', () => {
  const sent = 1732608000000.125;
  const rows = Array.from({ length: 300 }, (_, i) => [`$${i}:example.com`, `!room${i % 100}:example.com`, 'm.room.message', '@alice:example.com', null, 'x'.repeat(i), sent + i / 1000]);
  const odd = [{ a: Array(70000).fill(1), 'é\n"': 'π\u2028😀', n: [-1.5e-7, 2 ** 40, -(2 ** 31) - 1, 1e21] }, [[[[[[[]]]]]]], 'x'.repeat(300)];
  const lines = Buffer.concat([
    v1Text.encodeRows('events', 7, rows.map((r) => JSON.stringify(r))),
    v1Text.encodeRows('caches', 2 ** 40, odd.map((r) => JSON.stringify(r))),
  ]);
  const made = rowsFromLines(lines, false);
  assert.ok(Buffer.isBuffer(made));
  assert.deepStrictEqual(unpackMultiple(made), unpackMultiple(framesByPack(lines)));
});

test('a row holding -0 decodes with -0, as JSON.parse reads it (msgpackr pack wrote 0)', () => {
  const made = rowsFromLines(Buffer.from('RDATA events 3 [-0,0]\n'), false);
  assert.ok(Buffer.isBuffer(made));
  const [frame] = unpackMultiple(made) as [unknown[]];
  assert.deepStrictEqual(frame.slice(0, 3), ['RDATA', 'events', 3]);
  const row = frame[3] as number[];
  assert.ok(Object.is(row[0], -0) && Object.is(row[1], 0));
});
