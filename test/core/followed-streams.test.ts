// Serving the streams followed from a current Synapse deployment, over
// memory logs as synapse-history hands them to the hub: the three-argument
// REPLICATE (catch-up, live, `*`, resets, refusals) and v1 subscribers of a
// single-writer stream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { advanceEntry, MemoryStreamLog, type LogEntry } from '../../src/core/stream-log.js';
import { fakeHub, send, type FakeHub } from './support/fake-hub.js';

/** One stored group: today's lines of one token (a batch is several). */
function group(token: number, lines: string[]): LogEntry {
  return { firstToken: token, lastToken: token, bytes: Buffer.from(lines.map((l) => `${l}\n`).join('')), lines: lines.length, rows: lines.length };
}

const EV = (instance: string, token: number | 'batch', id: string): string => `RDATA events ${instance} ${token} ["ev",["$${id}:example.com","!hq:example.com","m.room.message",null,null,null,null,false,false]]`;
const TY = (token: number, users: string[]): string => `RDATA typing typing_writer1 ${token} ["!hq:example.com",${JSON.stringify(users)}]`;

/** A hub whose declared streams do not include the followed ones, with pair logs as synapse-history makes them. */
function followingHub(): { h: FakeHub; pair: (stream: string, instance: string, start: number) => MemoryStreamLog } {
  const h = fakeHub({
    streams: ['caches'],
    credentials: [
      { secret: 'w-secret', role: 'writer' },
      { secret: 'typing-only', role: 'subscriber', streams: ['typing'] },
    ],
  });
  const followed = h.hub.followed();
  return {
    h,
    pair: (stream, instance, start) => {
      const log = new MemoryStreamLog({ startToken: start });
      followed.pairLog(stream, instance, log);
      return log;
    },
  };
}

function subscriber(h: FakeHub, line: string) {
  const s = h.connect();
  s.t.take();
  send(h, s.conn, `${line}\n`);
  return s;
}

test('REPLICATE <stream> <instance> <token>: the stored lines after it byte for byte, POSITION s i head head, then live rows and advances', () => {
  const { h, pair } = followingHub();
  const log = pair('events', 'event_persister1', 1030);
  log.append(group(1031, [EV('event_persister1', 1031, 'm1')]));
  log.append(group(1033, [EV('event_persister1', 1033, 'm3')]));
  log.append(advanceEntry(1036));
  log.append(group(1038, [EV('event_persister1', 'batch', 's1'), EV('event_persister1', 1038, 's2')]));

  const s = subscriber(h, 'REPLICATE events event_persister1 1031');
  assert.deepEqual(s.t.take(), [EV('event_persister1', 1033, 'm3'), EV('event_persister1', 'batch', 's1'), EV('event_persister1', 1038, 's2'), 'POSITION events event_persister1 1038 1038']);

  log.append(group(1040, [EV('event_persister1', 1040, 'm4')]));
  log.append(advanceEntry(1043));
  h.settle();
  assert.deepEqual(s.t.take(), [EV('event_persister1', 1040, 'm4'), 'POSITION events event_persister1 1043 1043']);

  const now = subscriber(h, 'REPLICATE events event_persister1 NOW');
  assert.deepEqual(now.t.take(), ['POSITION events event_persister1 1043 1043']);
  // 0: from the start of the gateway's history.
  const all = subscriber(h, 'REPLICATE events event_persister1 0');
  assert.equal(all.t.take().length, 6);
  assert.deepEqual(s.conn.subscriptions(), [{ stream: 'events', instance: 'event_persister1', catchingUp: false, lastToken: 1043 }]);
});

test('REPLICATE <stream> * <token>: every writer instance from that token, and an instance that appears later from its start', () => {
  const { h, pair } = followingHub();
  const one = pair('events', 'event_persister1', 1030);
  one.append(group(1031, [EV('event_persister1', 1031, 'a')]));
  const s = subscriber(h, 'REPLICATE events * 0');
  assert.deepEqual(s.t.take(), [EV('event_persister1', 1031, 'a'), 'POSITION events event_persister1 1031 1031']);

  const two = new MemoryStreamLog({ startToken: 1031 });
  two.append(group(1032, [EV('event_persister2', 1032, 'b')]));
  h.hub.followed().pairLog('events', 'event_persister2', two);
  h.settle();
  assert.deepEqual(s.t.take(), [EV('event_persister2', 1032, 'b'), 'POSITION events event_persister2 1032 1032']);
  one.append(group(1033, [EV('event_persister1', 1033, 'c')]));
  two.append(advanceEntry(1033));
  h.settle();
  assert.deepEqual(s.t.take(), [EV('event_persister1', 1033, 'c'), 'POSITION events event_persister2 1033 1033']);

  // A stream with no writer yet is waited for, and `NOW` joins each pair at its head.
  const waiting = subscriber(h, 'REPLICATE typing * NOW');
  assert.deepEqual(waiting.t.take(), []);
  const typing = pair('typing', 'typing_writer1', 5);
  h.settle();
  assert.deepEqual(waiting.t.take(), ['POSITION typing typing_writer1 5 5']);
  typing.append(group(6, [TY(6, ['@a:example.com'])]));
  h.settle();
  assert.deepEqual(waiting.t.take(), [TY(6, ['@a:example.com'])]);
  const heads = subscriber(h, 'REPLICATE events * NOW');
  assert.deepEqual(heads.t.take(), ['POSITION events event_persister1 1033 1033', 'POSITION events event_persister2 1033 1033']);
});

