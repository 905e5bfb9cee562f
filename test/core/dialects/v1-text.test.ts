import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RdataCommand, userIpInfo, type Command, type Sender } from '../../../src/core/commands.js';
import { RowRoute } from '../../../src/core/dialect.js';
import { v1Text } from '../../../src/core/dialects/v1-text.js';
import { ProtocolError, type ProtocolErrorCode } from '../../../src/core/errors.js';

const parseCommand = v1Text.decode;
const encodeCommand = v1Text.encode;

function parse(line: string, from: Sender): Command {
  const buf = Buffer.from(line);
  return parseCommand(buf, 0, buf.length, from);
}

/** The route of a whole line, or null when it is not a row line. */
function route(line: string | Buffer): RowRoute | null {
  const buf = Buffer.isBuffer(line) ? line : Buffer.from(line);
  if (!v1Text.isRow(buf, 0, buf.length)) return null;
  const r = new RowRoute();
  v1Text.routeRow(buf, 0, buf.length, r);
  return r;
}

function expectError(line: string, from: Sender, code: ProtocolErrorCode, message?: RegExp): void {
  assert.throws(
    () => parse(line, from),
    (err: unknown) => {
      assert.ok(err instanceof ProtocolError, `expected ProtocolError for ${JSON.stringify(line)}`);
      assert.equal(err.code, code, `${JSON.stringify(line)}: ${err.message}`);
      if (message) assert.match(err.message, message);
      return true;
    },
  );
}

const canonical: [string, Sender][] = [
  ['SERVER localhost:8823', 'server'],
  ['RDATA caches 2 ["get_user_by_id",["@01register-user:localhost:8823"],1490197670513]', 'server'],
  ['RDATA caches batch ["get_user_by_id",["@a:hs"],1490197670513]', 'server'],
  ['RDATA events 14 ["$149019767112vOHxz:localhost:8823","!AFDCvgApUmpdfVjIXm:localhost:8823","m.room.guest_access","",null]', 'server'],
  ['POSITION events 1', 'server'],
  ['ERROR server shutting down', 'server'],
  ['ERROR Wrong remote', 'client'],
  ['PING 1490197665618', 'server'],
  ['PING 1490197665618', 'client'],
  ['SYNC marker 1', 'server'],
  ['NAME synapse.app.appservice', 'client'],
  ['NAME my worker', 'client'],
  ['REPLICATE events 1', 'client'],
  ['REPLICATE events NOW', 'client'],
  ['REPLICATE ALL NOW', 'client'],
  ['REPLICATE events event_persister1 1040', 'client'],
  ['REPLICATE events * NOW', 'client'],
  ['USER_SYNC @alice:example.com start 1490197670513', 'client'],
  ['USER_SYNC @alice:example.com end 1490197670513', 'client'],
  ['FEDERATION_ACK 7', 'client'],
  ['REMOVE_PUSHER m.http key1 @alice:example.com', 'client'],
  ['INVALIDATE_CACHE get_user_by_id ["@alice:example.com"]', 'client'],
  ['USER_IP @alice:example.com ["tok","10.0.0.1","Mozilla\\/5.0 (X11)","DEV",1490197670513]', 'client'],
  ['AUTH s3cret', 'client'],
  ['RDATA events 9007199254740991 {"a":1}', 'writer'],
  ['POSITION events 0', 'writer'],
];

for (const [line, from] of canonical) {
  test(`parse then encode gives the same bytes: ${line.slice(0, 60)}`, () => {
    const cmd = parse(line, from);
    assert.equal(encodeCommand(cmd).toString('utf8'), `${line}\n`);
  });
}

