import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError } from '../../src/core/errors.js';
import { MAX_HELD_GROUPS, SynapseFollower, type FollowerSink } from '../../src/core/synapse-follower.js';
import type { TodayCommand } from '../../src/core/dialects/synapse-today.js';
import { loadRecording, publishes, recordingNames, todayRecordingsSkip, type ObservedRdata, type Recording } from '../support/synapse-today.js';

interface Group {
  token: number;
  /** Resets of the pair before this group: tokens rise within one generation. */
  generation: number;
  rows: unknown[];
  lines: string[];
}

interface PairLog {
  started: number[];
  groups: Group[];
  descending: Group[];
  late: number[];
  gaps: [number, number][];
  resets: [number, number][];
  advances: number[];
}

/** A sink that keeps everything per pair, rows parsed back from the stored lines. */
class RecordingSink implements FollowerSink {
  readonly pairs = new Map<string, PairLog>();
  readonly commands: TodayCommand[] = [];
  readonly refusals: string[] = [];
  /** Every call in order, for the tests that read the sequence. */
  readonly calls: string[] = [];

  pair(stream: string, instance: string): PairLog {
    const key = `${stream}/${instance}`;
    let p = this.pairs.get(key);
    if (p === undefined) {
      p = { started: [], groups: [], descending: [], late: [], gaps: [], resets: [], advances: [] };
      this.pairs.set(key, p);
    }
    return p;
  }

  started(stream: string, instance: string, token: number): void {
    this.calls.push(`started ${stream} ${instance} ${token}`);
    this.pair(stream, instance).started.push(token);
  }
  group(stream: string, instance: string, token: number, bytes: Buffer, lines: number): void {
    this.calls.push(`group ${stream} ${instance} ${token}`);
    const p = this.pair(stream, instance);
    p.groups.push(toGroup(token, bytes, lines, p.resets.length));
  }
  advanced(stream: string, instance: string, token: number): void {
    this.calls.push(`advanced ${stream} ${instance} ${token}`);
    this.pair(stream, instance).advances.push(token);
  }
  gap(stream: string, instance: string, afterToken: number, uptoToken: number): void {
    this.calls.push(`gap ${stream} ${instance} ${afterToken} ${uptoToken}`);
    this.pair(stream, instance).gaps.push([afterToken, uptoToken]);
  }
  reset(stream: string, instance: string, fromToken: number, token: number): void {
    this.calls.push(`reset ${stream} ${instance} ${fromToken} ${token}`);
    this.pair(stream, instance).resets.push([fromToken, token]);
  }
  descending(stream: string, instance: string, token: number, bytes: Buffer, lines: number): void {
    this.calls.push(`descending ${stream} ${instance} ${token}`);
    const p = this.pair(stream, instance);
    p.descending.push(toGroup(token, bytes, lines, p.resets.length));
  }
  late(stream: string, instance: string, token: number): void {
    this.calls.push(`late ${stream} ${instance} ${token}`);
    this.pair(stream, instance).late.push(token);
  }
  command(cmd: TodayCommand): void {
    this.calls.push(`command ${cmd.name}`);
    this.commands.push(cmd);
  }
  refused(line: Buffer, err: ProtocolError): void {
    this.calls.push(`refused ${err.code}`);
    this.refusals.push(line.toString());
  }
}

function toGroup(token: number, bytes: Buffer, lines: number, generation: number): Group {
  const text = bytes.toString('utf8').split('\n');
  assert.equal(text.pop(), '', 'a group ends in LF');
  assert.equal(text.length, lines);
  const rows = text.map((l) => JSON.parse(l.split(' ').slice(4).join(' ')) as unknown);
  return { token, generation, rows, lines: text };
}

function feed(follower: SynapseFollower, payload: string): void {
  follower.line(Buffer.from(`${payload}\n`, 'utf8'));
}

