import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fakeHub, rows, send, type FakeHub } from './support/fake-hub.js';

function writer(h: FakeHub, secret = 'w-secret') {
  const w = h.connect();
  send(h, w.conn, `AUTH ${secret}\n`);
  assert.equal(w.conn.role, 'writer');
  w.t.take();
  return w;
}

function subscriber(h: FakeHub, replicate: string) {
  const s = h.connect();
  s.t.take();
  send(h, s.conn, `${replicate}\n`);
  return s;
}

/** Tokens of the numbered RDATA and POSITION lines, `b` for batch lines. */
function tokens(lines: string[]): string[] {
  return lines.map((l) => {
    const [name, , token] = l.split(' ');
    return name === 'POSITION' ? `P${token}` : token!;
  });
}

test('greets with SERVER <name> then PING <now> before the peer says anything', () => {
  const h = fakeHub();
  const { t } = h.connect();
  assert.deepEqual(t.take(), ['SERVER gw.test', `PING ${h.clock.now}`]);
  assert.deepEqual(h.events.map((e) => e[0]), ['opened']);
});

test("a writer's run of lines in one chunk is stored as one slice of that chunk, and subscribers get those bytes", () => {
  const h = fakeHub();
  const s = subscriber(h, 'REPLICATE events NOW');
  assert.deepEqual(s.t.take(), ['POSITION events 0']);
  const w = writer(h);
  const chunk = send(h, w.conn, rows('events', [1, 2, 3]) + 'PING 5\n' + rows('events', [4]));
  const entries = h.appended.get('events')!;
  assert.equal(entries.length, 2, 'a PING between rows ends a run');
  assert.equal(entries[0]!.bytes.buffer, chunk.buffer, 'a view of the chunk, not a copy');
  assert.equal(entries[0]!.lines, 3);
  assert.equal(entries[0]!.firstToken, 1);
  assert.equal(entries[0]!.lastToken, 3);
  assert.ok(s.t.written.includes(entries[0]!.bytes), 'the same Buffer is handed to the subscriber');
  assert.deepEqual(s.t.take(), rows('events', [1, 2, 3, 4]).trimEnd().split('\n'));
  assert.equal(h.hub.stream('events')!.log.head, 4);
});

test('a batch split across writer chunks is stored as one group and replayed in catch-up with its framing', () => {
  const h = fakeHub();
  const live = subscriber(h, 'REPLICATE caches NOW');
  const w = writer(h);
  send(h, w.conn, 'RDATA caches 1 ["a"]\nRDATA caches batch ["b"]\nRDATA caches ba');
  assert.deepEqual(tokens(live.t.take()), ['P0', '1'], 'the batch waits for its numbered row');
  send(h, w.conn, 'tch ["c"]\nRDATA events 1 ["e"]\n');
  send(h, w.conn, 'RDATA caches 2 ["d"]\n');
  const batch = ['RDATA caches batch ["b"]', 'RDATA caches batch ["c"]', 'RDATA caches 2 ["d"]'];
  assert.deepEqual(live.t.take(), batch);
  const entries = h.appended.get('caches')!;
  assert.equal(entries.length, 2);
  assert.deepEqual([entries[1]!.firstToken, entries[1]!.lastToken, entries[1]!.rows], [2, 2, 3]);
  const late = subscriber(h, 'REPLICATE caches 1');
  assert.deepEqual(late.t.take(), [...batch, 'POSITION caches 2']);
});

test('a batch with CRLF line endings is stored whole, each line ending in LF alone', () => {
  const h = fakeHub();
  const live = subscriber(h, 'REPLICATE caches NOW');
  live.t.take();
  const w = writer(h);
  // LF batch line then a CRLF numbered row; then a batch all in CRLF.
  send(h, w.conn, 'RDATA caches batch ["a"]\nRDATA caches 1 ["b"]\r\n');
  send(h, w.conn, 'RDATA caches batch ["c"]\r\nRDATA caches batch ["d"]\r\nRDATA caches 2 ["e"]\r\n');
  const expected = [
    'RDATA caches batch ["a"]',
    'RDATA caches 1 ["b"]',
    'RDATA caches batch ["c"]',
    'RDATA caches batch ["d"]',
    'RDATA caches 2 ["e"]',
  ];
  assert.deepEqual(live.t.take(), expected);
  assert.ok(!live.t.text().includes('\r'));
  assert.equal(h.hub.stream('caches')!.log.retainedRows, 5);
  assert.deepEqual(subscriber(h, 'REPLICATE caches 0').t.take(), [...expected, 'POSITION caches 2']);
});