test('the protocol example parses to the expected commands', () => {
  assert.deepEqual(parse('SERVER localhost:8823', 'server'), { name: 'SERVER', serverName: 'localhost:8823' });
  assert.deepEqual(parse('REPLICATE events 1', 'client'), { name: 'REPLICATE', stream: 'events', token: 1 });
  assert.deepEqual(parse('REPLICATE caches NOW', 'client'), { name: 'REPLICATE', stream: 'caches', token: 'NOW' });
  assert.deepEqual(parse('REPLICATE caches now', 'client'), { name: 'REPLICATE', stream: 'caches', token: 'NOW' });
  // Three words: a followed Synapse stream per writer instance (docs/protocol.md section 4).
  assert.deepEqual(parse('REPLICATE events event_persister1 1040', 'client'), { name: 'REPLICATE', stream: 'events', instance: 'event_persister1', token: 1040 });
  assert.deepEqual(parse('REPLICATE events * 0', 'client'), { name: 'REPLICATE', stream: 'events', instance: '*', token: 0 });
  assert.deepEqual(parse('POSITION caches 2', 'server'), { name: 'POSITION', stream: 'caches', token: 2 });
  assert.deepEqual(parse('NAME synapse.app.appservice', 'client'), { name: 'NAME', clientName: 'synapse.app.appservice' });
  assert.deepEqual(parse('USER_SYNC @a:hs end 5', 'client'), { name: 'USER_SYNC', userId: '@a:hs', state: 'end', lastSyncMs: 5 });
  assert.deepEqual(parse('REMOVE_PUSHER app key with spaces @u:hs', 'client'), {
    name: 'REMOVE_PUSHER', appId: 'app', pushKey: 'key', userId: 'with spaces @u:hs',
  });
  const rdata = parse('RDATA caches 2 ["get_user_by_id",["@01register-user:localhost:8823"],1490197670513]', 'server');
  assert.ok(rdata instanceof RdataCommand);
  assert.equal(rdata.stream, 'caches');
  assert.equal(rdata.token, 2);
  assert.deepEqual(rdata.row(), ['get_user_by_id', ['@01register-user:localhost:8823'], 1490197670513]);
  const batch = parse('RDATA caches batch ["x"]', 'server') as RdataCommand;
  assert.equal(batch.token, null);
  const ip = parse('USER_IP @a:hs ["tok","10.0.0.1","UA","DEV",12]', 'client');
  assert.equal(ip.name, 'USER_IP');
  assert.deepEqual(userIpInfo(ip as never), { accessToken: 'tok', ip: '10.0.0.1', userAgent: 'UA', deviceId: 'DEV', lastSeen: 12 });
});

test('routing an RDATA line does not parse its row', () => {
  // Invalid JSON routes fine; only asking for the value fails.
  const cmd = parse('RDATA events 3 {not json', 'server') as RdataCommand;
  assert.equal(cmd.stream, 'events');
  assert.equal(cmd.token, 3);
  assert.equal(cmd.rowJson.toString(), '{not json');
  assert.throws(() => cmd.row(), (e: unknown) => e instanceof ProtocolError && e.code === 'BAD_JSON');
});

test('routeRow fills the route of an RDATA line in place, and fails as decode does', () => {
  const r = new RowRoute();
  const line = Buffer.from('RDATA caches batch ["a b"]');
  assert.equal(v1Text.isRow(line, 0, line.length), true);
  v1Text.routeRow(line, 0, line.length, r);
  assert.deepEqual({ ...r }, { stream: 'caches', token: null, rowStart: 19 });
  const numbered = Buffer.from('xxRDATA events 12 [1]\n');
  assert.equal(v1Text.isRow(numbered, 2, numbered.length - 1), true);
  v1Text.routeRow(numbered, 2, numbered.length - 1, r);
  assert.deepEqual({ ...r }, { stream: 'events', token: 12, rowStart: 18 }, 'the same route object, refilled');
  for (const bad of ['RDATA events x1 [1]', 'RDATA events 1 ', 'RDATA events 1']) {
    const buf = Buffer.from(bad);
    assert.equal(v1Text.isRow(buf, 0, buf.length), true, bad);
    let fromRoute: unknown;
    try {
      v1Text.routeRow(buf, 0, buf.length, r);
    } catch (err) {
      fromRoute = err;
    }
    assert.throws(() => parseCommand(buf, 0, buf.length, 'writer'), (err: unknown) => {
      assert.ok(err instanceof ProtocolError && fromRoute instanceof ProtocolError, bad);
      assert.equal(err.code, fromRoute.code);
      assert.equal(err.message, fromRoute.message);
      return true;
    });
  }
  // Not row lines: decode says what they are (or why they are no command).
  for (const other of ['RDATA', 'RDATA ', 'RDATAX a 1 [1]', 'POSITION events 1', 'rdata events 1 [1]']) {
    assert.equal(route(other), null, other);
  }
});

