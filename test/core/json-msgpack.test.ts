import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pack, unpack } from 'msgpackr';
import { JsonTranscodeError, JsonTranscoder, transcodeRoom } from '../../src/core/json-msgpack.js';

/** The MessagePack of a JSON text, written where a caller would: after other bytes, with bytes after the text that must not be read. */
function transcode(text: string): Buffer {
  const json = Buffer.from(text, 'utf8');
  const src = Buffer.concat([Buffer.from('xx'), json, Buffer.from('"]}1')]);
  const out = Buffer.alloc(3 + transcodeRoom(json.length), 0xee);
  const end = new JsonTranscoder().transcode(src, 2, 2 + json.length, out, 3);
  assert.ok(end - 3 <= transcodeRoom(json.length), 'within the room it asks for');
  return out.subarray(3, end);
}

/** What a client decodes from the transcoded bytes equals what JSON.parse makes of the text (-0 included). */
function decodesAsJsonParse(text: string): void {
  const expected: unknown = JSON.parse(text);
  const actual: unknown = unpack(transcode(text));
  assert.deepStrictEqual(actual, expected, text.length > 200 ? `${text.slice(0, 200)}…` : text);
}

// msgpackr's decoder renames a `__proto__` key (against prototype pollution): such texts do not read back.
const noProto = (text: string): boolean => !text.includes('"__proto__"');

test('the bytes of a small row, as the module comment shows them', () => {
  assert.equal(transcode('["a",{"b":-1.5},7,null]').toString('hex'), '94a16181a162cbbff800000000000007c0');
  assert.equal(transcode(' { "k" : [ true , false ] } ').toString('hex'), '81a16b92c3c2');
  assert.equal(transcode('[]').toString('hex'), '90');
  assert.equal(transcode('{}').toString('hex'), '80');
});

test('property: any JSON value, written compactly or indented, decodes to what JSON.parse gives', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 6 }), fc.boolean(), (value, indent) => {
      const text = indent ? JSON.stringify(value, null, 2) : JSON.stringify(value);
      fc.pre(noProto(text));
      decodesAsJsonParse(text);
    }),
    { numRuns: 3000 },
  );
});

const hasMap = (v: unknown): boolean => typeof v === 'object' && v !== null && (!Array.isArray(v) || v.some(hasMap));

test('property: the bytes are msgpackr pack of the parsed value, for values with no map (pack gives every map a 16-bit header)', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
      fc.pre(!hasMap(value));
      const text = JSON.stringify(value);
      assert.equal(transcode(text).toString('hex'), pack(JSON.parse(text)).toString('hex'));
    }),
    { numRuns: 2000 },
  );
});

// ------------------------------------------------------------ strings

/** One UTF-16 unit or pair of a string, written raw, as a short escape, or as \uXXXX (a pair as two). */
const piece = fc
  .tuple(fc.fullUnicode(), fc.nat({ max: 2 }), fc.boolean())
  .map(([ch, how, upper]) => {
    const short: Record<string, string> = { '"': '\\"', '\\': '\\\\', '/': '\\/', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
    const u = (unit: number): string => {
      const hex = unit.toString(16).padStart(4, '0');
      return `\\u${upper ? hex.toUpperCase() : hex}`;
    };
    const escaped = [...ch].length === 1 && ch.length === 2 ? u(ch.charCodeAt(0)) + u(ch.charCodeAt(1)) : u(ch.charCodeAt(0));
    if (how === 0 && short[ch] !== undefined) return short[ch];
    if (how === 1 || ch < ' ' || ch === '"' || ch === '\\') return escaped;
    return ch;
  });

test('property: strings with every escape, \\u in either case, surrogate pairs and raw UTF-8 decode as JSON.parse reads them', () => {
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 80 }), (pieces) => decodesAsJsonParse(`["${pieces.join('')}"]`)),
    { numRuns: 3000 },
  );
});

test('property: a lone surrogate is written as msgpackr writes JSON.parse\'s string: its 3 bytes under 64 units, U+FFFD from there', () => {
  const lone = fc.oneof(fc.integer({ min: 0xd800, max: 0xdbff }), fc.integer({ min: 0xdc00, max: 0xdfff })).map((unit) => `\\u${unit.toString(16)}`);
  fc.assert(
    fc.property(fc.array(fc.oneof(piece, lone), { maxLength: 100 }), lone, (pieces, one) => {
      const text = `"${pieces.join('')}${one}"`;
      const value = JSON.parse(text) as string;
      assert.equal(transcode(text).toString('hex'), pack(value).toString('hex'), `${value.length} units`);
    }),
    { numRuns: 3000 },
  );
  // Both sides of msgpackr's 64-unit line, and a high surrogate before a non-low one.
  for (const text of ['"\\ud800"', `"${'x'.repeat(62)}\\udc00"`, `"${'x'.repeat(63)}\\udc00"`, '"\\ud83d\\u0041\\ud83d\\ude00"', `"${'é'.repeat(70)}\\udbff\\ud800"`]) {
    assert.equal(transcode(text).toString('hex'), pack(JSON.parse(text)).toString('hex'), text);
  }
});