test('a PING or a blank line between the lines of a batch does not split it', () => {
  const h = fakeHub();
  const w = writer(h);
  send(h, w.conn, 'RDATA caches batch ["a"]\nPING 1\nRDATA caches 1 ["b"]\n');
  send(h, w.conn, 'RDATA caches batch ["c"]\n\nRDATA caches batch ["d"]\r\n   \nRDATA caches 2 ["e"]\nRDATA caches 3 ["f"]\n');
  assert.ok(w.conn.open);
  const entries = h.appended.get('caches')!;
  assert.deepEqual(
    entries.map((e) => [e.firstToken, e.lastToken, e.rows]),
    [[1, 1, 2], [2, 2, 3], [3, 3, 1]],
  );
  assert.deepEqual(subscriber(h, 'REPLICATE caches 0').t.take(), [
    'RDATA caches batch ["a"]',
    'RDATA caches 1 ["b"]',
    'RDATA caches batch ["c"]',
    'RDATA caches batch ["d"]',
    'RDATA caches 2 ["e"]',
    'RDATA caches 3 ["f"]',
    'POSITION caches 3',
  ]);
});

test('rows of another stream may come between the lines of a batch', () => {
  const h = fakeHub();
  const w = writer(h);
  send(h, w.conn, 'RDATA caches batch ["a"]\nRDATA events 7 ["x"]\nRDATA caches batch ["b"]\n');
  send(h, w.conn, 'RDATA events 8 ["y"]\nRDATA caches 3 ["c"]\n');
  assert.deepEqual(subscriber(h, 'REPLICATE caches 2').t.take(), [
    'RDATA caches batch ["a"]',
    'RDATA caches batch ["b"]',
    'RDATA caches 3 ["c"]',
    'POSITION caches 3',
  ]);
  assert.equal(h.hub.stream('events')!.log.head, 8);
});

test('a batch whose numbered row is rejected is not stored, and rows validated before it are kept', () => {
  const h = fakeHub();
  const live = subscriber(h, 'REPLICATE caches NOW');
  live.t.take();
  const w = writer(h);
  send(h, w.conn, 'RDATA caches 5 ["ok"]\nRDATA caches batch ["x"]\nRDATA caches batch ["y"]\nRDATA caches 5 ["z"]\n');
  assert.deepEqual(w.t.take(), ["ERROR token 5 for caches is not above the stream's head 5"]);
  assert.ok(w.t.ended);
  assert.deepEqual(live.t.take(), ['RDATA caches 5 ["ok"]']);
  assert.equal(h.hub.stream('caches')!.log.retainedRows, 1);
  // The same across chunks: the batch lines were pending.
  const w2 = writer(h);
  send(h, w2.conn, 'RDATA caches batch ["x"]\n');
  send(h, w2.conn, 'RDATA caches 4 ["z"]\n');
  assert.match(w2.t.take()[0]!, /^ERROR token 4 for caches is not above/);
  assert.deepEqual(live.t.take(), []);
  assert.equal(h.hub.stream('caches')!.log.retainedRows, 1);
});

