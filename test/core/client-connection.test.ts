import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientConnection, type ClientConnectionOptions } from '../../src/core/client-connection.js';
import type { ClientActionCommand } from '../../src/core/commands.js';
import type { ProtocolError } from '../../src/core/errors.js';

type Seen =
  | ['rows', string, number, unknown[]]
  | ['position', string, number]
  | ['server', string]
  | ['close', string]
  | ['remoteError', string]
  | ['sync', string]
  | ['forwarded', string]
  | ['generation', string | null, string | null];

interface Harness {
  conn: ClientConnection;
  /** Everything written, as text. */
  sent: string[];
  seen: Seen[];
  lines: string[][];
  feed(text: string, now?: number, byteByByte?: boolean): void;
  /** The lines written since the last call. */
  take(): string[];
}

function harness(options: ClientConnectionOptions = {}): Harness {
  const sent: string[] = [];
  const seen: Seen[] = [];
  const lines: string[][] = [];
  let taken = 0;
  const conn = new ClientConnection(
    {
      write(chunks) {
        for (const c of chunks) sent.push(...c.toString('utf8').split('\n').filter((l) => l !== ''));
        return true;
      },
      close(reason: ProtocolError) {
        seen.push(['close', reason.code]);
      },
      server(name) {
        seen.push(['server', name]);
      },
      rows(batch) {
        seen.push(['rows', batch.stream, batch.token, batch.values()]);
        lines.push(batch.rows.map((_, i) => batch.line(i).toString('utf8')));
      },
      position(stream, token) {
        seen.push(['position', stream, token]);
      },
      remoteError(message) {
        seen.push(['remoteError', message]);
      },
      sync(data) {
        seen.push(['sync', data]);
      },
      forwarded(cmd: ClientActionCommand) {
        seen.push(['forwarded', cmd.name]);
      },
      generationChanged(previous, current) {
        seen.push(['generation', previous, current]);
      },
    },
    options,
  );
  return {
    conn,
    sent,
    seen,
    lines,
    feed(text, now = 0, byteByByte = false) {
      const buf = Buffer.from(text, 'utf8');
      if (!byteByByte) conn.data(buf, now);
      else for (let i = 0; i < buf.length; i++) conn.data(buf.subarray(i, i + 1), now);
    },
    take() {
      const out = sent.slice(taken);
      taken = sent.length;
      return out;
    },
  };
}

const WIRE = [
  'SERVER master.test',
  'PING 1000',
  'POSITION events 10',
  'RDATA events 11 ["$11"]',
  'RDATA caches batch ["a"]',
  'RDATA caches batch ["b"]',
  'RDATA caches 7 ["c"]',
  'RDATA events 12 ["$12"]',
  'POSITION caches 9',
  '',
].join('\n');

const EXPECTED: Seen[] = [
  ['server', 'master.test'],
  ['position', 'events', 10],
  ['rows', 'events', 11, [['$11']]],
  ['rows', 'caches', 7, [['a'], ['b'], ['c']]],
  ['rows', 'events', 12, [['$12']]],
  ['position', 'caches', 9],
];

test('sends NAME, PING, a REPLICATE per stream, USER_SYNCs, then queued commands on connect', () => {
  const h = harness({ name: 'synapse.app.test' });
  h.conn.follow('events', 'NOW', 0);
  h.conn.follow('caches', 41, 0);
  h.conn.userSync('@a:hs', true, 0);
  h.conn.send({ name: 'FEDERATION_ACK', token: 5 }, 0);
  h.conn.send({ name: 'REMOVE_PUSHER', appId: 'app', pushKey: 'key', userId: '@a:hs' }, 0);
  assert.deepEqual(h.take(), [], 'nothing is written while disconnected');
  h.conn.connected(1234);
  assert.deepEqual(h.take(), [
    'NAME synapse.app.test',
    'PING 1234',
    'REPLICATE events NOW',
    'REPLICATE caches 41',
    'USER_SYNC @a:hs start 1234',
    'FEDERATION_ACK 5',
    'REMOVE_PUSHER app key @a:hs',
  ]);
});

test('sends AUTH before anything else when it has a credential', () => {
  const h = harness({ auth: 's3cret' });
  h.conn.followHead('events', 0);
  h.conn.connected(7);
  assert.deepEqual(h.take(), ['AUTH s3cret', 'PING 7', 'REPLICATE events NOW']);
});

