import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TodayRdata,
  TodayRowRoute,
  encodeTodayCommand,
  encodeTodayPosition,
  encodeTodayRow,
  isTodayRow,
  parseTodayCommand,
  routeTodayRow,
  type TodayCommand,
} from '../../../src/core/dialects/synapse-today.js';
import { ProtocolError, type ProtocolErrorCode } from '../../../src/core/errors.js';
import { loadRecording, publishes, recordingNames, synapsePublishes, todayRecordingsSkip } from '../../support/synapse-today.js';

function parse(line: string): TodayCommand {
  const buf = Buffer.from(line, 'utf8');
  return parseTodayCommand(buf, 0, buf.length);
}

function expectError(line: string, code: ProtocolErrorCode, message?: RegExp): void {
  assert.throws(
    () => parse(line),
    (err: unknown) => {
      assert.ok(err instanceof ProtocolError, `expected ProtocolError for ${JSON.stringify(line)}`);
      assert.equal(err.code, code, `${JSON.stringify(line)}: ${err.message}`);
      if (message) assert.match(err.message, message);
      return true;
    },
  );
}

describe("today's Synapse dialect against the recordings", { skip: todayRecordingsSkip() }, () => {
  test('every payload Synapse published parses, and encodes back to its bytes byte for byte (LF added)', () => {
    let count = 0;
    const names = new Set<string>();
    for (const name of recordingNames()) {
      for (const p of synapsePublishes(loadRecording(name))) {
        const cmd = parse(p.payload);
        names.add(cmd.name);
        assert.equal(encodeTodayCommand(cmd).toString('utf8'), `${p.payload}\n`, `${name} at ${p.t}`);
        count++;
      }
    }
    assert.ok(count > 2000, `only ${count} payloads`);
    assert.deepEqual(
      [...names].sort(),
      ['CANCEL_TASK', 'CLEAR_USER_SYNC', 'FEDERATION_ACK', 'LOCK_RELEASED', 'NEW_ACTIVE_TASK', 'POSITION', 'RDATA', 'REMOTE_SERVER_UP', 'REPLICATE', 'USER_IP', 'USER_SYNC'],
    );
  });

  test("every row's route names its stream, instance and token, and the row's JSON parses", () => {
    const route = new TodayRowRoute();
    for (const name of recordingNames()) {
      for (const p of synapsePublishes(loadRecording(name))) {
        const buf = Buffer.from(p.payload, 'utf8');
        if (!isTodayRow(buf, 0, buf.length)) {
          assert.ok(!p.payload.startsWith('RDATA '));
          continue;
        }
        routeTodayRow(buf, 0, buf.length, route);
        const [, stream, instance, token] = p.payload.split(' ');
        assert.equal(route.stream, stream);
        assert.equal(route.instance, instance);
        assert.equal(route.token, token === 'batch' ? null : Number(token));
        JSON.parse(buf.toString('utf8', route.rowStart));
      }
    }
  });

  test("file 09's foreign lines: 2017 forms are refused with a reason, REPLICATE with arguments is still a REPLICATE", () => {
    const foreign = publishes(loadRecording('09_follower_publish_hazards')).filter((p) => p.from === 'gateway_hazard_demo');
    const outcomes = foreign.map((p) => {
      try {
        return parse(p.payload).name;
      } catch (err) {
        return (err as ProtocolError).code;
      }
    });
    assert.deepEqual(outcomes, [
      'RDATA', // RDATA gw_custom gateway 5 ["x"]: well formed, an unknown stream is the follower's business
      'MISSING_ARGUMENTS', // RDATA events 1050 [...]: one word short (1050 would be the instance)
      'MISSING_ARGUMENTS', // POSITION events 1050
      'UNKNOWN_COMMAND', // SYNC 5
      'UNKNOWN_COMMAND', // INVALIDATE_CACHE ...
      'MISSING_ARGUMENTS', // USER_SYNC with three fields
      'REPLICATE', // REPLICATE events 1050
      'POSITION',
      'POSITION',
    ]);
  });
});