test("a writer's row that is not JSON gets ERROR naming the stream and token, a close, and nothing from it on is stored", () => {
  const h = fakeHub();
  const live = subscriber(h, 'REPLICATE events NOW');
  live.t.take();
  const w = writer(h);
  send(h, w.conn, rows('events', [1, 2]) + 'RDATA events 3 not-json-at-all\n' + rows('events', [4]));
  assert.deepEqual(w.t.take(), [
    "ERROR row of events at token 3 is not valid JSON: unexpected 'o' at byte 1; nothing from it on was stored (events is at token 2)",
  ]);
  assert.ok(w.t.ended);
  assert.equal(h.events.find((e) => e[0] === 'closed' && e[1] === w.conn)?.[2], 'protocol_error');
  assert.deepEqual(tokens(live.t.take()), ['1', '2'], 'the rows before it, never it nor what followed');
  assert.equal(h.hub.stream('events')!.log.head, 2);
  assert.ok(live.conn.open);
  // The writer resends from the stored head.
  const again = writer(h);
  send(h, again.conn, rows('events', [3, 4]));
  assert.deepEqual(tokens(live.t.take()), ['3', '4']);
});

test("a batch with a row that is not JSON is stored in none of its rows, in one chunk or across chunks", () => {
  const h = fakeHub();
  const live = subscriber(h, 'REPLICATE caches NOW');
  live.t.take();
  const w = writer(h);
  send(h, w.conn, 'RDATA caches 1 ["ok"]\nRDATA caches batch ["a"]\nRDATA caches batch ["b"\nRDATA caches 2 ["c"]\n');
  assert.deepEqual(w.t.take(), [
    'ERROR batch row of caches is not valid JSON: unexpected end of the row at byte 4; nothing from it on was stored (caches is at token 1)',
  ]);
  assert.deepEqual(live.t.take(), ['RDATA caches 1 ["ok"]']);
  const w2 = writer(h);
  send(h, w2.conn, 'RDATA caches batch ["a"]\n');
  send(h, w2.conn, 'RDATA caches 2 {"a":01}\n');
  assert.deepEqual(w2.t.take(), [
    "ERROR row of caches at token 2 is not valid JSON: unexpected '1' at byte 6; nothing from it on was stored (caches is at token 1)",
  ]);
  assert.deepEqual(live.t.take(), []);
  assert.equal(h.hub.stream('caches')!.log.retainedRows, 1);
  // Another stream's rows before the bad one in the same chunk are kept: they were whole.
  const w3 = writer(h);
  send(h, w3.conn, 'RDATA events 1 ["e"]\nRDATA caches 2 [1,]\n');
  assert.match(w3.t.take()[0]!, /^ERROR row of caches at token 2 is not valid JSON: unexpected '\]' at byte 3;/);
  assert.equal(h.hub.stream('events')!.log.head, 1);
  assert.equal(h.hub.stream('caches')!.log.head, 1);
});

test('a row that is not JSON is the one named, and nothing after it in its chunk takes effect: a FEDERATION_ACK, a POSITION, a later token, a line not UTF-8', () => {
  const h = fakeHub();
  const bad = "ERROR row of events at token 2 is not valid JSON: unexpected 'o' at byte 1; nothing from it on was stored (events is at token 1)";
  const w = writer(h);
  send(h, w.conn, rows('events', [1]) + 'RDATA events 2 nope\nFEDERATION_ACK 7\nPOSITION events 50\n');
  assert.deepEqual(w.t.take(), [bad]);
  assert.deepEqual(h.events.filter((e) => e[0] === 'clientCommand'), [], 'the FEDERATION_ACK after the bad row did not take effect');
  assert.equal(h.hub.stream('events')!.log.head, 1, 'nor the POSITION');
  const ack = writer(h);
  send(h, ack.conn, 'FEDERATION_ACK 7\n');
  assert.equal(h.events.filter((e) => e[0] === 'clientCommand').length, 1, 'a FEDERATION_ACK from a writer does take effect');
  const w2 = writer(h);
  send(h, w2.conn, 'RDATA events 2 nope\nRDATA events 1 [1]\n');
  assert.deepEqual(w2.t.take(), [bad], 'the bad row is named, not the token after it');
  const w3 = writer(h);
  w3.conn.receive(Buffer.concat([Buffer.from('RDATA events 2 nope\nNAME '), Buffer.from([0xff]), Buffer.from('\n')]));
  h.settle();
  assert.deepEqual(w3.t.take(), [bad], 'the bad row is named, not the line after it that is not UTF-8');
  const w4 = writer(h);
  send(h, w4.conn, 'RDATA events 2 [2]\nRDATA events 2 [9]\n');
  assert.deepEqual(w4.t.take(), ["ERROR token 2 for events is not above the stream's head 2"], 'a row refused for its token, in a run');
  assert.equal(h.hub.stream('events')!.log.head, 2);
  const w5 = writer(h);
  send(h, w5.conn, 'RDATA events 3 [3]\nRDATA events 3 nope\n');
  assert.deepEqual(
    w5.t.take(),
    ["ERROR row of events at token 3 is not valid JSON: unexpected 'o' at byte 1; nothing from it on was stored (events is at token 3)"],
    'a row whose token does not rise and that is not JSON: its JSON is named, as it is checked first',
  );
});

