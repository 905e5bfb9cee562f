import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RelayStore, encodeRun, type RelayRow, type RelaySink } from '../../src/core/relay-store.js';

/** A sink that records what a relay would store, as text. */
function sink(): RelaySink & { stored: string[]; heads: Map<string, number> } {
  const heads = new Map<string, number>();
  const stored: string[] = [];
  return {
    stored,
    heads,
    head: (s) => heads.get(s) ?? 0,
    append(s, token, bytes, rows) {
      assert.ok(token > (heads.get(s) ?? 0), `token ${token} rises`);
      heads.set(s, token);
      stored.push(`${token}/${rows}: ${bytes.toString('utf8')}`);
    },
    advance(s, token) {
      heads.set(s, token);
      stored.push(`POSITION ${token}`);
    },
    restart(s, token) {
      assert.ok(token >= (heads.get(s) ?? 0), `restart at ${token} is not below the head`);
      heads.set(s, token);
      stored.push(`RESTART ${token}`);
    },
  };
}

/** A row as the client delivers it: `RDATA <stream> <token|batch> <json>`. */
function row(stream: string, token: number | null, json: string): RelayRow {
  const line = Buffer.from(`RDATA ${stream} ${token ?? 'batch'} ${json}`);
  return { token, line, json: line.subarray(line.length - Buffer.byteLength(json)) };
}