test('a reset moves live and catching-up subscribers to the new generation with POSITION at its start; a token above the head joins at the head', () => {
  const { h, pair } = followingHub();
  const old = pair('typing', 'typing_writer1', 0);
  for (let t = 1; t <= 6; t++) old.append(group(t, [TY(t, [`@u${t}:example.com`])]));
  const live = subscriber(h, 'REPLICATE typing typing_writer1 6');
  assert.deepEqual(live.t.take(), ['POSITION typing typing_writer1 6 6']);
  const slow = h.connect();
  slow.t.take();
  slow.t.accepting = false;
  send(h, slow.conn, 'REPLICATE typing typing_writer1 0\n');
  assert.equal(slow.t.take().length, 6, 'the rows, then the socket is full before the POSITION');
  assert.equal(slow.conn.subscriptions()[0]!.catchingUp, true);

  const next = new MemoryStreamLog({ startToken: 0 });
  h.hub.followed().pairLog('typing', 'typing_writer1', next);
  h.settle();
  assert.deepEqual(live.t.take(), ['POSITION typing typing_writer1 0 0']);
  next.append(group(1, [TY(1, ['@new:example.com'])]));
  old.append(group(7, [TY(7, ['@stale:example.com'])]));
  h.settle();
  assert.deepEqual(live.t.take(), [TY(1, ['@new:example.com'])], 'the old generation is not heard any more');
  slow.t.accepting = true;
  slow.conn.drained();
  h.settle();
  assert.deepEqual(slow.t.take(), ['POSITION typing typing_writer1 0 0', TY(1, ['@new:example.com'])]);

  // A subscriber of the old generation comes back with its token: the head, and the live rows.
  const back = subscriber(h, 'REPLICATE typing typing_writer1 6');
  assert.deepEqual(back.t.take(), ['POSITION typing typing_writer1 1 1']);
  next.append(group(2, [TY(2, [])]));
  h.settle();
  assert.deepEqual(back.t.take(), [TY(2, [])]);
});

test('refusals: too old (or before a gap), unknown instance, unknown followed stream, a read list, a bad name', () => {
  const { h, pair } = followingHub();
  const log = pair('events', 'event_persister1', 1030);
  pair('events', 'event_persister2', 1030);
  log.append(group(1031, [EV('event_persister1', 1031, 'a')]));
  const refused = (line: string): string[] => {
    const s = subscriber(h, line);
    assert.ok(s.t.ended, `${line} closes the connection`);
    return s.t.take();
  };
  assert.deepEqual(refused('REPLICATE events event_persister1 1000'), [
    'ERROR token 1000 is older than the oldest retained token 1030 (stream=events instance=event_persister1 oldest=1030 head=1031)',
  ]);
  log.restartAt(1040);
  assert.deepEqual(refused('REPLICATE events event_persister1 1031'), [
    'ERROR token 1031 is older than the oldest retained token 1040 (stream=events instance=event_persister1 oldest=1040 head=1040)',
  ]);
  assert.deepEqual(refused('REPLICATE events event_persister3 5'), [
    'ERROR stream events has no writer instance event_persister3: its instances are event_persister1, event_persister2; ask for one of them, or REPLICATE events * <token|NOW> for all',
  ]);
  assert.deepEqual(refused('REPLICATE evnets master 5'), [
    'ERROR unknown followed Synapse stream: evnets (the followed streams are events); REPLICATE evnets * <token|NOW> waits for its writers',
  ]);
  assert.deepEqual(refused('REPLICATE events ev/1 5'), [
    "ERROR bad instance name 'ev/1' in REPLICATE: expected letters, digits, '_', '.', '-' (REPLICATE <stream> <instance|*> <token|NOW>)",
  ]);
  const reader = h.connect();
  send(h, reader.conn, 'AUTH typing-only\nREPLICATE events * NOW\n');
  assert.deepEqual(reader.t.take().slice(-1), ['ERROR not permitted to read stream events']);
});