/** Replays a recording's publishes; `heard(t)` says whether the follower's subscription was up at t. */
function replay(r: Recording, options: { heard?: (t: number) => boolean; reconnectAt?: number } = {}): { sink: RecordingSink; follower: SynapseFollower } {
  const sink = new RecordingSink();
  const follower = new SynapseFollower(sink);
  let reconnected = options.reconnectAt === undefined;
  for (const p of publishes(r)) {
    if (!reconnected && p.t >= options.reconnectAt!) {
      follower.connected();
      reconnected = true;
    }
    if (p.channel !== r.server_name) continue;
    if (options.heard !== undefined && !options.heard(p.t)) continue;
    feed(follower, p.payload);
  }
  return { sink, follower };
}

function inGap(log: PairLog | undefined, token: number): boolean {
  return log !== undefined && log.gaps.some(([after, upto]) => token > after && token <= upto);
}

/** Every row a Synapse process applied (live or fetched) is stored by the follower at its token, or lies in a gap it reported. */
function assertObservedCovered(r: Recording, sink: RecordingSink): void {
  for (const o of r.observed) {
    if (o.kind !== 'rdata') continue;
    const ob = o as ObservedRdata;
    const log = sink.pairs.get(`${ob.stream}/${ob.instance}`);
    const stored = log?.groups.filter((g) => g.token === ob.token) ?? [];
    const descending = log?.descending.filter((g) => g.token === ob.token) ?? [];
    const all = [...stored, ...descending].flatMap((g) => g.rows);
    if (all.length === 0) {
      assert.ok(inGap(log, ob.token), `${r.name}: ${ob.process}'s ${ob.via} row ${ob.stream}/${ob.instance} ${ob.token} neither stored nor in a gap`);
      continue;
    }
    for (const row of ob.rows) {
      assert.ok(
        all.some((stored) => JSON.stringify(stored) === JSON.stringify(row)),
        `${r.name}: ${ob.stream}/${ob.instance} ${ob.token}: ${JSON.stringify(row)} not among the stored rows`,
      );
    }
  }
}

function assertRisingOnce(r: Recording, sink: RecordingSink): void {
  for (const [key, log] of sink.pairs) {
    for (let i = 1; i < log.groups.length; i++) {
      if (log.groups[i]!.generation !== log.groups[i - 1]!.generation) continue;
      assert.ok(log.groups[i]!.token > log.groups[i - 1]!.token, `${r.name}: ${key} stored ${log.groups[i - 1]!.token} then ${log.groups[i]!.token}`);
    }
    assert.ok(log.started.length <= 1, `${r.name}: ${key} started twice`);
  }
}