test('a chunk of 12,000 rows, more bytes than the validator copies at once (64 KiB), keeps exactly the rows before a bad one', () => {
  const h = fakeHub();
  const live = subscriber(h, 'REPLICATE events NOW');
  live.t.take();
  const w = writer(h);
  let text = '';
  for (let t = 1; t <= 12_000; t++) text += t === 11_000 ? 'RDATA events 11000 [11000,]\n' : `RDATA events ${t} [${t}]\n`;
  send(h, w.conn, text);
  assert.ok(text.length > 3 * 64 * 1024);
  assert.deepEqual(w.t.take(), ["ERROR row of events at token 11000 is not valid JSON: unexpected ']' at byte 7; nothing from it on was stored (events is at token 10999)"]);
  const got = live.t.take();
  assert.equal(got.length, 10_999);
  got.forEach((line, k) => assert.equal(line, `RDATA events ${k + 1} [${k + 1}]`));
  // The same rows, all good, in one chunk: every one stored once, in order.
  const h2 = fakeHub();
  const w2 = writer(h2);
  send(h2, w2.conn, text.replace('[11000,]', '[11000]'));
  assert.ok(w2.conn.open, w2.t.take().join('\n'));
  assert.equal(h2.hub.stream('events')!.log.head, 12_000);
  assert.equal(h2.hub.stream('events')!.log.retainedRows, 12_000);
});

test('a writer cut for an unfinished line (the budget) keeps the whole rows of that chunk before it, not a batch left open', () => {
  const h = fakeHub({ maxPartialLineBytes: 1024, maxLineBytes: 4096 });
  const live = subscriber(h, 'REPLICATE caches NOW');
  live.t.take();
  const w = writer(h);
  send(h, w.conn, 'RDATA caches 1 [1]\nRDATA caches batch [2]\nRDATA caches 2 [2]\nRDATA caches batch [3]\nNAME ' + 'x'.repeat(2000));
  assert.match(w.t.take().at(-1)!, /^ERROR unfinished lines of all connections over their budget/);
  assert.deepEqual(live.t.take(), ['RDATA caches 1 [1]', 'RDATA caches batch [2]', 'RDATA caches 2 [2]']);
  assert.equal(h.hub.stream('caches')!.log.head, 2);
  assert.equal(h.hub.stream('caches')!.log.retainedRows, 3);
});

test('a row split across chunks is checked whole, and whitespace around the JSON is allowed', () => {
  const h = fakeHub();
  const w = writer(h);
  send(h, w.conn, 'RDATA events 1 ["split ');
  send(h, w.conn, 'here",{"k":[true,null,-1.5e3]}]\nRDATA events 2  [2] \r\n');
  assert.ok(w.conn.open, w.t.take().join('\n'));
  assert.deepEqual(tokens(subscriber(h, 'REPLICATE events 0').t.take()), ['1', '2', 'P2']);
});

test('a chunk whose buffer is reused for the next read is checked on its new bytes', () => {
  // A binding may hand over the same memory for each read: the validator must not answer from its copy of the last one.
  const h = fakeHub();
  const w = writer(h);
  const chunk = Buffer.from('RDATA events 1 ["a"]\n');
  w.conn.receive(chunk);
  chunk.write('RDATA events 2 [1,,]\n');
  w.conn.receive(chunk);
  h.settle();
  assert.deepEqual(w.t.take(), ["ERROR row of events at token 2 is not valid JSON: unexpected ',' at byte 3; nothing from it on was stored (events is at token 1)"]);
  assert.equal(h.hub.stream('events')!.log.head, 1);
});