test('strings of 31, 32, 255, 256, 65535 and 65536 bytes get fixstr, str8, str16, str32 headers, with and without escapes', () => {
  const cases: [number, string][] = [
    [31, 'a0'],
    [32, 'd9'],
    [255, 'd9'],
    [256, 'da'],
    [65535, 'da'],
    [65536, 'db'],
  ];
  for (const [bytes, header] of cases) {
    const plain = 'y'.repeat(bytes);
    const plainOut = transcode(JSON.stringify(plain));
    assert.equal(plainOut[0]! & (bytes < 32 ? 0xe0 : 0xff), Number.parseInt(header, 16), `${bytes} plain`);
    assert.equal(unpack(plainOut), plain);
    // An escape shrinks 2 source bytes to 1: the header goes by the decoded length.
    const escaped = `"\\n${'y'.repeat(bytes - 1)}"`;
    const escapedOut = transcode(escaped);
    assert.equal(escapedOut[0]! & (bytes < 32 ? 0xe0 : 0xff), Number.parseInt(header, 16), `${bytes} escaped`);
    assert.equal(unpack(escapedOut), JSON.parse(escaped));
  }
  decodesAsJsonParse(JSON.stringify(['é€😀'.repeat(30000), 'z'.repeat(70000)]));
});

// ------------------------------------------------------------ containers

test('arrays and maps of 15, 16, 65535 and 65536 members get fix, 16 and 32 headers, also nested in one another', () => {
  for (const n of [15, 16, 65535, 65536]) {
    const array = Array.from({ length: n }, (_, i) => i);
    const map = Object.fromEntries(array.map((i) => [`k${i}`, [i, -i - 1]]));
    const arrayOut = transcode(JSON.stringify(array));
    const mapOut = transcode(JSON.stringify(map));
    assert.equal(arrayOut[0], n < 16 ? 0x90 | n : n < 0x10000 ? 0xdc : 0xdd);
    assert.equal(mapOut[0], n < 16 ? 0x80 | n : n < 0x10000 ? 0xde : 0xdf);
    assert.deepStrictEqual(unpack(arrayOut), array);
    assert.deepStrictEqual(unpack(mapOut), map);
  }
  // Wide inside wide: each inner header widens before the outer one moves it all again.
  decodesAsJsonParse(JSON.stringify(Array.from({ length: 20 }, (_, i) => Array.from({ length: 17 + i }, (_, j) => ({ [`${j}`]: Array(16).fill(j) })))));
  decodesAsJsonParse(JSON.stringify([Array(70000).fill('a'), { x: Array(16).fill(null) }]));
});

test('deep nesting, of arrays and of maps', () => {
  // Past the validator's limit (256) for writer rows; msgpackr's decoder recurses, so not much further.
  const depth = 1000;
  decodesAsJsonParse('['.repeat(depth) + '1' + ']'.repeat(depth));
  decodesAsJsonParse('{"a":'.repeat(depth) + '[]' + '}'.repeat(depth));
  decodesAsJsonParse('[{"a":['.repeat(300) + '"x"' + ']}]'.repeat(300));
});

test('duplicate keys are passed on in source order: the decoder keeps the last, as JSON.parse does', () => {
  assert.equal(transcode('{"a":1,"a":2}').toString('hex'), '82a16101a16102');
  decodesAsJsonParse('{"a":1,"b":{"c":1,"c":[2]},"a":3}');
});

// ------------------------------------------------------------ numbers

const numberText = fc.stringMatching(/^-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?$/);

function sameNumber(text: string): void {
  const actual = unpack(transcode(text)) as number;
  const expected = JSON.parse(text) as number;
  assert.ok(Object.is(actual, expected), `${text}: ${actual} !== ${expected}`);
}

test('property: numbers of every shape (signs, fractions, exponents, many digits) decode to JSON.parse\'s double, -0 included', () => {
  fc.assert(fc.property(numberText, sameNumber), { numRuns: 20000 });
  fc.assert(
    fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (d) => {
      sameNumber(JSON.stringify(d));
      sameNumber(d.toFixed(3));
    }),
    { numRuns: 10000 },
  );
});

