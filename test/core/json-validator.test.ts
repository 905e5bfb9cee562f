import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { JsonValidator, MAX_JSON_DEPTH } from '../../src/core/json-validator.js';

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

test('accepts every JSON text of the table and refuses every other', () => {
  for (const text of VALID) {
    assert.equal(parses(text), true, `JSON.parse agrees ${JSON.stringify(text)} is valid`);
    assert.equal(valid(text), true, `valid: ${JSON.stringify(text)}`);
  }
  for (const text of INVALID) {
    assert.equal(parses(text), false, `JSON.parse agrees ${JSON.stringify(text)} is invalid`);
    assert.equal(valid(text), false, `invalid: ${JSON.stringify(text)}`);
  }
});

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
  for (const special of ['"', '\\', '\x00', '\x1f', '\t']) {
    for (let at = 0; at < 24; at++) {
      const body = 'x'.repeat(at) + special + 'y'.repeat(24 - at);
      const text = `["${body}"]`;
      for (let shift = 0; shift < 4; shift++) {
        memory.write(text, shift);
        const ok = validator.valid(memory, shift, shift + Buffer.byteLength(text));
        assert.equal(ok, parses(text), `${JSON.stringify(text)} at offset ${shift}`);
        if (!ok) assert.equal(validator.errorAt, special === '"' || special === '\\' ? at + 3 : at + 2, JSON.stringify(text));
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

function agreesWithJsonParse(text: string): void {
  // Bytes as the scanner hands them over: valid UTF-8 (a lone surrogate became U+FFFD, as JSON.parse of the bytes would see).
  const buf = Buffer.from(text, 'utf8');
  assert.equal(validator.valid(buf, 0, buf.length), parses(buf.toString('utf8')), `for ${JSON.stringify(text)}`);
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