test('POSITION inside a batch is refused, and the batch is dropped', () => {
  const h = fakeHub();
  const w = writer(h);
  send(h, w.conn, 'RDATA caches batch ["a"]\nPOSITION caches 9\n');
  assert.deepEqual(w.t.take(), ['ERROR POSITION caches inside a batch: a batch ends with a numbered RDATA']);
  assert.equal(h.hub.stream('caches')!.log.head, 0);
  assert.equal(h.hub.stream('caches')!.log.retainedRows, 0);
});

test('catch-up is read from the log as the transport drains, then POSITION and live rows with no gap or duplicate', () => {
  const h = fakeHub();
  const w = writer(h);
  // 40 writer chunks of 5 rows: 40 log entries of ~275 bytes.
  for (let t = 1; t <= 200; t += 5) send(h, w.conn, rows('events', [t, t + 1, t + 2, t + 3, t + 4]));
  const s = h.connect();
  s.t.take();
  s.t.accepting = false;
  const greeting = s.t.writeSizes.length;
  send(h, s.conn, 'REPLICATE events 50\n');
  let writes = s.t.writeSizes.length;
  assert.equal(writes, greeting + 1, 'one read, then it waits for drain');
  let next = 201;
  for (let i = 0; i < 100 && !s.t.text().includes('POSITION'); i++) {
    // The writer goes on while the subscriber catches up.
    send(h, w.conn, rows('events', [next++, next++]));
    assert.equal(s.t.writeSizes.length, writes, 'nothing is written until drain');
    s.conn.drained();
    h.settle();
    assert.equal(s.t.writeSizes.length, writes + 1, 'one catch-up read per drain');
    writes = s.t.writeSizes.length;
  }
  assert.ok(s.t.writeSizes.every((n) => n < 1024 + 300), `reads of about catchUpChunkBytes: ${s.t.writeSizes}`);
  s.t.accepting = true;
  send(h, w.conn, rows('events', [next++, next++]));
  s.conn.drained();
  h.settle();
  const got = tokens(s.t.take());
  const position = got.findIndex((x) => x.startsWith('P'));
  assert.ok(position > 0);
  const head = Number(got[position]!.slice(1));
  const expected = [];
  for (let t = 51; t < next; t++) expected.push(String(t));
  expected.splice(head - 50, 0, `P${head}`);
  assert.deepEqual(got, expected);
  assert.deepEqual(s.conn.subscriptions(), [{ stream: 'events', instance: null, catchingUp: false, lastToken: next - 1 }]);
});

test('the server PINGs after pingIntervalMs of silence, and never times out a peer that has not PINGed', () => {
  const h = fakeHub();
  const { conn, t } = h.connect();
  t.take();
  h.advance(4_000);
  assert.deepEqual(t.take(), []);
  h.advance(1_000);
  assert.deepEqual(t.take(), [`PING ${h.clock.now}`]);
  for (let i = 0; i < 40; i++) h.advance(5_000);
  assert.ok(conn.open, 'silent for 8 ping timeouts, but it never PINGed');
  assert.equal(t.take().length, 40);
});

test('a peer that PINGed and then went silent gets ERROR ping timeout, and a close that hangs is aborted', () => {
  const h = fakeHub();
  const { conn, t } = h.connect();
  send(h, conn, 'PING 1\n');
  t.take();
  h.advance(20_000);
  send(h, conn, 'NAME still-here\n');
  h.advance(20_000);
  assert.ok(conn.open, 'any line resets the timeout');
  h.advance(5_001);
  assert.ok(!conn.open);
  assert.deepEqual(t.take().slice(-1), ['ERROR ping timeout']);
  assert.ok(t.ended && !t.destroyed);
  assert.deepEqual(h.events.at(-1)?.slice(2), ['ping_timeout', 'ping timeout']);
  h.advance(20_000);
  assert.ok(!t.destroyed);
  h.advance(5_001);
  assert.ok(t.destroyed, 'the close did not complete within another timeout period');
  conn.transportClosed();
  assert.equal(h.hub.connectionCount, 0);
});

