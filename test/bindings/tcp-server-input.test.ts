import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DisconnectReason } from '../../src/core/hub-types.js';
import { eventually, greeted, range, rdata, startServer } from './support/raw-peer.js';
import { hubOf } from '../../src/server.js';

const MAX_TOKEN = '9007199254740991';
const MAX_LINE_BYTES = 1024;

/** Input (without its LF) and the ERROR text it gets. */
const MALFORMED: [string | Buffer, string | RegExp][] = [
  ['FOO', "unknown command: 'FOO'"],
  ['ping 1', "unknown command: 'ping'"],
  ['\x01\x02 x', "unknown command: '\\x01\\x02'"],
  ['GET /metrics HTTP/1.1', "this is the replication port (Synapse's TCP replication protocol), not HTTP: send HTTP requests to the gateway's --http listener"],
  ['NAME worker\x00evil', "control character '\\x00' in NAME: arguments must be printable text"],
  ['NAME a\x1bb', "control character '\\x1b' in NAME: arguments must be printable text"],
  ['USER_SYNC @a:hs\x07 start 1', "control character '\\x07' in USER_SYNC: arguments must be printable text"],
  ['SERVER evil.example', 'SERVER may not be sent by a client'],
  ['SYNC 1', 'SYNC may not be sent by a client'],
  ['RDATA events 1 ["x"]', 'RDATA may not be sent by a client (AUTH as a writer first)'],
  ['POSITION events 1', 'POSITION may not be sent by a client (AUTH as a writer first)'],
  ['REPLICATE', 'missing arguments for REPLICATE: expected REPLICATE <stream|ALL> <token|NOW>'],
  ['REPLICATE events', 'missing arguments for REPLICATE: expected REPLICATE <stream|ALL> <token|NOW>'],
  ['REPLICATE  events NOW', 'missing arguments for REPLICATE: expected REPLICATE <stream|ALL> <token|NOW>'],
  ['REPLICATE events abc', `bad token 'abc' in REPLICATE: expected an integer from 0 to ${MAX_TOKEN} or NOW`],
  ['REPLICATE events -5', `bad token '-5' in REPLICATE: expected an integer from 0 to ${MAX_TOKEN} or NOW`],
  ['REPLICATE events 1.5', `bad token '1.5' in REPLICATE: expected an integer from 0 to ${MAX_TOKEN} or NOW`],
  ['REPLICATE events 9007199254740992', `bad token '9007199254740992' in REPLICATE: expected an integer from 0 to ${MAX_TOKEN} or NOW`],
  ['REPLICATE events 12345678901234567', `bad token '12345678901234567' in REPLICATE: expected an integer from 0 to ${MAX_TOKEN} or NOW`],
  ['REPLICATE ALL 5', "REPLICATE ALL takes NOW, not '5'"],
  ['REPLICATE nosuch NOW', 'unknown stream: nosuch'],
  ['NAME', 'missing arguments for NAME: expected NAME <name>'],
  ['USER_SYNC @a:hs', 'missing arguments for USER_SYNC: expected USER_SYNC <user_id> <start|end> <last_sync_ms>'],
  ['USER_SYNC @a:hs stop 1', "bad state 'stop' in USER_SYNC: expected start or end"],
  ['USER_SYNC @a:hs start soon', `bad token 'soon' in USER_SYNC: expected an integer from 0 to ${MAX_TOKEN}`],
  ['FEDERATION_ACK', 'missing arguments for FEDERATION_ACK: expected FEDERATION_ACK <token>'],
  ['FEDERATION_ACK x', `bad token 'x' in FEDERATION_ACK: expected an integer from 0 to ${MAX_TOKEN}`],
  ['REMOVE_PUSHER app key', 'missing arguments for REMOVE_PUSHER: expected REMOVE_PUSHER <app_id> <push_key> <user_id>'],
  ['INVALIDATE_CACHE get_user', 'missing arguments for INVALIDATE_CACHE: expected INVALIDATE_CACHE <cache_func> <keys_json>'],
  ['INVALIDATE_CACHE get_user {nope', /^bad JSON in INVALIDATE_CACHE: /],
  ['USER_IP @a:hs nojson', /^bad JSON in USER_IP: /],
  ['USER_IP @a:hs ["tok","1.2.3.4"]', 'bad JSON in USER_IP: expected [access_token, ip, user_agent, device_id, last_seen]'],
  ['AUTH', 'missing arguments for AUTH: expected AUTH <token>'],
  ['AUTH not-a-credential', 'AUTH failed: the token matches no configured credential'],
  [`NAME ${'x'.repeat(MAX_LINE_BYTES + 10)}`, `line too long: over the limit of ${MAX_LINE_BYTES} bytes`],
  [Buffer.from([0x4e, 0x41, 0x4d, 0x45, 0x20, 0xff, 0xfe]), 'line is not valid UTF-8'],
  [Buffer.from([0x4e, 0x41, 0x4d, 0x45, 0x20, 0xc3]), 'line is not valid UTF-8'],
];