describe('the Synapse follower against the recordings', { skip: todayRecordingsSkip() }, () => {
  test('a follower subscribed from the start ends at the positions Synapse announced, per (stream, instance)', () => {
    for (const name of recordingNames()) {
      const r = loadRecording(name);
      const { follower } = replay(r);
      const held = new Map(follower.status().map((s) => [`${s.stream}/${s.instance}`, s]));
      for (const [stream, byInstance] of Object.entries(r.wire_final_positions)) {
        for (const [instance, token] of Object.entries(byInstance)) {
          const s = held.get(`${stream}/${instance}`);
          assert.equal(s?.token, token, `${name}: ${stream}/${instance}`);
          assert.equal(s.heldGroups, 0, `${name}: ${stream}/${instance} still holds rows`);
        }
      }
    }
  });

  test('every row any Synapse process applied is stored once, in token order per pair, or in a reported gap', () => {
    for (const name of recordingNames()) {
      const r = loadRecording(name);
      const { sink } = replay(r);
      assertRisingOnce(r, sink);
      assertObservedCovered(r, sink);
    }
  });

  test('only the writer cut off from Redis (04) leaves a gap; the live recordings leave none', () => {
    for (const name of recordingNames()) {
      const { sink } = replay(loadRecording(name));
      const gaps = [...sink.pairs].filter(([, log]) => log.gaps.length > 0).map(([key, log]) => [key, log.gaps]);
      // Rows 421 to 424 were written while the writer was cut off; its POSITION 424 424 after the reconnect shows it.
      if (name.startsWith('04_')) assert.deepEqual(gaps, [['to_device/to_device_writer1', [[420, 424]]]]);
      else assert.deepEqual(gaps, [], name);
    }
  });

  test('02: a batch is one group; caches come before the events of the same write; the second backfill row is kept as descending', () => {
    const { sink } = replay(loadRecording('02_live_multiwriter_events_and_caches'));
    const ep1 = sink.pairs.get('events/event_persister1')!;
    const topic = ep1.groups.find((g) => g.token === 1034)!;
    assert.equal(topic.lines.length, 2);
    assert.match(topic.lines[0]!, /^RDATA events event_persister1 batch /);
    assert.match(topic.lines[1]!, /^RDATA events event_persister1 1034 \["state"/);
    // The rolled-back persist's token (1043) is only an advance, no gap.
    assert.ok(ep1.advances.includes(1043));
    const bf = sink.pairs.get('backfill/event_persister2')!;
    assert.deepEqual(bf.groups.map((g) => g.token), [7]);
    assert.deepEqual(bf.descending.map((g) => [g.token, g.lines[0]]), [
      [6, 'RDATA backfill event_persister2 6 ["$bf1:remote.example.net","!dev:example.com","m.room.message",null,null,null]'],
    ]);
    // Stored right after the row it descends from, before the POSITION that follows them.
    const at = sink.calls.indexOf('group backfill event_persister2 7');
    assert.equal(sink.calls[at + 1], 'descending backfill event_persister2 6');
    assert.deepEqual(bf.late, []);
    const cachesAt = sink.calls.indexOf('group caches event_persister2 5121');
    const joinAt = sink.calls.findIndex((c, i) => i > cachesAt && c.startsWith('group events '));
    assert.ok(cachesAt >= 0 && joinAt > cachesAt);
  });

  test('05: the restarted typing writer is a reset from 6 to 0, and its new rows start again at 1', () => {
    const { sink } = replay(loadRecording('05_typing_writer_restart_reset'));
    const typing = sink.pairs.get('typing/typing_writer1')!;
    assert.deepEqual(typing.resets, [[6, 0]]);
    const resetAt = sink.calls.indexOf('reset typing typing_writer1 6 0');
    const after = sink.calls.slice(resetAt).filter((c) => c.startsWith('group typing '));
    assert.equal(after[0], 'group typing typing_writer1 1');
    assert.deepEqual(typing.late, []);
    assert.deepEqual(typing.descending, []);
  });

  test('06: the non-stream commands reach the sink as commands; USER_IP is not on the channel the follower reads', () => {
    const { sink } = replay(loadRecording('06_non_stream_commands'));
    const names = new Set(sink.commands.map((c) => c.name));
    for (const n of ['USER_SYNC', 'CLEAR_USER_SYNC', 'REMOTE_SERVER_UP', 'LOCK_RELEASED', 'NEW_ACTIVE_TASK', 'CANCEL_TASK', 'REPLICATE', 'FEDERATION_ACK']) {
      assert.ok(names.has(n as TodayCommand['name']), n);
    }
    assert.ok(!names.has('USER_IP'));
    assert.deepEqual(sink.refusals, []);
  });

  test("09: foreign 2017 lines are refused, never stored; the hazard's phantom instance is its own pair", () => {
    const { sink } = replay(loadRecording('09_follower_publish_hazards'));
    assert.deepEqual(sink.refusals, [
      'RDATA events 1050 ["$old:example.com","!hq:example.com","m.room.message",null,null]\n',
      'POSITION events 1050\n',
      'SYNC 5\n',
      'INVALIDATE_CACHE get_user_by_id ["@alice:example.com"]\n',
      'USER_SYNC @alice:example.com start 1796162600000\n',
    ]);
    assert.deepEqual(sink.pairs.get('events/gateway')?.started, [1]);
    assert.deepEqual(sink.pairs.get('events/event_persister1')?.gaps, []);
  });

  test("07 replayed with the follower's own subscription down while synchrotron1's was: the gaps are the ranges Synapse fetched", () => {
    const r = loadRecording('07_sync_worker_reconnect_gap_fill');
    const cutAt = r.events.find((e) => e.kind === 'note' && e.text.startsWith('network between synchrotron1 and Redis cut'))!.t;
    const subscribedAt = r.events.find((e) => e.kind === 'redis' && e.from === 'synchrotron1/subscriber' && e.t > cutAt)!.t;
    const { sink, follower } = replay(r, { heard: (t) => t < cutAt || t >= subscribedAt, reconnectAt: subscribedAt });
    const fetchedFrom = new Map<string, number>();
    for (const o of r.observed) {
      if (o.kind !== 'fetch' || o.process !== 'synchrotron1') continue;
      const key = `${String(o['stream'])}/${String(o['instance'])}`;
      if (!fetchedFrom.has(key)) fetchedFrom.set(key, o['from_token'] as number);
    }
    const gaps = new Map([...sink.pairs].filter(([, l]) => l.gaps.length > 0).map(([key, l]) => [key, l.gaps]));
    const unheardStreams = new Set(
      publishes(r)
        .filter((p) => p.t >= cutAt && p.t < subscribedAt && p.payload.startsWith('RDATA '))
        .map((p) => p.payload.split(' ')[1]),
    );
    for (const key of fetchedFrom.keys()) assert.ok(gaps.has(key), `synchrotron1 fetched ${key}, the follower reported no gap`);
    for (const [key, list] of gaps) {
      assert.equal(list.length, 1, key);
      const from = fetchedFrom.get(key);
      if (from !== undefined) assert.equal(list[0]![0], from, `${key}: the gap starts where synchrotron1 fetched from`);
      // A gap Synapse did not fetch (caches: one sequence for all its writers) is on a stream that had rows while we were away.
      else assert.ok(unheardStreams.has(key.split('/')[0]), `${key}: a gap on a stream with no unheard rows`);
    }
    // Live rows heard after the reconnect (presence 458 came before its POSITION) are held, then stored.
    assert.ok(sink.pairs.get('presence/master')!.groups.some((g) => g.token === 458));
    assertRisingOnce(r, sink);
    const observedSynchrotron: Recording = { ...r, observed: r.observed.filter((o) => o.process === 'synchrotron1') };
    assertObservedCovered(observedSynchrotron, sink);
    for (const s of follower.status()) assert.equal(s.heldGroups, 0, `${s.stream}/${s.instance}`);
  });
});

describe('the Synapse follower', () => {
  function follow(): { sink: RecordingSink; follower: SynapseFollower; send: (...p: string[]) => void } {
    const sink = new RecordingSink();
    const follower = new SynapseFollower(sink);
    return { sink, follower, send: (...payloads) => payloads.forEach((p) => feed(follower, p)) };
  }

  test('rows before the pair\'s first POSITION are held, then stored; the history starts just before them', () => {
    const { sink, send } = follow();
    send('RDATA presence master 341 ["@a:hs"]', 'POSITION presence master 341 341');
    assert.deepEqual(sink.calls, ['started presence master 340', 'group presence master 341']);
  });

  test('a first POSITION with nothing held starts the history at its prev', () => {
    const { sink, send } = follow();
    send('POSITION receipts master 70 77');
    assert.deepEqual(sink.calls, ['started receipts master 70', 'advanced receipts master 77']);
  });

  test('a batch cut by a reconnect is dropped, and the POSITION that follows reports the gap', () => {
    const { sink, follower, send } = follow();
    send('POSITION events ep1 10 10', 'RDATA events ep1 batch ["a"]');
    follower.connected();
    send('POSITION events ep1 11 11', 'RDATA events ep1 batch ["b"]', 'RDATA events ep1 12 ["c"]');
    assert.deepEqual(sink.calls, ['started events ep1 10', 'gap events ep1 10 11', 'group events ep1 12']);
    assert.deepEqual(sink.pairs.get('events/ep1')!.groups[0]!.rows, [['b'], ['c']]);
  });

  test('rows descending right after stored rows are kept in arrival order; a row at or below the position after anything else is late, not kept', () => {
    const { sink, send } = follow();
    send('POSITION backfill ep2 4 4', 'RDATA backfill ep2 7 ["a"]', 'RDATA backfill ep2 batch ["b1"]', 'RDATA backfill ep2 6 ["b2"]', 'RDATA backfill ep2 5 ["c"]');
    // The same token again, or one above the last descending row, is a replay.
    send('RDATA backfill ep2 5 ["c"]', 'RDATA backfill ep2 6 ["b2"]');
    // After a POSITION nothing descends: the rows before it are history.
    send('POSITION backfill ep2 5 7', 'RDATA backfill ep2 3 ["d"]', 'RDATA backfill ep2 8 ["e"]', 'POSITION backfill ep1 1 2', 'RDATA backfill ep2 2 ["f"]');
    assert.deepEqual(sink.calls, [
      'started backfill ep2 4',
      'group backfill ep2 7',
      'descending backfill ep2 6',
      'descending backfill ep2 5',
      'late backfill ep2 5',
      'late backfill ep2 6',
      'late backfill ep2 3',
      'group backfill ep2 8',
      'started backfill ep1 1',
      'advanced backfill ep1 2',
      // Another writer's POSITION is not this pair's: 2 still descends from 8.
      'descending backfill ep2 2',
    ]);
    assert.deepEqual(sink.pairs.get('backfill/ep2')!.descending.map((g) => g.rows), [[['b1'], ['b2']], [['c']], [['f']]]);
  });

  test('a reconnect ends a descending run: a row below the position on the new subscription is late', () => {
    const { sink, follower, send } = follow();
    send('POSITION backfill ep2 4 4', 'RDATA backfill ep2 7 ["a"]');
    follower.connected();
    send('POSITION backfill ep2 7 7', 'RDATA backfill ep2 6 ["b"]');
    assert.deepEqual(sink.calls.slice(-1), ['late backfill ep2 6']);
  });

  test('batches are held per (stream, instance): two writers interleaving their batches stay apart', () => {
    const { sink, send } = follow();
    send('POSITION events ep1 1 1', 'POSITION events ep2 1 1');
    send('RDATA events ep1 batch ["a1"]', 'RDATA events ep2 batch ["b1"]', 'RDATA events ep1 2 ["a2"]', 'RDATA events ep2 3 ["b2"]');
    assert.deepEqual(sink.pairs.get('events/ep1')!.groups.map((g) => g.rows), [[['a1'], ['a2']]]);
    assert.deepEqual(sink.pairs.get('events/ep2')!.groups.map((g) => g.rows), [[['b1'], ['b2']]]);
  });

  test('a POSITION whose prev is above the held token is a gap, reported before the advance', () => {
    const { sink, send } = follow();
    send('POSITION to_device w 420 420', 'POSITION to_device w 423 424');
    assert.deepEqual(sink.calls.slice(1), ['gap to_device w 420 423', 'advanced to_device w 424']);
  });

  test("a prev moved past other writers' rows of the stream is no gap; past a token nobody was heard using, it is", () => {
    const { sink, send } = follow();
    send('POSITION caches ep1 5120 5120', 'POSITION caches tw1 5120 5120');
    send('RDATA caches tw1 5121 ["get_users_in_room",["!hq:hs"],1]', 'POSITION caches ep1 5121 5121');
    assert.deepEqual(sink.pairs.get('caches/ep1')!.gaps, []);
    send('POSITION caches ep1 5123 5123');
    assert.deepEqual(sink.pairs.get('caches/ep1')!.gaps, [[5121, 5123]]);
  });

  test('a pair the store already holds resumes without a gap when the writer is where it was', () => {
    const { sink, follower, send } = follow();
    follower.known('caches', 'master', 5125);
    send('POSITION caches master 5125 5125', 'RDATA caches master 5126 ["x",null,1]');
    assert.deepEqual(sink.calls, ['group caches master 5126']);
  });

  test('too many rows held without a POSITION go through, the hole before them reported', () => {
    const { sink, follower, send } = follow();
    follower.known('typing', 't1', 5);
    for (let i = 0; i < MAX_HELD_GROUPS; i++) send(`RDATA typing t1 ${100 + i} ["r"]`);
    assert.equal(sink.calls[0], 'gap typing t1 5 99');
    assert.equal(sink.pairs.get('typing/t1')!.groups.length, MAX_HELD_GROUPS);
    assert.equal(follower.status()[0]!.confirmed, true);
  });
});