test('a subscriber whose socket is full falls behind to the log at the queue command limit, is not cut, and gets every row once, in order, then rejoins the head', () => {
  const h = fakeHub();
  const slow = subscriber(h, 'REPLICATE events NOW');
  const fine = subscriber(h, 'REPLICATE events NOW');
  slow.t.take();
  fine.t.take();
  slow.t.accepting = false;
  const w = writer(h);
  let token = 0;
  const queued: number[] = [];
  for (let i = 0; i < 300; i++) {
    send(h, w.conn, rows('events', [++token]));
    queued.push(slow.conn.queuedCommands);
  }
  assert.ok(slow.conn.open);
  // One row was written before the socket said it was full; 100 were queued, and nothing after them.
  assert.equal(Math.max(...queued), 100);
  assert.equal(slow.conn.queuedCommands, 100);
  assert.deepEqual(slow.conn.subscriptions(), [{ stream: 'events', instance: null, catchingUp: true, lastToken: 101 }]);
  assert.equal(h.events.filter((e) => e[0] === 'slowConsumer').length, 0);
  assert.equal(fine.t.take().length, 300, 'the other subscriber got every row');

  slow.t.accepting = true;
  slow.conn.drained();
  h.settle();
  const all = Array.from({ length: 300 }, (_, i) => String(i + 1));
  assert.deepEqual(tokens(slow.t.take()), [...all, 'P300']);
  send(h, w.conn, rows('events', [301]));
  assert.deepEqual(tokens(slow.t.take()), ['301'], 'live again');
  assert.deepEqual(slow.conn.subscriptions(), [{ stream: 'events', instance: null, catchingUp: false, lastToken: 301 }]);
});

test('the byte limit makes a subscriber fall behind the same way, and a row larger than the queue goes straight to a socket that takes it', () => {
  const h = fakeHub({ maxQueueBytes: 1000 });
  const s = subscriber(h, 'REPLICATE events NOW');
  s.t.take();
  const w = writer(h);
  const big = `RDATA events 1 ["${'x'.repeat(2000)}"]\n`;
  send(h, w.conn, big);
  assert.deepEqual(s.t.take(), [big.trimEnd()]);
  s.t.accepting = false;
  send(h, w.conn, rows('events', [2]));
  send(h, w.conn, `RDATA events 3 ["${'y'.repeat(990)}"]\n`);
  send(h, w.conn, rows('events', [4]));
  assert.ok(s.conn.open);
  assert.equal(s.conn.queuedCommands, 0, 'row 2 went to the socket, which then said it was full; rows 3 and 4 wait in the log');
  assert.deepEqual(s.conn.subscriptions(), [{ stream: 'events', instance: null, catchingUp: true, lastToken: 2 }]);
  s.t.accepting = true;
  s.conn.drained();
  h.settle();
  assert.deepEqual(tokens(s.t.take()), ['2', '3', '4', 'P4']);
  assert.equal(h.events.filter((e) => e[0] === 'slowConsumer').length, 0);
});

test('a batch that arrives as the subscriber falls behind is read from the log whole, never split or repeated', () => {
  const h = fakeHub({ maxQueueCommands: 4 });
  const s = subscriber(h, 'REPLICATE caches NOW');
  s.t.take();
  s.t.accepting = false;
  const w = writer(h);
  send(h, w.conn, rows('caches', [1]));
  send(h, w.conn, rows('caches', [2, 3]));
  // A batch split across the writer's chunks: stored (and offered) as one entry of 4 lines, which does not fit.
  send(h, w.conn, 'RDATA caches batch ["a"]\nRDATA caches batch ["b"]\n');
  send(h, w.conn, 'RDATA caches batch ["c"]\nRDATA caches 4 ["d"]\n');
  send(h, w.conn, rows('caches', [5]));
  assert.equal(s.conn.queuedCommands, 2);
  s.t.accepting = true;
  s.conn.drained();
  h.settle();
  assert.deepEqual(tokens(s.t.take()), ['1', '2', '3', 'batch', 'batch', 'batch', '4', '5', 'P5']);
});