describe('RelayStore', () => {
  it('stores a Synapse catch-up run of one token as one batch, at the POSITION that ends it', () => {
    const out = sink();
    const store = new RelayStore(out, ['caches']);
    store.connectionOpened();
    store.rows('caches', 3, [row('caches', 3, '["a"]')], 0);
    store.rows('caches', 3, [row('caches', 3, '["b"]')], 0);
    store.rows('caches', 3, [row('caches', 3, '["c"]')], 0);
    assert.deepEqual(out.stored, [], 'nothing stored while the run may go on');
    store.rows('caches', 4, [row('caches', 4, '["d"]')], 0);
    assert.deepEqual(out.stored, [], 'catch-up is held to its POSITION');
    store.position('caches', 4);
    assert.deepEqual(out.stored, [
      '3/3: RDATA caches batch ["a"]\nRDATA caches batch ["b"]\nRDATA caches 3 ["c"]\n',
      '4/1: RDATA caches 4 ["d"]\n',
    ]);
    assert.equal(store.synced, true);
  });

  it('drops what it holds when the streams are to be followed again from the stored heads', () => {
    const out = sink();
    const store = new RelayStore(out, ['caches']);
    store.connectionOpened();
    store.rows('caches', 3, [row('caches', 3, '["a"]')], 0);
    store.connectionLost();
    assert.equal(store.lag(0)[0]!.heldRows, 1, 'an open run stays held across a drop');
    store.dropHeld();
    assert.equal(store.lag(0)[0]!.heldRows, 0);
    store.connectionOpened();
    store.rows('caches', 3, [row('caches', 3, '["a"]')], 0);
    store.rows('caches', 3, [row('caches', 3, '["b"]')], 0);
    store.position('caches', 3);
    assert.deepEqual(out.stored, ['3/2: RDATA caches batch ["a"]\nRDATA caches 3 ["b"]\n'], 'the run sent again is stored once');
  });

  it('stores live rows at once, framed batches whole and byte for byte', () => {
    const out = sink();
    const store = new RelayStore(out, ['caches']);
    store.connectionOpened();
    store.position('caches', 0);
    store.rows('caches', 1, [row('caches', null, '["x"]'), row('caches', 1, '["y"]')], 0);
    store.rows('caches', 2, [row('caches', 2, '["z"]')], 0);
    assert.deepEqual(out.stored, ['1/2: RDATA caches batch ["x"]\nRDATA caches 1 ["y"]\n', '2/1: RDATA caches 2 ["z"]\n']);
  });

  it('sorts a catch-up that is not in token order (account_data) before storing it', () => {
    const out = sink();
    const store = new RelayStore(out, ['account_data']);
    store.connectionOpened();
    for (const t of [3, 5, 7, 4, 6]) store.rows('account_data', t, [row('account_data', t, `[${t}]`)], 0);
    store.position('account_data', 7);
    assert.deepEqual(out.stored.map((s) => Number(s.split('/')[0])), [3, 4, 5, 6, 7]);
  });

  it('skips replays at or below the head and advances on a POSITION past it', () => {
    const out = sink();
    const skipped: number[] = [];
    const store = new RelayStore(out, ['events'], {}, { skipped: (_s, t) => skipped.push(t) });
    store.connectionOpened();
    store.position('events', 5);
    store.rows('events', 5, [row('events', 5, '[5]')], 0);
    store.rows('events', 6, [row('events', 6, '[6]')], 0);
    store.position('events', 9);
    assert.deepEqual(out.stored, ['POSITION 5', '6/1: RDATA events 6 [6]\n', 'POSITION 9']);
    assert.deepEqual(skipped, [5]);
  });

  it('keeps an open run across a lost connection and completes it after the resume', () => {
    const out = sink();
    const store = new RelayStore(out, ['caches']);
    store.connectionOpened();
    store.rows('caches', 1, [row('caches', 1, '["a"]')], 0);
    store.rows('caches', 2, [row('caches', 2, '["b"]')], 0);
    store.rows('caches', 2, [row('caches', 2, '["c"]')], 0);
    store.connectionLost();
    // Token 1 is complete (a higher token came); token 2 may have more rows.
    assert.deepEqual(out.stored, ['1/1: RDATA caches 1 ["a"]\n']);
    store.connectionOpened();
    // The client skips the two rows of 2 it delivered before, and hands over the third.
    store.rows('caches', 2, [row('caches', 2, '["d"]')], 0);
    store.position('caches', 2);
    assert.deepEqual(out.stored.slice(1), ['2/3: RDATA caches batch ["b"]\nRDATA caches batch ["c"]\nRDATA caches 2 ["d"]\n']);
  });

  it('stores complete tokens early when the held rows pass the limit, keeping the open run', () => {
    const out = sink();
    const store = new RelayStore(out, ['events'], { maxHeldRows: 3 });
    store.connectionOpened();
    for (let t = 1; t <= 4; t++) store.rows('events', t, [row('events', t, `[${t}]`)], 0);
    assert.deepEqual(out.stored.map((s) => s.split(':')[0]), ['1/1', '2/1', '3/1']);
    assert.equal(store.lag(0)[0]!.heldRows, 1);
  });

  it('reports an upstream that went behind the relay', () => {
    const out = sink();
    const behind: [number, number][] = [];
    const store = new RelayStore(out, ['typing'], {}, { behind: (_s, u, h) => behind.push([u, h]) });
    out.heads.set('typing', 50);
    store.position('typing', 3);
    assert.deepEqual(behind, [[3, 50]]);
  });

  it('reports lag in tokens and in how long rows are held', () => {
    const out = sink();
    const store = new RelayStore(out, ['events']);
    store.connectionOpened();
    store.rows('events', 1, [row('events', 1, '[1]')], 1_000);
    store.rows('events', 2, [row('events', 2, '[2]')], 1_500);
    const [lag] = store.lag(3_000);
    assert.deepEqual(lag, { stream: 'events', tokens: 2, heldMs: 2_000, heldRows: 2, catchingUp: true });
  });

  it('follows a never-synced stream from NOW when its catch-up is refused, and restarts the log at its POSITION', () => {
    const out = sink();
    const skipped: number[] = [];
    const restarted: number[] = [];
    const store = new RelayStore(out, ['events', 'caches'], {}, {
      skipped: (_s, t) => skipped.push(t),
      restarted: (_s, t) => restarted.push(t),
    });
    store.connectionOpened();
    // A gateway upstream may send rows before evicting them under the catch-up.
    store.rows('events', 1, [row('events', 1, '[1]')], 0);
    assert.deepEqual(store.catchUpRefused('events'), ['events']);
    store.rows('events', 2, [row('events', 2, '[2]')], 0);
    store.connectionLost();
    assert.deepEqual(out.stored, [], 'nothing of the refused catch-up is stored');
    store.connectionOpened();
    store.position('caches', 0);
    assert.equal(store.synced, false);
    store.position('events', 12_000);
    assert.equal(store.synced, true);
    store.rows('events', 12_001, [row('events', 12_001, '[12001]')], 0);
    assert.deepEqual(out.stored, ['RESTART 12000', '12001/1: RDATA events 12001 [12001]\n']);
    assert.deepEqual(skipped, [2]);
    assert.deepEqual(restarted, [12_000]);
    // From now on the stream has history: another refusal is not answered with NOW.
    assert.deepEqual(store.catchUpRefused('events'), []);
    assert.deepEqual(store.catchUpRefused('caches'), [], 'a stream synced at token 0 has history too');
  });

  it('never starts a stream with stored rows from NOW, and takes an unnamed refusal as one of every fresh stream', () => {
    const out = sink();
    const store = new RelayStore(out, ['events', 'caches', 'typing']);
    store.connectionOpened();
    store.rows('events', 1, [row('events', 1, '[1]')], 0);
    store.rows('events', 2, [row('events', 2, '[2]')], 0);
    store.connectionLost(); // stores token 1: events now has history
    assert.deepEqual(out.stored, ['1/1: RDATA events 1 [1]\n']);
    assert.deepEqual(store.catchUpRefused('events'), []);
    assert.deepEqual(store.catchUpRefused('nosuch'), []);
    assert.deepEqual(store.catchUpRefused(null), ['caches', 'typing']);
    assert.deepEqual(store.catchUpRefused(null), [], 'streams already from NOW are not taken twice');
  });

  it('encodes a run with every line but the last framed batch', () => {
    const bytes = encodeRun('s', [row('s', 9, '{"a": 1}'), row('s', null, '[2]'), row('s', 9, '[3]')]);
    assert.equal(bytes.toString(), 'RDATA s batch {"a": 1}\nRDATA s batch [2]\nRDATA s 9 [3]\n');
  });
});