test('the row of an RDATA line is a view of the line, not a copy', () => {
  const buf = Buffer.from('xxRDATA events 3 [1,2]\n');
  const cmd = parseCommand(buf, 2, buf.length - 1, 'server') as RdataCommand;
  assert.equal(cmd.rowJson.buffer, buf.buffer);
  assert.equal(cmd.rowJson.toString(), '[1,2]');
});

const bad: [string, Sender, ProtocolErrorCode, RegExp?][] = [
  ['FOO bar', 'client', 'UNKNOWN_COMMAND', /^unknown command: 'FOO'$/],
  ['ping 1', 'client', 'UNKNOWN_COMMAND'],
  ['HELLO', 'client', 'UNKNOWN_COMMAND'],
  ['RDATA events 1 [1]', 'client', 'WRONG_DIRECTION', /AUTH as a writer/],
  ['POSITION events 1', 'client', 'WRONG_DIRECTION'],
  ['SERVER x', 'client', 'WRONG_DIRECTION'],
  ['SYNC 1', 'client', 'WRONG_DIRECTION'],
  ['REPLICATE events 1', 'server', 'WRONG_DIRECTION'],
  ['NAME x', 'server', 'WRONG_DIRECTION'],
  ['NAME worker\x00evil', 'client', 'BAD_ARGUMENT', /^control character '\\x00' in NAME/],
  ['AUTH tok\x7fen', 'client', 'BAD_ARGUMENT', /^control character '\\x7f' in AUTH/],
  ['REMOVE_PUSHER app\tx key @u:hs', 'client', 'BAD_ARGUMENT', /^control character '\\x09' in REMOVE_PUSHER/],
  ['USER_SYNC @u:hs start 1', 'server', 'WRONG_DIRECTION'],
  ['REPLICATE events 1', 'gateway', 'WRONG_DIRECTION'],
  ['REPLICATE', 'client', 'MISSING_ARGUMENTS', /expected REPLICATE <stream\|ALL> <token\|NOW>/],
  ['REPLICATE events', 'client', 'MISSING_ARGUMENTS'],
  ['REPLICATE  events NOW', 'client', 'MISSING_ARGUMENTS'],
  ['REPLICATE events abc', 'client', 'BAD_TOKEN', /^bad token 'abc' in REPLICATE/],
  ['REPLICATE events -5', 'client', 'BAD_TOKEN'],
  ['REPLICATE events +5', 'client', 'BAD_TOKEN'],
  ['REPLICATE events 9007199254740992', 'client', 'BAD_TOKEN'],
  ['REPLICATE events 1e3', 'client', 'BAD_TOKEN'],
  ['REPLICATE ALL 5', 'client', 'BAD_ARGUMENT'],
  ['REPLICATE ALL * NOW', 'client', 'BAD_ARGUMENT', /^REPLICATE ALL takes no instance/],
  ['REPLICATE events ev/1 NOW', 'client', 'BAD_ARGUMENT', /^bad instance name 'ev\/1' in REPLICATE/],
  ['REPLICATE ev:x master NOW', 'client', 'BAD_ARGUMENT', /^bad stream name 'ev:x' in REPLICATE/],
  ['REPLICATE events master later', 'client', 'BAD_TOKEN', /^bad token 'later' in REPLICATE/],
  ['REPLICATE events master 1 2', 'client', 'BAD_TOKEN'],
  ['RDATA events 1', 'server', 'MISSING_ARGUMENTS'],
  ['RDATA events 1 ', 'server', 'MISSING_ARGUMENTS'],
  ['RDATA events', 'server', 'MISSING_ARGUMENTS'],
  ['RDATA events x1 [1]', 'server', 'BAD_TOKEN'],
  ['RDATA events Batch [1]', 'server', 'BAD_TOKEN'],
  ['POSITION events', 'server', 'MISSING_ARGUMENTS'],
  ['POSITION events batch', 'server', 'BAD_TOKEN'],
  ['SERVER', 'server', 'MISSING_ARGUMENTS'],
  ['NAME', 'client', 'MISSING_ARGUMENTS'],
  ['AUTH', 'client', 'MISSING_ARGUMENTS'],
  ['USER_SYNC @a:hs stop 1', 'client', 'BAD_ARGUMENT', /expected start or end/],
  ['USER_SYNC @a:hs start', 'client', 'MISSING_ARGUMENTS'],
  ['USER_SYNC @a:hs start x', 'client', 'BAD_TOKEN'],
  ['FEDERATION_ACK', 'client', 'MISSING_ARGUMENTS'],
  ['FEDERATION_ACK NOW', 'client', 'BAD_TOKEN'],
  ['REMOVE_PUSHER a b', 'client', 'MISSING_ARGUMENTS'],
  ['INVALIDATE_CACHE f', 'client', 'MISSING_ARGUMENTS'],
  ['INVALIDATE_CACHE f [1,', 'client', 'BAD_JSON', /^bad JSON in INVALIDATE_CACHE/],
  ['USER_IP @a:hs {"a":1}', 'client', 'BAD_JSON'],
  ['USER_IP @a:hs [1,2', 'client', 'BAD_JSON'],
  ['GENERATION 9f2c', 'client', 'BAD_ARGUMENT', /^GENERATION from a client takes no arguments/],
  ['GENERATION x', 'writer', 'BAD_ARGUMENT'],
  ['GENERATION', 'server', 'MISSING_ARGUMENTS', /expected GENERATION <id\|none>$/],
  ['GENERATION a b', 'server', 'BAD_ARGUMENT', /^bad generation id 'a b'/],
  ['GENERATION a\x01', 'gateway', 'BAD_ARGUMENT', /^control character/],
];