describe("today's Synapse dialect", () => {
  test('RDATA: numbered and batch rows keep the row JSON as a view of the line', () => {
    const line = 'RDATA events event_persister1 batch ["ev",["$s1:example.com","!hq:example.com","m.room.topic","",null,null,null,false,false]]';
    const cmd = parse(line);
    assert.ok(cmd instanceof TodayRdata);
    assert.equal(cmd.stream, 'events');
    assert.equal(cmd.instance, 'event_persister1');
    assert.equal(cmd.token, null);
    assert.deepEqual(cmd.row(), ['ev', ['$s1:example.com', '!hq:example.com', 'm.room.topic', '', null, null, null, false, false]]);
    const numbered = parse('RDATA caches master 5125 ["get_user_by_id",["@a:example.com"],1796162936303]');
    assert.ok(numbered instanceof TodayRdata);
    assert.equal(numbered.token, 5125);
  });

  test('POSITION carries the previous and the new token', () => {
    assert.deepEqual(parse('POSITION events event_persister2 1030 1031'), {
      name: 'POSITION',
      stream: 'events',
      instance: 'event_persister2',
      prevToken: 1030,
      newToken: 1031,
    });
  });

  test('USER_SYNC: None is no device', () => {
    const cmd = parse('USER_SYNC ASyHB @bridge_bot:example.com None start 1796163037451');
    assert.deepEqual(cmd, {
      name: 'USER_SYNC',
      instanceId: 'ASyHB',
      userId: '@bridge_bot:example.com',
      deviceId: null,
      state: 'start',
      lastSyncMs: 1796163037451,
    });
    assert.equal(encodeTodayCommand(cmd).toString(), 'USER_SYNC ASyHB @bridge_bot:example.com None start 1796163037451\n');
  });

  test('the bare REPLICATE keeps its trailing space', () => {
    assert.deepEqual(parse('REPLICATE '), { name: 'REPLICATE', args: '' });
    assert.equal(encodeTodayCommand({ name: 'REPLICATE', args: '' }).toString(), 'REPLICATE \n');
  });

  test('bad lines get an error that names what is wrong', () => {
    expectError('REPLICATE', 'MISSING_ARGUMENTS', /REPLICATE/);
    expectError('RDATA events 1 ["x"]', 'MISSING_ARGUMENTS', /<stream> <instance> <token\|batch> <row_json>/);
    expectError('RDATA events master x ["x"]', 'BAD_TOKEN', /bad token 'x' in RDATA: .* or batch/);
    expectError('RDATA events master', 'MISSING_ARGUMENTS', /<stream> <instance> <token\|batch> <row_json>/);
    expectError('RDATA events master 7 ', 'MISSING_ARGUMENTS');
    expectError('POSITION events master x 7', 'BAD_TOKEN', /'x'/);
    expectError('POSITION events master 7', 'MISSING_ARGUMENTS', /<prev_token> <new_token>/);
    expectError('USER_SYNC A @a:hs DEV maybe 1', 'BAD_ARGUMENT', /start or end/);
    expectError('USER_IP @a:hs ["tok"]', 'BAD_JSON', /access_token/);
    expectError('LOCK_RELEASED [1,', 'BAD_JSON', /LOCK_RELEASED/);
    expectError('NEW_ACTIVE_TASK a b', 'BAD_ARGUMENT', /too many arguments/);
    expectError('SYNC 5', 'UNKNOWN_COMMAND', /2017-dialect/);
    expectError('HELLO there', 'UNKNOWN_COMMAND', /'HELLO'/);
    expectError('CLEAR_USER_SYNC a\x01b', 'BAD_ARGUMENT', /control character/);
  });

  test('encodeTodayRow and encodeTodayPosition write the wire lines', () => {
    assert.equal(encodeTodayRow('typing', 'typing_writer1', 1, '["!hq:example.com",[]]').toString(), 'RDATA typing typing_writer1 1 ["!hq:example.com",[]]\n');
    assert.equal(encodeTodayRow('events', 'ep1', null, Buffer.from('["x"]')).toString(), 'RDATA events ep1 batch ["x"]\n');
    assert.equal(encodeTodayPosition('events', 'ep1', 7, 9).toString(), 'POSITION events ep1 7 9\n');
  });

  test('a line parses the same from inside a larger buffer', () => {
    const line = 'RDATA presence master 341 ["@alice:example.com","online",1,2,3,"caf\\u00e9",true]';
    const buf = Buffer.from(`xx${line}yy`);
    const cmd = parseTodayCommand(buf, 2, 2 + line.length);
    assert.equal(encodeTodayCommand(cmd).toString(), `${line}\n`);
  });
});
