import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WasmJsonScanner } from '../../src/core/json-scanner-wasm.js';
import { JsonByteChecker, JsonValidator, MAX_JSON_DEPTH } from '../../src/core/json-validator.js';

/** Why `buf[start, end)` is not JSON, or null when it is. */
function jsonError(buf: Buffer, start = 0, end = buf.length, validator = new JsonValidator()): string | null {
  return validator.valid(buf, start, end) ? null : validator.error;
}

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

const validator = new JsonValidator();
function valid(text: string): boolean {
  const buf = Buffer.from(text);
  return validator.valid(buf, 0, buf.length);
}

interface Checker {
  valid(buf: Buffer, start: number, end: number): boolean;
  forget?(): void;
}

/** The validator, and each of the two checkers it combines alone (it would hide a scanner that refuses too much): all answer as JSON.parse does. */
const CHECKERS: [string, Checker][] = [
  ['validator', validator],
  ['WebAssembly scanner', new WasmJsonScanner(MAX_JSON_DEPTH)],
  ['byte checker', new JsonByteChecker()],
];

const VALID = [
  '0', '-0', '1', '-1', '10', '123456789012345678901234567890', '1.5', '-0.0', '0e0', '0E+1', '1e-7', '2.5E10', '1.0e+308',
  '""', '"a"', '" "', '"\\""', '"\\\\"', '"\\/"', '"\\b\\f\\n\\r\\t"', '"\\u0000"', '"\\uD83D\\uDE00"', '"\\uabcdEF01"',
  '"é ✓ 😀"', '"\x7f"', 'true', 'false', 'null', '[]', '{}', '[ ]', '{ }', ' [1] ', '\t\r\n[1]\n', '[1,2,3]', '[[],[[]]]',
  '{"a":1}', '{ "a" : [ true , false , null ] , "b" : { } }', '{"":""}', '{"a":{"b":{"c":[]}}}',
  '["$1234567:example.com","!room42:example.com","m.room.message","@alice:example.com",null]',
];

const INVALID = [
  '', ' ', 'not-json-at-all', 'nul', 'nulll', 'tru', 'True', 'NULL', 'undefined', 'NaN', 'Infinity', '-Infinity',
  '01', '-01', '00', '+1', '.5', '1.', '1.e5', '1e', '1e+', '-', '--1', '0x10', '1 2', '1,',
  '"', '"abc', '"\\"', '"\\x"', '"\\u12"', '"\\u12G4"', '"\\U0041"', "'a'", '"a\tb"', '"a\x00b"', '"a\x1fb"', '"a\rb"',
  '[', ']', '[1', '[1,', '[1,]', '[,1]', '[1 2]', '[1;2]', '[1]]', '[1][2]', '{', '}', '{"a"}', '{"a":}', '{"a":1,}',
  '{a:1}', '{"a" 1}', '{"a":1 "b":2}', '{1:2}', '{"a":1]', '[1}', '[1] x', '{"a":1}}', '[true false]', '\x00', '[\x01]',
];

for (const [name, checker] of CHECKERS) {
  test(`${name}: accepts every JSON text of the table and refuses every other`, () => {
    for (const text of VALID) {
      assert.equal(parses(text), true, `JSON.parse agrees ${JSON.stringify(text)} is valid`);
      const buf = Buffer.from(text);
      assert.equal(checker.valid(buf, 0, buf.length), true, `valid: ${JSON.stringify(text)}`);
    }
    for (const text of INVALID) {
      assert.equal(parses(text), false, `JSON.parse agrees ${JSON.stringify(text)} is invalid`);
      const buf = Buffer.from(text);
      assert.equal(checker.valid(buf, 0, buf.length), false, `invalid: ${JSON.stringify(text)}`);
    }
  });
}

test('checks only the range it is given, wherever it lies in the buffer', () => {
  const buf = Buffer.from('RDATA events 5 ["a",1]\nRDATA events 6 ["b"\n');
  const first = buf.indexOf('[');
  const lf = buf.indexOf('\n');
  assert.equal(validator.valid(buf, first, lf), true);
  assert.equal(validator.valid(buf, first, lf - 1), false, 'the last bracket is outside the range');
  assert.equal(validator.errorAt, lf - 1 - first);
  const second = buf.indexOf('[', lf);
  assert.equal(validator.valid(buf, second, buf.length - 1), false);
  assert.equal(validator.error, 'unexpected end of the row at byte 4');
});