test('with followGeneration: asks GENERATION after NAME on every connect, and reports only a change of generation', () => {
  const h = harness({ name: 'w', followGeneration: true });
  h.conn.follow('events', 5, 0);
  h.conn.connected(10);
  assert.deepEqual(h.take(), ['NAME w', 'GENERATION', 'PING 10', 'REPLICATE events 5']);
  h.feed('SERVER gw\nGENERATION aaa\nPOSITION events 5\n');
  assert.equal(h.conn.generation, 'aaa');
  assert.deepEqual(h.seen, [['server', 'gw'], ['position', 'events', 5]], 'the first answer is no change');
  h.conn.disconnected();
  h.conn.connected(20);
  assert.deepEqual(h.take(), ['NAME w', 'GENERATION', 'PING 20', 'REPLICATE events 5']);
  h.feed('SERVER gw\nGENERATION aaa\n');
  assert.equal(h.seen.length, 3, 'the same generation again: nothing reported');
  h.conn.disconnected();
  h.conn.connected(30);
  h.feed('SERVER gw\nGENERATION bbb\nPOSITION events 0\n');
  h.conn.disconnected();
  h.conn.connected(40);
  h.feed('SERVER gw\nGENERATION none\n');
  assert.deepEqual(h.seen.slice(4), [
    ['generation', 'aaa', 'bbb'],
    ['position', 'events', 0],
    ['server', 'gw'],
    ['generation', 'bbb', null],
  ]);
  assert.equal(h.conn.generation, null);
});

test('without followGeneration the handshake is v1: no GENERATION is sent', () => {
  const h = harness({ name: 'w' });
  h.conn.follow('events', 5, 0);
  h.conn.connected(10);
  assert.deepEqual(h.take(), ['NAME w', 'PING 10', 'REPLICATE events 5']);
  assert.equal(h.conn.generation, undefined);
});

test("a server's GENERATION without an id is an ERROR and a close", () => {
  const h = harness({ followGeneration: true });
  h.conn.connected(0);
  h.take();
  h.feed('SERVER gw\nGENERATION\n');
  assert.deepEqual(h.take(), ['ERROR missing arguments for GENERATION: expected GENERATION <id|none>']);
  assert.deepEqual(h.seen.at(-1), ['close', 'MISSING_ARGUMENTS']);
});

test('delivers batches, rows and positions the same whole and byte by byte', () => {
  for (const byteByByte of [false, true]) {
    const h = harness({ expectedServerName: 'master.test' });
    h.conn.follow('events', 'NOW', 0);
    h.conn.follow('caches', 'NOW', 0);
    h.conn.connected(0);
    h.feed(WIRE, 1, byteByByte);
    assert.deepEqual(h.seen, EXPECTED, `byteByByte=${byteByByte}`);
    assert.deepEqual(h.conn.positions(), { events: 12, caches: 9 });
  }
});

test('gives access to the raw line bytes of each row of a batch', () => {
  const h = harness();
  h.conn.follow('caches', 'NOW', 0);
  h.conn.connected(0);
  h.feed('RDATA caches batch ["a", 1]\nRDATA caches 7 ["c"]\r\n', 0, true);
  assert.deepEqual(h.lines, [['RDATA caches batch ["a", 1]', 'RDATA caches 7 ["c"]']]);
});

test('moves the position only when a batch completes, and resumes from before it', () => {
  const h = harness();
  h.conn.follow('caches', 5, 0);
  h.conn.connected(0);
  h.feed('RDATA caches 6 ["x"]\nRDATA caches 7 ["y"]\nRDATA caches batch ["a"]\nRDATA caches batch ["b"]\nRDATA caches 8 ["c');
  assert.deepEqual(h.conn.positions(), { caches: 7 });
  h.conn.disconnected();
  h.take();
  h.conn.connected(10);
  // 7 came as a lone numbered row, which Synapse's catch-up may follow with more rows of 7:
  // resume before it, and skip the row already delivered.
  assert.deepEqual(h.take(), ['PING 10', 'REPLICATE caches 6']);
  h.feed('RDATA caches 7 ["y"]\nRDATA caches batch ["a"]\nRDATA caches batch ["b"]\nRDATA caches 8 ["c"]\n');
  assert.deepEqual(
    h.seen.filter((s) => s[0] === 'rows').map((s) => [s[2], s[3]]),
    [
      [6, [['x']]],
      [7, [['y']]],
      [8, [['a'], ['b'], ['c']]],
    ],
  );
  h.conn.disconnected();
  h.take();
  h.conn.connected(20);
  assert.deepEqual(h.take(), ['PING 20', 'REPLICATE caches 8']);
});

