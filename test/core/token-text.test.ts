import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCommand } from '../../src/core/dialects/v1-text.js';
import { parseReplicateFrom, parseTokenText } from '../../src/core/token-text.js';

const GOOD = ['0', '1', '54', '007', '9007199254740991'];
const BAD = ['', '-1', '+1', '1.5', '1e3', ' 1', '1 ', '0x10', 'batch', 'NOW', '١٢', '9007199254740992', '99999999999999999'];

test('takes the tokens the wire takes, as numbers', () => {
  for (const text of GOOD) assert.equal(parseTokenText(text), Number(text), text);
});

test('refuses what is not a token: signs, fractions, spaces, other digits, words, past 2^53-1', () => {
  for (const text of BAD) assert.equal(parseTokenText(text), null, JSON.stringify(text));
});

test('a starting point is a token or NOW, in the two spellings REPLICATE takes', () => {
  assert.equal(parseReplicateFrom('NOW'), 'NOW');
  assert.equal(parseReplicateFrom('now'), 'NOW');
  assert.equal(parseReplicateFrom('Now'), null);
  assert.equal(parseReplicateFrom('12'), 12);
  assert.equal(parseReplicateFrom('9007199254740992'), null);
});

/** What a REPLICATE line with `text` as its token subscribes from, or null when the parser refuses it. */
function replicateOnTheWire(text: string): number | 'NOW' | null {
  const line = Buffer.from(`REPLICATE events ${text}`);
  try {
    const cmd = parseCommand(line, 0, line.length, 'client');
    return cmd.name === 'REPLICATE' ? cmd.token : null;
  } catch {
    return null;
  }
}

test('agrees with the REPLICATE parser on every one-word text', () => {
  for (const text of [...GOOD, ...BAD.filter((t) => t !== '' && !t.includes(' ')), 'now', 'Now']) {
    assert.equal(parseReplicateFrom(text), replicateOnTheWire(text), JSON.stringify(text));
  }
});