for (const [line, from, code, message] of bad) {
  test(`rejects ${JSON.stringify(line)} from a ${from} with ${code}`, () => expectError(line, from, code, message));
}

test('error texts quote untrusted input safely and briefly', () => {
  expectError(`FOO${'x'.repeat(200)}`, 'client', 'UNKNOWN_COMMAND', /^unknown command: 'FOOx+\.\.\.'$/);
  expectError('REPLICATE events \x1b[31m', 'client', 'BAD_ARGUMENT', /^control character '\\x1b' in REPLICATE/);
  expectError(`REPLICATE events ${'9'.repeat(100)}`, 'client', 'BAD_TOKEN', /'9{64}\.\.\.'/);
});

test('GENERATION: a bare question from a client, an id or none from a server', () => {
  const parse = (text: string, from: Sender): Command => parseCommand(Buffer.from(text), 0, text.length, from);
  assert.deepEqual(parse('GENERATION', 'client'), { name: 'GENERATION' });
  assert.deepEqual(parse('GENERATION', 'writer'), { name: 'GENERATION' });
  assert.deepEqual(parse('GENERATION 9f2c01', 'server'), { name: 'GENERATION', id: '9f2c01' });
  assert.deepEqual(parse('GENERATION none', 'gateway'), { name: 'GENERATION', id: null });
  assert.equal(encodeCommand({ name: 'GENERATION' }).toString(), 'GENERATION\n');
  assert.equal(encodeCommand({ name: 'GENERATION', id: '9f2c01' }).toString(), 'GENERATION 9f2c01\n');
  assert.equal(encodeCommand({ name: 'GENERATION', id: null }).toString(), 'GENERATION none\n');
});

test('encodeCommand keeps an ERROR on one line', () => {
  assert.equal(encodeCommand({ name: 'ERROR', message: 'a\nb\rc' }).toString(), 'ERROR a b c\n');
});