test("delivers Synapse's un-batched catch-up row by row and resumes without loss or duplicates", () => {
  // Synapse 2017 catch-up: rows sharing token 3 come as three numbered lines.
  const h = harness();
  h.conn.follow('caches', 2, 0);
  h.conn.connected(0);
  h.feed('RDATA caches 3 ["a"]\nRDATA caches 3 ["b"]\n');
  assert.deepEqual(h.conn.positions(), { caches: 3 });
  h.conn.disconnected();
  h.take();
  h.conn.connected(1);
  // Token 3 may have more rows: resume from 2 and skip the two already seen.
  assert.deepEqual(h.take(), ['PING 1', 'REPLICATE caches 2']);
  h.feed('RDATA caches 3 ["a"]\nRDATA caches 3 ["b"]\nRDATA caches 3 ["c"]\nRDATA caches 4 ["d"]\n');
  h.conn.disconnected();
  h.take();
  h.conn.connected(2);
  assert.deepEqual(h.take(), ['PING 2', 'REPLICATE caches 3']);
  h.feed('RDATA caches 4 ["d"]\nRDATA caches 4 ["e"]\nPOSITION caches 4\n');
  h.conn.disconnected();
  h.take();
  h.conn.connected(3);
  assert.deepEqual(h.take(), ['PING 3', 'REPLICATE caches 4']);
  assert.deepEqual(
    h.seen.filter((s) => s[0] === 'rows').map((s) => [s[2], s[3]]),
    [
      [3, [['a']]],
      [3, [['b']]],
      [3, [['c']]],
      [4, [['d']]],
      [4, [['e']]],
    ],
  );
  assert.equal(h.conn.skippedReplays, 3);
});

test('a POSITION behind the stored token moves the position back to it', () => {
  const h = harness();
  h.conn.follow('events', 500, 0);
  h.conn.connected(0);
  h.feed('POSITION events 120\n');
  h.conn.disconnected();
  h.take();
  h.conn.connected(1);
  assert.deepEqual(h.take(), ['PING 1', 'REPLICATE events 120']);
});

test('answers a wrong SERVER name with ERROR Wrong remote and a close', () => {
  const h = harness({ expectedServerName: 'master.test' });
  h.conn.follow('events', 'NOW', 0);
  h.conn.connected(0);
  h.take();
  h.feed('SERVER impostor\nPING 1\nPOSITION events 5\n');
  assert.deepEqual(h.take(), ['ERROR Wrong remote']);
  assert.deepEqual(h.seen, [['close', 'WRONG_REMOTE']]);
  assert.equal(h.conn.wrongRemote, true);
  assert.equal(h.conn.serverSeen, false);
});

test('answers bad input with ERROR and a close', () => {
  const h = harness();
  h.conn.connected(0);
  h.take();
  h.feed('REPLICATE events NOW\n');
  assert.deepEqual(h.take(), ['ERROR REPLICATE may not be sent by a server']);
  assert.deepEqual(h.seen, [['close', 'WRONG_DIRECTION']]);
});

test('a writer accepts the client commands a gateway forwards to it', () => {
  const h = harness({ acceptForwarded: true });
  h.conn.connected(0);
  h.feed('USER_SYNC @a:hs start 5\nFEDERATION_ACK 7\n');
  assert.deepEqual(h.seen, [
    ['forwarded', 'USER_SYNC'],
    ['forwarded', 'FEDERATION_ACK'],
  ]);
});

test('reports ERROR and SYNC from the server and stays open', () => {
  const h = harness();
  h.conn.connected(0);
  h.feed('ERROR something odd\nSYNC marker\n');
  assert.deepEqual(h.seen, [
    ['remoteError', 'something odd'],
    ['sync', 'marker'],
  ]);
  assert.equal(h.conn.isOpen, true);
});

test('keeps at most the bound of commands made while disconnected, dropping the oldest', () => {
  const h = harness({ maxQueuedCommands: 3 });
  for (let t = 1; t <= 5; t++) h.conn.send({ name: 'FEDERATION_ACK', token: t }, 0);
  assert.equal(h.conn.droppedCommands, 2);
  assert.equal(h.conn.queuedCommands, 3);
  h.conn.connected(9);
  assert.deepEqual(h.take(), ['PING 9', 'FEDERATION_ACK 3', 'FEDERATION_ACK 4', 'FEDERATION_ACK 5']);
  assert.equal(h.conn.queuedCommands, 0);
});

test('user sync state is announced on every connect rather than queued', () => {
  const h = harness();
  h.conn.userSync('@a:hs', true, 0);
  h.conn.userSync('@b:hs', true, 0);
  h.conn.userSync('@a:hs', false, 0);
  h.conn.connected(3);
  assert.deepEqual(h.take(), ['PING 3', 'USER_SYNC @b:hs start 3']);
  h.conn.userSync('@b:hs', false, 4);
  assert.deepEqual(h.take(), ['USER_SYNC @b:hs end 4']);
});