test(`each of ${MALFORMED.length} malformed lines gets ERROR <reason> and a close, leaving other connections and the stream untouched`, { timeout: 15_000 }, async (t) => {
  assert.ok(MALFORMED.length >= 25);
  const f = await startServer({ writerToken: 'w', maxLineBytes: MAX_LINE_BYTES });
  t.after(() => f.close());
  const reasons: DisconnectReason[] = [];
  f.server.on('disconnect', (_c, reason) => reasons.push(reason));
  const watcher = await greeted(f);
  watcher.send('REPLICATE events NOW', 'REPLICATE caches NOW');
  await watcher.line('POSITION caches 0');
  let token = 0;
  for (const [input, reply] of MALFORMED) {
    const p = await greeted(f);
    const label = JSON.stringify(input.toString('latin1').slice(0, 40));
    // A good line before and after: the one before is obeyed, the one after never read.
    p.send('NAME before');
    if (typeof input === 'string' && input.length > MAX_LINE_BYTES) {
      // Over the limit across several writes, too.
      p.write(input.slice(0, 600));
      await new Promise((r) => setTimeout(r, 5));
      p.write(input.slice(600) + '\nREPLICATE events NOW\n');
    } else {
      p.write(Buffer.concat([Buffer.from(input), Buffer.from('\nREPLICATE events NOW\n')]));
    }
    token = await f.server.publish('events', [token + 1]);
    await p.closed();
    const errors = p.content();
    assert.equal(errors.length, 1, `${label}: exactly one line after the greeting, got ${JSON.stringify(errors)}`);
    const text = errors[0]!.replace(/^ERROR /, '');
    assert.ok(errors[0]!.startsWith('ERROR '), `${label}: ${errors[0]}`);
    if (typeof reply === 'string') assert.equal(text, reply, label);
    else assert.match(text, reply, label);
  }
  await watcher.line(`RDATA events ${token} ${token}`);
  assert.deepEqual(
    watcher.content(),
    ['POSITION events 0', 'POSITION caches 0', ...range(1, token).map((i) => `RDATA events ${i} ${i}`)],
  );
  assert.equal(watcher.closedBy, null);
  assert.equal(f.server.head('events'), MALFORMED.length);
  assert.equal(f.server.head('caches'), 0);
  assert.equal(hubOf(f.server).stream('events')!.log.retainedRows, MALFORMED.length);
  await eventually(() => reasons.length === MALFORMED.length, 'a disconnect event per case');
  assert.ok(reasons.every((r) => r === 'protocol_error' || r === 'unknown_stream' || r === 'auth'), reasons.join());
});

test('writer token violations get ERROR and a close, with nothing half-applied', { timeout: 10_000 }, async (t) => {
  const f = await startServer({
    writerToken: 'w',
    credentials: [{ secret: 'caches-only', role: 'writer', streams: ['caches'] }],
  });
  t.after(() => f.close());
  const watcher = await greeted(f);
  watcher.send('REPLICATE events NOW');
  await watcher.line('POSITION events 0');
  const good = await greeted(f, 'w');
  good.send(...rdata('events', [3, 5]));
  await watcher.line(/^RDATA events 5 /);

  const cases: [string, string[], string][] = [
    ['a token not above the head', [rdata('events', [5])[0]!], "token 5 for events is not above the stream's head 5"],
    ['a token going back in one chunk', rdata('events', [6, 7, 7]), "token 7 for events is not above the stream's head 7"],
    ['POSITION going back', ['POSITION events 4'], "token 4 for events is not above the stream's head 7"],
    ['an unknown stream', ['RDATA nosuch 8 []'], 'unknown stream: nosuch'],
    ['POSITION of an unknown stream', ['POSITION nosuch 8'], 'unknown stream: nosuch'],
    ['a batch whose numbered row is rejected', ['RDATA events batch ["half"]', 'RDATA events batch ["applied"]', 'RDATA events 2 ["no"]'], "token 2 for events is not above the stream's head 7"],
    ['a batch line then POSITION', ['RDATA events batch ["half"]', 'POSITION events 20'], 'POSITION events inside a batch: a batch ends with a numbered RDATA'],
    ['a bad token word', ['RDATA events next ["x"]'], `bad token 'next' in RDATA: expected an integer from 0 to 9007199254740991 or batch`],
    ['a row that is not JSON', ['RDATA events 8 not-json-at-all'], "row of events at token 8 is not valid JSON: unexpected 'o' at byte 1; nothing from it on was stored (events is at token 7)"],
    ['a batch with a row that is not JSON', ['RDATA events batch ["half"]', 'RDATA events batch ["x",]', 'RDATA events 8 ["no"]'], "batch row of events is not valid JSON: unexpected ']' at byte 5; nothing from it on was stored (events is at token 7)"],
  ];
  for (const [what, lines, error] of cases) {
    const w = await greeted(f, 'w');
    w.send(...lines);
    await w.closed();
    assert.deepEqual(w.content(), [`ERROR ${error}`], what);
  }
  const limited = await greeted(f, 'caches-only');
  limited.send(...rdata('events', [100]));
  await limited.closed();
  assert.deepEqual(limited.content(), ['ERROR not permitted to write stream events']);
  const anonymous = await greeted(f);
  anonymous.send(...rdata('events', [100]));
  await anonymous.closed();
  assert.deepEqual(anonymous.content(), ['ERROR RDATA may not be sent by a client (AUTH as a writer first)']);
  const wrong = await greeted(f, 'W');
  wrong.send(...rdata('events', [100]));
  await wrong.closed();
  assert.deepEqual(wrong.content(), ['ERROR AUTH failed: the token matches no configured credential']);

  // Only the rows before a violation in its chunk were stored: 6 and 7.
  good.send(...rdata('events', [8]));
  await watcher.line(/^RDATA events 8 /);
  assert.deepEqual(watcher.content(), ['POSITION events 0', ...rdata('events', [3, 5, 6, 7, 8])]);
  assert.equal(f.server.head('events'), 8);
  assert.equal(hubOf(f.server).stream('events')!.log.retainedRows, 5);
  assert.equal(good.closedBy, null);
});