test('encodeRow from a string and from bytes gives the same line', () => {
  assert.deepEqual(v1Text.encodeRow('events', 5, '["a"]'), Buffer.from('RDATA events 5 ["a"]\n'));
  assert.deepEqual(v1Text.encodeRow('events', 5, Buffer.from('["a"]')), Buffer.from('RDATA events 5 ["a"]\n'));
  assert.deepEqual(v1Text.encodeRow('events', null, Buffer.from('["a"]')), Buffer.from('RDATA events batch ["a"]\n'));
});

test('encodeRows frames a batch: every row but the last says batch', () => {
  assert.equal(
    v1Text.encodeRows('caches', 54, ['["a"]', '["b c"]', '["d"]']).toString(),
    'RDATA caches batch ["a"]\nRDATA caches batch ["b c"]\nRDATA caches 54 ["d"]\n',
  );
  assert.equal(v1Text.encodeRows('caches', 7, ['{"é":1}']).toString(), 'RDATA caches 7 {"é":1}\n');
});

test('encodePosition is the line decode reads back', () => {
  const line = v1Text.encodePosition('events', 9007199254740991);
  assert.equal(line.toString(), 'POSITION events 9007199254740991\n');
  assert.deepEqual(parseCommand(line, 0, line.length - 1, 'server'), { name: 'POSITION', stream: 'events', token: 9007199254740991 });
  assert.deepEqual(encodeCommand({ name: 'POSITION', stream: 'events', token: 3 }), v1Text.encodePosition('events', 3));
});

// ------------------------------------------------------------ properties

const word = fc.stringMatching(/^[!-~]{1,12}$/).filter((w) => w !== 'batch');
const text = fc.stringMatching(/^[ -~é]{0,20}$/).filter((t) => t.trim() === t && t.length > 0);
const token = fc.nat({ max: Number.MAX_SAFE_INTEGER });
const json = fc.jsonValue().map((v) => JSON.stringify(v));

const commandArb: fc.Arbitrary<[Command, Sender]> = fc.oneof(
  text.map((serverName): [Command, Sender] => [{ name: 'SERVER', serverName }, 'server']),
  fc.tuple(word, fc.option(token), json).map(([s, t, j]): [Command, Sender] => [RdataCommand.fromJson(s, t, Buffer.from(j)), 'server']),
  fc.tuple(word, token).map(([stream, t]): [Command, Sender] => [{ name: 'POSITION', stream, token: t }, 'server']),
  text.map((message): [Command, Sender] => [{ name: 'ERROR', message }, 'server']),
  text.map((data): [Command, Sender] => [{ name: 'PING', data }, 'client']),
  text.map((clientName): [Command, Sender] => [{ name: 'NAME', clientName }, 'client']),
  fc.tuple(word, fc.oneof(token, fc.constant('NOW' as const))).map(([stream, t]): [Command, Sender] => [
    { name: 'REPLICATE', stream: stream === 'ALL' ? 'x' : stream, token: t },
    'client',
  ]),
  fc.tuple(word, fc.constantFrom('start' as const, 'end' as const), token).map(([userId, state, lastSyncMs]): [Command, Sender] => [
    { name: 'USER_SYNC', userId, state, lastSyncMs },
    'client',
  ]),
  token.map((t): [Command, Sender] => [{ name: 'FEDERATION_ACK', token: t }, 'client']),
  fc.tuple(word, word, text).map(([appId, pushKey, userId]): [Command, Sender] => [{ name: 'REMOVE_PUSHER', appId, pushKey, userId }, 'client']),
  fc.tuple(word, json).map(([cacheFunc, keysJson]): [Command, Sender] => [{ name: 'INVALIDATE_CACHE', cacheFunc, keysJson }, 'client']),
  fc.tuple(word, fc.tuple(fc.string(), fc.string(), fc.string(), fc.option(fc.string()), fc.nat())).map(([userId, info]): [Command, Sender] => [
    { name: 'USER_IP', userId, infoJson: JSON.stringify(info) },
    'client',
  ]),
  word.map((credential): [Command, Sender] => [{ name: 'AUTH', credential }, 'client']),
  fc.constant<[Command, Sender]>([{ name: 'GENERATION' }, 'client']),
  fc.option(word).map((id): [Command, Sender] => [{ name: 'GENERATION', id }, 'server']),
);