test('sends every client command in its wire form', () => {
  const h = harness();
  h.conn.connected(0);
  h.take();
  h.conn.send({ name: 'INVALIDATE_CACHE', cacheFunc: 'get_user_by_id', keysJson: '["@a:hs"]' }, 1);
  h.conn.send({ name: 'USER_IP', userId: '@a:hs', infoJson: '["tok","10.0.0.1","UA","DEV",5]' }, 1);
  assert.deepEqual(h.take(), ['INVALIDATE_CACHE get_user_by_id ["@a:hs"]', 'USER_IP @a:hs ["tok","10.0.0.1","UA","DEV",5]']);
});

test('re-following a stream while connected sends a new REPLICATE and drops a half-received batch', () => {
  const h = harness();
  h.conn.follow('caches', 'NOW', 0);
  h.conn.connected(0);
  h.take();
  h.feed('POSITION caches 3\nRDATA caches batch ["a"]\n');
  h.conn.follow('caches', 1, 1);
  assert.deepEqual(h.take(), ['REPLICATE caches 1']);
  h.feed('RDATA caches 2 ["z"]\n');
  assert.deepEqual(h.seen, [
    ['position', 'caches', 3],
    ['rows', 'caches', 2, [['z']]],
  ]);
});

test('keep-alive: PINGs after the interval of silence, times out only after the server PINGed', () => {
  const h = harness({ pingIntervalMs: 5000, pingTimeoutMs: 25_000 });
  h.conn.connected(0);
  h.take();
  h.conn.tick(4999);
  assert.deepEqual(h.take(), []);
  h.conn.tick(5000);
  assert.deepEqual(h.take(), ['PING 5000']);
  // No PING from the server yet: silence is never a timeout (a person on netcat).
  h.conn.tick(100_000);
  assert.deepEqual(h.take(), ['PING 100000']);
  assert.deepEqual(h.seen, []);
  h.feed('PING 1\n', 100_000);
  h.conn.tick(125_000);
  assert.deepEqual(h.seen, []);
  h.conn.tick(125_001);
  assert.deepEqual(h.take(), ['PING 125000', 'ERROR ping timeout']);
  assert.deepEqual(h.seen, [['close', 'PING_TIMEOUT']]);
});

test('keep-alive: any line from the server resets the timeout, and a paused reader never times out', () => {
  const h = harness({ pingIntervalMs: 100, pingTimeoutMs: 500 });
  h.conn.follow('events', 'NOW', 0);
  h.conn.connected(0);
  h.feed('PING 0\n', 0);
  h.feed('POSITION events 1\n', 400);
  h.conn.tick(800);
  assert.equal(h.conn.isOpen, true);
  h.conn.pauseReading();
  h.conn.tick(5000);
  assert.equal(h.conn.isOpen, true);
  h.conn.resumeReading(5000);
  h.conn.tick(5400);
  assert.equal(h.conn.isOpen, true);
  h.conn.tick(5501);
  assert.equal(h.conn.isOpen, false);
});

test('an over-long line is an ERROR and a close', () => {
  const h = harness({ maxLineBytes: 32 });
  h.conn.follow('events', 'NOW', 0);
  h.conn.connected(0);
  h.take();
  h.feed(`RDATA events 1 ["${'x'.repeat(64)}"]\n`);
  assert.equal(h.take()[0]?.startsWith('ERROR line too long'), true);
  assert.deepEqual(h.seen, [['close', 'LINE_TOO_LONG']]);
});

test("drops rows at or below a POSITION that Synapse sends again after it, but not catch-up rows out of order", () => {
  const h = harness();
  h.conn.follow('account_data', 5, 0);
  h.conn.follow('caches', 145, 0);
  h.conn.connected(0);
  // account_data catch-up: room rows, then global rows (not in token order); all delivered.
  h.feed('RDATA account_data 6 ["r"]\nRDATA account_data 8 ["r"]\nRDATA account_data 7 ["g"]\nPOSITION account_data 8\n');
  // caches: catch-up to 148, POSITION, then the switch to live repeats 146..148 as batches.
  h.feed('RDATA caches 146 ["a"]\nRDATA caches 147 ["b"]\nRDATA caches 148 ["c"]\nPOSITION caches 148\n');
  h.feed('RDATA caches batch ["a"]\nRDATA caches 146 ["a2"]\nRDATA caches 148 ["c"]\nRDATA caches batch ["d"]\nRDATA caches 149 ["e"]\n');
  assert.deepEqual(
    h.seen.filter((s) => s[0] === 'rows').map((s) => [s[1], s[2]]),
    [
      ['account_data', 6],
      ['account_data', 8],
      ['account_data', 7],
      ['caches', 146],
      ['caches', 147],
      ['caches', 148],
      ['caches', 149],
    ],
  );
  assert.equal(h.conn.skippedReplays, 3);
  assert.deepEqual(h.conn.positions(), { account_data: 8, caches: 149 });
});