test('a row cut short is refused whatever follows its end, and checking it leaves the bytes as they were', () => {
  // The scanner marks a row's end inside its copy of the buffer: every prefix of a valid row, the rest of the
  // text still after it, answers as JSON.parse does on the prefix, and the whole row checked next (no forget())
  // is still valid.
  for (const [name, checker] of CHECKERS) {
    for (const text of [...VALID, '{"a":"\\u0041","b":[1.5e3,true,false,null]}']) {
      const buf = Buffer.from(text);
      for (let cut = 0; cut < buf.length; cut++) {
        assert.equal(checker.valid(buf, 0, cut), parses(buf.toString('utf8', 0, cut)), `${name}: ${JSON.stringify(buf.toString('utf8', 0, cut))}`);
        assert.equal(checker.valid(buf, 0, buf.length), true, `${name}: ${JSON.stringify(text)} after its first ${cut} bytes`);
      }
    }
  }
});

test('says what it found and where, counting bytes from the start of the row', () => {
  assert.equal(jsonError(Buffer.from('not-json')), "unexpected 'o' at byte 1");
  assert.equal(jsonError(Buffer.from('x')), "unexpected 'x' at byte 0");
  assert.equal(jsonError(Buffer.from('["a",]')), "unexpected ']' at byte 5");
  assert.equal(jsonError(Buffer.from('["a"')), 'unexpected end of the row at byte 4');
  assert.equal(jsonError(Buffer.from('["a\tb"]')), 'unexpected control character 0x09 at byte 3 (control characters in strings must be escaped)');
  assert.equal(jsonError(Buffer.from('"\\q"')), "unexpected 'q' at byte 2");
  assert.equal(jsonError(Buffer.from('[1]é')), 'unexpected byte 0xc3 at byte 3');
  assert.equal(jsonError(Buffer.from('[1,2]')), null);
});

test('finds a quote, backslash or control character at any place in a long string, at any alignment', () => {
  const memory = Buffer.alloc(64);
  for (const [name, checker] of CHECKERS) {
    for (const special of ['"', '\\', '\x00', '\x1f', '\t', '\x7f', 'é']) {
      for (let at = 0; at < 40; at++) {
        const body = 'x'.repeat(at) + special + 'y'.repeat(40 - at);
        const text = `["${body}"]`;
        for (let shift = 0; shift < 4; shift++) {
          // The same buffer, new bytes: forget() says so.
          memory.write(text, shift);
          checker.forget?.();
          const ok = checker.valid(memory, shift, shift + Buffer.byteLength(text));
          assert.equal(ok, parses(text), `${name}: ${JSON.stringify(text)} at offset ${shift}`);
          if (!ok && checker === validator) assert.equal(validator.errorAt, special === '"' || special === '\\' ? at + 3 : at + 2, JSON.stringify(text));
        }
      }
    }
  }
});

test('finds where a run of digits ends at any length and alignment, whatever byte ends it', () => {
  // '/' and ':' are the bytes either side of the digits; the row's end is one more ending.
  const memory = Buffer.alloc(96);
  for (const [name, checker] of CHECKERS) {
    for (let digits = 1; digits <= 34; digits++) {
      const run = '1234567890'.repeat(4).slice(0, digits);
      for (const follower of [']', ',1]', '.5]', 'e7]', '/]', ':]', 'x]', ' ]', '\x00]', '']) {
        for (const text of [`[9${run}${follower}`, `[0.${run}${follower}`, `[1E-${run}${follower}`]) {
          for (let shift = 0; shift < 3; shift++) {
            memory.write(text, shift);
            checker.forget?.();
            const ok = checker.valid(memory, shift, shift + text.length);
            assert.equal(ok, parses(text), `${name}: ${JSON.stringify(text)} at offset ${shift}`);
          }
        }
      }
    }
  }
});

test('refuses nesting past its depth limit and accepts it up to the limit', () => {
  const atLimit = '['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH);
  assert.equal(valid(atLimit), true);
  const past = '[{"a":'.repeat(MAX_JSON_DEPTH / 2) + '[1]' + '}]'.repeat(MAX_JSON_DEPTH / 2);
  assert.equal(parses(past), true);
  assert.equal(valid(past), false);
  assert.equal(validator.error, `nested deeper than ${MAX_JSON_DEPTH} arrays and objects at byte ${past.indexOf('[1]')}`);
  const small = new JsonValidator(2);
  assert.equal(jsonError(Buffer.from('[[1]]'), 0, 5, small), null);
  assert.equal(jsonError(Buffer.from('[[[1]]]'), 0, 7, small), 'nested deeper than 2 arrays and objects at byte 2');
  // A failure does not leak into the next check.
  assert.equal(valid('[1]'), true);
  for (const [name, checker] of CHECKERS) {
    const [at, over] = [Buffer.from(atLimit), Buffer.from(past)];
    assert.equal(checker.valid(at, 0, at.length), true, `${name} at the limit`);
    assert.equal(checker.valid(over, 0, over.length), false, `${name} past the limit`);
  }
  const smallScanner = new WasmJsonScanner(2);
  assert.equal(smallScanner.valid(Buffer.from('[{"a":1}]'), 0, 9), true);
  assert.equal(smallScanner.valid(Buffer.from('[[[1]]]'), 0, 7), false);
});