test('property: encode(parse(encode(cmd))) is the identity on valid commands', () => {
  fc.assert(
    fc.property(commandArb, ([cmd, from]) => {
      const bytes = encodeCommand(cmd);
      assert.equal(bytes[bytes.length - 1], 0x0a);
      assert.equal(bytes.indexOf(0x0a), bytes.length - 1, 'one line');
      const parsed = parseCommand(bytes, 0, bytes.length - 1, from);
      assert.deepEqual(encodeCommand(parsed), bytes);
      assert.equal(parsed.name, cmd.name);
    }),
    { numRuns: 2000 },
  );
});

test('property: arbitrary bytes never make the parser throw anything but a ProtocolError', () => {
  const prefix = fc.constantFrom('', 'RDATA ', 'REPLICATE ', 'USER_SYNC ', 'USER_IP ', 'INVALIDATE_CACHE ', 'POSITION ', 'AUTH ', 'GENERATION ');
  fc.assert(
    fc.property(prefix, fc.uint8Array({ maxLength: 60 }), fc.constantFrom<Sender>('server', 'client', 'writer', 'gateway'), (p, bytes, from) => {
      const buf = Buffer.concat([Buffer.from(p), Buffer.from(bytes)]);
      try {
        parseCommand(buf, 0, buf.length, from);
      } catch (err) {
        assert.ok(err instanceof ProtocolError, String(err));
      }
    }),
    { numRuns: 5000 },
  );
});

test('property: routeRow agrees with decode on every RDATA line', () => {
  const tokenWord = fc.oneof(token.map(String), fc.constantFrom('batch', 'Batch', '', '-1', '1.5', '99999999999999999'));
  fc.assert(
    fc.property(fc.stringMatching(/^[!-~]{0,8}$/), tokenWord, fc.stringMatching(/^[ -~]{0,12}$/), (stream, t, row) => {
      const line = Buffer.from(`RDATA ${stream} ${t} ${row}`);
      let decoded: Command | ProtocolError;
      try {
        decoded = parseCommand(line, 0, line.length, 'writer');
      } catch (err) {
        decoded = err as ProtocolError;
      }
      let routed: RowRoute | null | ProtocolError;
      try {
        routed = route(line);
      } catch (err) {
        routed = err as ProtocolError;
      }
      if (decoded instanceof ProtocolError) {
        assert.ok(routed instanceof ProtocolError, `routed ${JSON.stringify(line.toString())}`);
        assert.equal(routed.message, decoded.message);
        return;
      }
      assert.ok(decoded instanceof RdataCommand && routed instanceof RowRoute);
      assert.equal(routed.stream, decoded.stream);
      assert.equal(routed.token, decoded.token);
      assert.equal(line.subarray(routed.rowStart).toString(), decoded.rowJson.toString());
    }),
    { numRuns: 3000 },
  );
});

test('property: the lines of encodeRows decode to the rows, batch framed, with the token on the last', () => {
  fc.assert(
    fc.property(word, token, fc.array(json, { minLength: 1, maxLength: 6 }), (stream, t, rows) => {
      const bytes = v1Text.encodeRows(stream, t, rows);
      const lines = bytes.toString().split('\n');
      assert.equal(lines.pop(), '', 'ends with LF');
      assert.equal(lines.length, rows.length);
      lines.forEach((line, i) => {
        const cmd = parse(line, 'server');
        assert.ok(cmd instanceof RdataCommand);
        assert.equal(cmd.stream, stream);
        assert.equal(cmd.token, i === rows.length - 1 ? t : null);
        assert.equal(cmd.rowJson.toString(), rows[i]);
      });
    }),
    { numRuns: 1000 },
  );
});