test('integers in [-2^31, 2^32) take the smallest int form; -0, larger integers, fractions and exponents are float64', () => {
  const cases: [string, string][] = [
    ['0', '00'],
    ['127', '7f'],
    ['128', 'cc80'],
    ['255', 'ccff'],
    ['256', 'cd0100'],
    ['65535', 'cdffff'],
    ['65536', 'ce00010000'],
    ['4294967295', 'ceffffffff'],
    ['-1', 'ff'],
    ['-32', 'e0'],
    ['-33', 'd0df'],
    ['-128', 'd080'],
    ['-129', 'd1ff7f'],
    ['-32768', 'd18000'],
    ['-32769', 'd2ffff7fff'],
    ['-2147483648', 'd280000000'],
    ['1.0', '01'],
    ['1e2', '64'],
    ['1e-400', '00'],
    ['-1e-400', 'cb8000000000000000'],
  ];
  for (const [text, hex] of cases) assert.equal(transcode(text).toString('hex'), hex, text);
  for (const text of ['-0', '-0.0', '-0e5', '4294967296', '-2147483649', '9007199254740993', '12345678901234567890', '1.5', '1732608000000.125', '1e400', '-1e400', '123456789012345678901234567890e-30']) {
    const out = transcode(text);
    assert.equal(out[0], 0xcb, `${text} is a float64`);
    sameNumber(text);
  }
  // What msgpackr decodes uint64 as: a BigInt, which no JSON.parse value is; so large integers stay float64, as pack writes them.
  assert.equal(transcode('1490197670513').toString('hex'), pack(1490197670513).toString('hex'));
});

test('-0 decodes as -0 (msgpackr pack of JSON.parse would write 0)', () => {
  const row = unpack(transcode('[-0,0,-0.0]')) as number[];
  assert.ok(Object.is(row[0], -0) && Object.is(row[1], 0) && Object.is(row[2], -0));
  assert.ok(transcode('[-0,-0,-0]').length <= transcodeRoom(10), 'the widest growth there is fits the room');
});

// ------------------------------------------------------------ not JSON

test('what is not JSON\'s shape is refused with JsonTranscodeError, never read past the text', () => {
  const bad = ['', ' ', '[', '[1,', '[1,]', '{"a"', '{"a":}', '{"a" 1}', '{a:1}', '[1 2]', '[1]]', 'tru', 'nul', 'fals', 'falsy', '"abc', '"\\u12"', '"\\x"', '"\\', '-', '1.', '1e', '1e+', '.5', '{"a":1,}', '[}', '{]', '1 2'];
  for (const text of [...bad, '"\\u', '"\\u00', '"\\ud800\\u', '{"a":tr', '[1e']) {
    assert.throws(() => transcode(text), (err: unknown) => err instanceof JsonTranscodeError, JSON.stringify(text));
    const alone = Buffer.from(text);
    assert.throws(() => new JsonTranscoder().transcode(alone, 0, alone.length, Buffer.alloc(transcodeRoom(alone.length)), 0), JsonTranscodeError, `${JSON.stringify(text)} alone`);
  }
});

test('property: a text cut short is refused exactly when JSON.parse refuses it', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 4 }), fc.nat(), fc.boolean(), (value, at, bytesAfter) => {
      const text = JSON.stringify(value);
      fc.pre(noProto(text));
      const cut = Buffer.from(text).subarray(0, at % (Buffer.byteLength(text) + 1)).toString('latin1');
      let parses = true;
      try {
        JSON.parse(Buffer.from(cut, 'latin1').toString('utf8'));
      } catch {
        parses = false;
      }
      // Cut inside a multi-byte character, JSON.parse sees U+FFFD in a string that still needs its quote: refused either way.
      let transcodes = true;
      try {
        const json = Buffer.from(cut, 'latin1');
        // With bytes after the text that would end it, or none (the text is the whole buffer).
        const src = bytesAfter ? Buffer.concat([json, Buffer.from('"]}')]) : json;
        new JsonTranscoder().transcode(src, 0, json.length, Buffer.alloc(transcodeRoom(json.length)), 0);
      } catch (err) {
        assert.ok(err instanceof JsonTranscodeError);
        transcodes = false;
      }
      assert.equal(transcodes, parses, JSON.stringify(cut));
    }),
    { numRuns: 3000 },
  );
});

test('property: one transcoder over many texts of one buffer, in any order and from other buffers between, gives each text\'s bytes', () => {
  const textArb = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
    fc.array(piece, { maxLength: 20 }).map((p) => `"${p.join('')}"`),
  );
  fc.assert(
    fc.property(fc.array(textArb, { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { maxLength: 30 }), (texts, picks) => {
      fc.pre(texts.every(noProto));
      const parts = texts.map((t) => Buffer.from(t, 'utf8'));
      const joined = Buffer.concat(parts);
      const starts = parts.map((_, k) => parts.slice(0, k).reduce((n, p) => n + p.length, 0));
      const transcoder = new JsonTranscoder();
      const out = Buffer.alloc(transcodeRoom(joined.length));
      for (const k of [...parts.keys(), ...picks.map((p) => p % parts.length)]) {
        const end = transcoder.transcode(joined, starts[k]!, starts[k]! + parts[k]!.length, out, 0);
        assert.equal(out.subarray(0, end).toString('hex'), transcode(texts[k]!).toString('hex'), texts[k]);
        if (k % 3 === 0) transcoder.transcode(Buffer.from('["\\n",1]'), 0, 8, out, 0);
      }
    }),
    { numRuns: 1000 },
  );
});