test('a gateway that follows no Synapse deployment refuses the three-argument REPLICATE, saying what it needs', () => {
  const h = fakeHub();
  const s = subscriber(h, 'REPLICATE events event_persister1 NOW');
  assert.deepEqual(s.t.take(), [
    'ERROR this gateway follows no Synapse deployment: REPLICATE with an instance needs serve --synapse-redis; its streams (events, caches, typing) are asked for with REPLICATE <stream> <token|NOW>',
  ]);
  assert.ok(s.t.ended);
});

test('v1 subscribers of a followed single-writer stream get v1 lines (instance dropped, batches kept); a second writer refuses them', () => {
  const { h, pair } = followingHub();
  const log = pair('events', 'event_persister1', 1030);
  log.append(group(1031, [EV('event_persister1', 1031, 'a')]));
  log.append(group(1034, [EV('event_persister1', 'batch', 'b'), EV('event_persister1', 1034, 'c')]));
  const v1 = subscriber(h, 'REPLICATE events 1030');
  const v1Line = (line: string): string => line.replace(' event_persister1 ', ' ');
  assert.deepEqual(v1.t.take(), [v1Line(EV('event_persister1', 1031, 'a')), v1Line(EV('event_persister1', 'batch', 'b')), v1Line(EV('event_persister1', 1034, 'c')), 'POSITION events 1034']);
  const v1Late = subscriber(h, 'REPLICATE events NOW');
  assert.deepEqual(v1Late.t.take(), ['POSITION events 1034']);
  const today = subscriber(h, 'REPLICATE events event_persister1 NOW');
  today.t.take();
  log.append(group(1035, [EV('event_persister1', 1035, 'd')]));
  log.append(advanceEntry(1037));
  h.settle();
  assert.deepEqual(v1.t.take(), [v1Line(EV('event_persister1', 1035, 'd')), 'POSITION events 1037']);
  assert.deepEqual(v1Late.t.take(), [v1Line(EV('event_persister1', 1035, 'd')), 'POSITION events 1037']);
  assert.deepEqual(today.t.take(), [EV('event_persister1', 1035, 'd'), 'POSITION events event_persister1 1037 1037'], 'today subscribers keep the stored bytes');
  // REPLICATE ALL keeps meaning the declared streams.
  const all = subscriber(h, 'REPLICATE ALL NOW');
  assert.deepEqual(all.t.take(), ['POSITION caches 0']);

  pair('events', 'event_persister2', 1037);
  h.settle();
  const refusal = 'ERROR stream events has 2 writer instances (event_persister1, event_persister2): ask for one with REPLICATE events <instance> <token> (or * for all)';
  assert.deepEqual(v1.t.take(), [refusal]);
  assert.deepEqual(v1Late.t.take(), [refusal]);
  assert.ok(v1.t.ended && v1Late.t.ended);
  assert.ok(today.conn.open, 'a today subscriber goes on');
  const again = subscriber(h, 'REPLICATE events 1037');
  assert.deepEqual(again.t.take(), [refusal]);
});

test('a live pair subscriber whose socket is full falls behind and reads the rest from the log, in order, once; a v1 one gets them transcoded', () => {
  const { h, pair } = followingHub();
  const log = pair('typing', 'typing_writer1', 0);
  const today = subscriber(h, 'REPLICATE typing typing_writer1 NOW');
  const v1 = subscriber(h, 'REPLICATE typing NOW');
  today.t.take();
  v1.t.take();
  for (const s of [today, v1]) s.t.accepting = false;
  // More than the queue holds (100 commands): both fall behind instead of being cut.
  const tokens = Array.from({ length: 250 }, (_, i) => i + 1);
  for (const t of tokens) {
    log.append(group(t, [TY(t, [`@u${t}:example.com`])]));
    h.settle();
  }
  assert.ok(today.conn.open && v1.conn.open);
  for (let i = 0; i < 20; i++) {
    for (const s of [today, v1]) {
      s.t.accepting = true;
      s.conn.drained();
    }
    h.settle();
  }
  assert.deepEqual(today.t.take(), [...tokens.map((t) => TY(t, [`@u${t}:example.com`])), 'POSITION typing typing_writer1 250 250']);
  assert.deepEqual(v1.t.take(), [...tokens.map((t) => TY(t, [`@u${t}:example.com`]).replace(' typing_writer1 ', ' ')), 'POSITION typing 250']);
  // Credentials: a read list naming the stream lets it through.
  const reader = h.connect();
  send(h, reader.conn, 'AUTH typing-only\nREPLICATE typing * NOW\n');
  assert.deepEqual(reader.t.take().slice(-1), ['POSITION typing typing_writer1 250 250']);
});