/** Any JSON value, including strings of control characters, escapes and astral characters. */
const anyJson = fc.jsonValue({ maxDepth: 6 }).map((v) => JSON.stringify(v));
/** JSON.stringify never writes whitespace between tokens: this puts some in. */
const spaced = fc.tuple(fc.jsonValue({ maxDepth: 4 }), fc.constantFrom(0, 1, 2, '\t', ' \r\n')).map(([v, s]) => JSON.stringify(v, null, s));

/** Characters a mutation puts in: the grammar's own, and a few that break it. */
const mutationChar = fc.constantFrom(...'{}[]":,.-+eE0123456789 \t\r\\/ubfnrtaxlsé\x00\x01\x1f'.split(''));

/** A random edit of a JSON text: characters deleted, inserted or replaced, or the text cut short. */
const mutated = fc
  .tuple(
    fc.oneof(anyJson, spaced),
    fc.array(fc.tuple(fc.constantFrom('delete', 'insert', 'replace', 'cut'), fc.nat(), mutationChar), { minLength: 1, maxLength: 3 }),
  )
  .map(([text, edits]) => {
    let out = [...text];
    for (const [kind, at, c] of edits) {
      const i = out.length === 0 ? 0 : at % (out.length + (kind === 'insert' ? 1 : 0));
      if (kind === 'delete') out.splice(i, 1);
      else if (kind === 'insert') out.splice(i, 0, c);
      else if (kind === 'replace') out[i] = c;
      else out = out.slice(0, i);
    }
    return out.join('');
  });

/** Every checker answers as JSON.parse does. */
function agreesWithJsonParse(text: string): void {
  // Bytes as the scanner hands them over: valid UTF-8 (a lone surrogate became U+FFFD, as JSON.parse of the bytes would see).
  const buf = Buffer.from(text, 'utf8');
  const expected = parses(buf.toString('utf8'));
  for (const [name, checker] of CHECKERS) assert.equal(checker.valid(buf, 0, buf.length), expected, `${name} for ${JSON.stringify(text)}`);
}

test('agrees with JSON.parse on every JSON value stringified', () => {
  fc.assert(fc.property(fc.oneof(anyJson, spaced), agreesWithJsonParse), { numRuns: 2000 });
});

test('agrees with JSON.parse on random mutations of JSON values', () => {
  fc.assert(fc.property(mutated, agreesWithJsonParse), { numRuns: 5000 });
});

test('agrees with JSON.parse on short strings of JSON characters', () => {
  fc.assert(fc.property(fc.array(mutationChar, { maxLength: 12 }).map((cs) => cs.join('')), agreesWithJsonParse), { numRuns: 5000 });
});

test('agrees with JSON.parse on the rows of a buffer of many, checked in order and backwards', () => {
  // Past the scanner's 64 KiB window, with a row longer than a window and rows that are not JSON among them.
  const rows = fc.sample(fc.oneof(anyJson, mutated), { numRuns: 3000, seed: 15 });
  rows.splice(1500, 0, JSON.stringify(['x'.repeat(200_000), 1]), `["${'y'.repeat(70_000)}`);
  const lines = rows.map((r) => `RDATA events 1 ${r}\n`).join('');
  const buf = Buffer.from(lines, 'utf8');
  const ranges: [number, number, boolean][] = [];
  for (let start = 0; start < buf.length; ) {
    const end = buf.indexOf(0x0a, start);
    const rowStart = start + 'RDATA events 1 '.length;
    ranges.push([rowStart, end, parses(buf.toString('utf8', rowStart, end))]);
    start = end + 1;
  }
  assert.equal(ranges.filter(([, , ok]) => !ok).length > 100, true, 'some rows are not JSON');
  for (const order of [ranges, [...ranges].reverse()]) {
    for (const [name, checker] of CHECKERS) {
      for (const [start, end, ok] of order) assert.equal(checker.valid(buf, start, end), ok, `${name} at ${start}: ${buf.toString('utf8', start, Math.min(end, start + 80))}`);
    }
  }
});
