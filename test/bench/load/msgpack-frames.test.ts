// The bench subscriber's msgpack mode: frames as the bridge sends them
// (src/workers/msgpack-task.ts), checked by the same consecutive-token rule
// as text lines, by both readers: the decoding one and the token scan.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Packr, Unpackr } from 'msgpackr';
import { FrameReader, FrameScanner, helloFrames } from '../../../bench/load/msgpack-frames.js';
import { RowChecker, Samples } from '../../../bench/load/row-checker.js';
import { rdataLine } from '../../../bench/load/rows.js';
import { rowsFromLines } from '../../../src/core/dialects/msgpack-frames.js';

const packr = new Packr({ useRecords: false });

function frames(...values: unknown[][]): Buffer {
  return Buffer.concat(values.map((v) => Buffer.from(packr.pack(v))));
}

function rows(first: number, count: number, sentMs = 0): Buffer {
  const lines = Buffer.concat(Array.from({ length: count }, (_, i) => rdataLine(first + i, sentMs)));
  const out = rowsFromLines(lines, false);
  assert.ok(Buffer.isBuffer(out));
  return out;
}

type Kind = 'decode' | 'scan';
const KINDS: Kind[] = ['decode', 'scan'];

function reader(expect: number, kind: Kind, latency?: Samples): { checker: RowChecker; reader: FrameReader | FrameScanner; control: unknown[][] } {
  const control: unknown[][] = [];
  const checker = new RowChecker({
    label: 'subscriber 0', expect, base: null, controlFirstBytes: '', onControl: () => {},
    ...(latency !== undefined ? { latency } : {}),
  });
  const onControl = (frame: unknown[]): void => {
    control.push(frame);
    if (frame[0] === 'POSITION') checker.setBase(frame[2] as number);
  };
  const r = kind === 'scan' ? new FrameScanner(checker, onControl) : new FrameReader(checker, onControl, latency !== undefined);
  return { checker, reader: r, control };
}

test('the hello is AUTH and REPLICATE frames in one message', () => {
  const values = new Unpackr({ useRecords: false }).unpackMultiple(helloFrames('T', 'events', 'NOW'));
  assert.deepEqual(values, [['AUTH', 'T'], ['REPLICATE', 'events', 'NOW']]);
  assert.deepEqual(new Unpackr().unpackMultiple(helloFrames(undefined, 'events', 12)), [['REPLICATE', 'events', 12]]);
});

for (const kind of KINDS) {
  test(`${kind}: counts consecutive rows after the first POSITION, skipping batch frames`, () => {
    const { checker, reader: r, control } = reader(6, kind);
    r.feed(frames(['SERVER', 'gw'], ['POSITION', 'events', 9]), 0);
    r.feed(Buffer.concat([rows(10, 3), frames(['RDATA', 'events', 'batch', ['x']]), rows(13, 3)]), 0);
    assert.equal(checker.failure, null);
    assert.equal(checker.rows, 6);
    assert.equal(checker.lastToken, 15);
    assert.ok(checker.done);
    assert.equal(checker.lines, 9);
    assert.deepEqual(control.map((f) => f[0]), ['SERVER', 'POSITION']);
  });

  test(`${kind}: a missing row is a gap, a repeated one a duplicate`, () => {
    const gap = reader(10, kind);
    gap.reader.feed(Buffer.concat([frames(['POSITION', 'events', 0]), rows(1, 2), rows(4, 1)]), 0);
    assert.match(gap.checker.failure ?? '', /expected token 3, saw 4 \(gap: rows lost\)/);
    const dup = reader(10, kind);
    dup.reader.feed(Buffer.concat([frames(['POSITION', 'events', 0]), rows(1, 2), rows(2, 1)]), 0);
    assert.match(dup.checker.failure ?? '', /expected token 3, saw 2 \(duplicate or out of order\)/);
  });

  test(`${kind}: rows before any POSITION, truncated messages and values that are not frames fail`, () => {
    const early = reader(10, kind);
    early.reader.feed(rows(1, 1), 0);
    assert.match(early.checker.failure ?? '', /got token 1 before any POSITION/);
    const bad = reader(10, kind);
    bad.reader.feed(rows(1, 1).subarray(0, 20), 0);
    assert.match(bad.checker.failure ?? '', /bad MessagePack message after 0 frames/);
    const notFrame = reader(10, kind);
    notFrame.reader.feed(Buffer.from(packr.pack({ name: 'RDATA' })), 0);
    assert.match(notFrame.checker.failure ?? '', /not a frame: \{"name":"RDATA"\}/);
  });
}

test('latency is read from the send time last in each row', () => {
  const samples = new Samples();
  const { reader: r } = reader(2, 'decode', samples);
  r.feed(Buffer.concat([frames(['POSITION', 'events', 0]), rows(1, 2, 1000.5)]), 1003);
  assert.equal(samples.count, 2);
  assert.equal(samples.summary()!.p50, 2.5);
});

test('scan: tokens of every size msgpackr packs, and a frame after a large row', () => {
  const { checker, reader: r } = reader(5, 'scan');
  const big = 'y'.repeat(70_000); // str 32: past str 16's 65,535 bytes
  const base = 2 ** 32 - 3;
  r.feed(frames(['POSITION', 'events', base]), 0);
  r.feed(frames(['RDATA', 'events', base + 1, [{ a: [1, -1, 300, -300, 1.5, true, null] }, big]], ['RDATA', 'events', base + 2, []]), 0);
  r.feed(frames(['RDATA', 'events', base + 3, ['x']], ['RDATA', 'events', base + 4, Buffer.from('bin')], ['RDATA', 'events', base + 5, 'z']), 0);
  assert.equal(checker.failure, null);
  assert.equal(checker.rows, 5);
  assert.equal(checker.lastToken, base + 5);
  const small = reader(1, 'scan');
  small.reader.feed(frames(['POSITION', 'events', 299], ['RDATA', 'events', 300, ['x']]), 0);
  assert.equal(small.checker.lastToken, 300);
  assert.equal(small.checker.failure, null);
});