test('a subscriber behind the log whose rows leave retention gets the too-old ERROR when it reads again', () => {
  const h = fakeHub({}, 150);
  const s = subscriber(h, 'REPLICATE events NOW');
  s.t.take();
  s.t.accepting = false;
  const w = writer(h);
  for (let token = 1; token <= 400; token++) send(h, w.conn, rows('events', [token]));
  assert.ok(s.conn.open, 'waiting for its socket');
  s.t.accepting = true;
  s.conn.drained();
  h.settle();
  assert.ok(!s.conn.open);
  const lines = s.t.take();
  assert.deepEqual(tokens(lines.slice(0, -1)), Array.from({ length: 101 }, (_, i) => String(i + 1)), 'the queued rows, then nothing skipped');
  assert.match(lines.at(-1)!, /^ERROR token 101 is older than the oldest retained token \d+ \(stream=events /);
  assert.equal(h.events.find((e) => e[0] === 'closed')?.[2], 'too_old');
});

test('a jump stream\'s subscriber whose rows left retention while behind jumps to the head with POSITION', () => {
  const h = fakeHub({ maxQueueCommands: 2 }, 3);
  const s = subscriber(h, 'REPLICATE typing NOW');
  s.t.take();
  s.t.accepting = false;
  const w = writer(h);
  // Row 1 goes to the socket, 2 and 3 are queued, 4 finds the queue full; by 12 retention holds 10 to 12.
  for (let token = 1; token <= 12; token++) send(h, w.conn, rows('typing', [token]));
  s.t.accepting = true;
  s.conn.drained();
  h.settle();
  assert.ok(s.conn.open);
  assert.deepEqual(tokens(s.t.take()), ['1', '2', '3', 'P12']);
});

test('a subscriber behind the log with nothing queued is still cut when its socket makes no progress for maxStallMs', () => {
  const h = fakeHub({ maxQueueCommands: 1, maxStallMs: 3_000, pingIntervalMs: 60_000, pingTimeoutMs: 120_000 });
  const s = subscriber(h, 'REPLICATE events NOW');
  s.t.take();
  const w = writer(h);
  s.t.accepting = false;
  send(h, w.conn, rows('events', [1]));
  send(h, w.conn, rows('events', [2]));
  s.conn.drained(); // progress: row 2 goes out, and the socket is full again
  h.settle();
  send(h, w.conn, rows('events', [3]));
  send(h, w.conn, rows('events', [4]));
  assert.equal(s.conn.queuedCommands, 1);
  s.conn.drained(); // row 3 goes out, row 4 is read from the log: nothing is queued
  h.settle();
  assert.equal(s.conn.queuedCommands, 0);
  h.advance(2_500);
  assert.ok(s.conn.open, 'progress 2.5 s ago');
  h.advance(1_000);
  assert.ok(!s.conn.open);
  assert.equal(s.t.take().at(-1), 'ERROR Failed to keep up');
  assert.equal((h.events.find((e) => e[0] === 'slowConsumer')?.[2] as { limit: string }).limit, 'stall');
});

test('a subscriber whose socket makes no progress for maxStallMs is cut', () => {
  const h = fakeHub({ maxStallMs: 3_000, pingIntervalMs: 60_000, pingTimeoutMs: 120_000 });
  const s = subscriber(h, 'REPLICATE events NOW');
  s.t.take();
  s.t.accepting = false;
  const w = writer(h);
  send(h, w.conn, rows('events', [1]));
  send(h, w.conn, rows('events', [2]));
  assert.equal(s.conn.queuedCommands, 1);
  h.advance(2_000);
  s.conn.drained(); // progress: the queued row goes out
  h.settle();
  send(h, w.conn, rows('events', [3]));
  h.advance(2_500);
  assert.ok(s.conn.open, 'progress 2.5 s ago');
  h.advance(1_000);
  assert.ok(!s.conn.open);
  assert.equal(s.t.take().at(-1), 'ERROR Failed to keep up');
  assert.equal((h.events.find((e) => e[0] === 'slowConsumer')?.[2] as { limit: string }).limit, 'stall');
});

test('a full socket that is still sending part of what it holds is not a stall; once it sends nothing for maxStallMs it is cut', () => {
  const h = fakeHub({ maxStallMs: 3_000, pingIntervalMs: 60_000, pingTimeoutMs: 120_000 });
  const s = subscriber(h, 'REPLICATE events NOW');
  s.t.take();
  s.t.accepting = false;
  s.t.unsent = 10_000;
  const w = writer(h);
  send(h, w.conn, rows('events', [1]));
  // A slow reader: the socket's unsent bytes fall a little every 2 s, never draining in that time.
  for (let i = 1; i <= 5; i++) {
    s.t.unsent -= 1_000;
    h.advance(2_000);
    assert.ok(s.conn.open, `sending at ${i * 2} s`);
  }
  h.advance(2_000);
  assert.ok(s.conn.open, '2 s after the last progress');
  h.advance(1_500);
  assert.ok(!s.conn.open);
  assert.equal((h.events.find((e) => e[0] === 'slowConsumer')?.[2] as { limit: string }).limit, 'stall');
});

test('connections past maxConnections are refused with ERROR and closed', () => {
  const h = fakeHub({ maxConnections: 2 });
  h.connect();
  h.connect();
  const third = h.connect();
  assert.deepEqual(third.t.take(), ['ERROR too many connections (limit 2); try again later']);
  assert.ok(third.t.ended);
  // Every disconnect pairs with a connection event, the refused one too.
  assert.equal(h.events.filter((e) => e[0] === 'opened').length, 3);
  assert.deepEqual(h.events.filter((e) => e[0] === 'closed').map((e) => e[2]), ['too_many_connections']);
});

test('a second AUTH on an authenticated connection is refused', () => {
  const h = fakeHub();
  const { conn, t } = h.connect();
  t.take();
  send(h, conn, 'AUTH w-secret\nAUTH w-caches\n');
  assert.deepEqual(t.take(), ['ERROR already authenticated as a writer']);
  assert.ok(t.ended);
});

test('no PING is queued behind rows while the socket is blocked', () => {
  const h = fakeHub();
  const { conn, t } = h.connect();
  send(h, conn, 'REPLICATE events NOW\n');
  t.accepting = false;
  h.hub.appendEncoded('events', 1, Buffer.from('RDATA events 1 [1]\n'), 1);
  h.settle();
  t.take();
  for (let i = 0; i < 5; i++) h.advance(5_000);
  assert.equal(conn.queuedCommands, 0);
  assert.deepEqual(t.take(), []);
  conn.drained();
  h.advance(5_000);
  assert.match(t.take().join('\n'), /^PING \d+$/);
});

test('an unfinished line held past lineTimeoutMs is cut, before or after the first PING, whatever the ping timeout', () => {
  const h = fakeHub({ lineTimeoutMs: 2_000, pingTimeoutMs: 120_000 });
  const quiet = h.connect();
  const pinged = h.connect();
  send(h, pinged.conn, 'PING 1\n');
  for (const c of [quiet, pinged]) {
    c.t.take();
    send(h, c.conn, 'NAME half');
  }
  h.advance(1_000);
  send(h, pinged.conn, '-and-more');
  h.advance(1_000);
  assert.ok(quiet.conn.open && pinged.conn.open, 'not past the timeout yet');
  h.advance(1_001);
  assert.deepEqual(quiet.t.take(), ['ERROR timed out in the middle of a line (9 bytes, no end of line for 2000 ms)']);
  assert.deepEqual(pinged.t.take(), ['ERROR timed out in the middle of a line (18 bytes, no end of line for 2000 ms)']);
  assert.deepEqual(h.events.filter((e) => e[0] === 'closed').map((e) => e[2]), ['line_timeout', 'line_timeout']);
});
