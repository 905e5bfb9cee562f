// The stream log contract (test/core/support/log-contract.ts) against the
// memory log and a log that answers later, then what only each of them does.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStreamLog, type LogCursor } from '../../src/core/stream-log.js';
import { AsyncLog, turn } from './support/async-log.js';
import { contract, entry } from './support/log-contract.js';

contract('memory log', (options) => new MemoryStreamLog(options));
contract('a log that answers later', (options) => new AsyncLog(options), 40);

describe('memory log', () => {
  test('reads hand out the stored Buffers themselves, not copies, and answer at once', () => {
    const log = new MemoryStreamLog({ startToken: 0 });
    const e = entry([{ token: 1, rows: 2 }]);
    log.append(e);
    const cursor = log.cursorAfter(0);
    assert.ok(cursor !== null && !(cursor instanceof Promise));
    const r = log.read(cursor, 1 << 20);
    assert.ok(r !== null && !(r instanceof Promise));
    assert.equal(r.chunks[0], e.bytes);
  });

  test('a catch-up from inside an entry starts at the group boundary the entry carries, without reading its bytes', () => {
    const log = new MemoryStreamLog({ startToken: 0 });
    // Boundaries say the second group (token 9) starts at byte 4: the log trusts them.
    const bytes = Buffer.from('aaa\nbbb\nccc\n');
    log.append({ firstToken: 5, lastToken: 9, bytes, lines: 3, rows: 3, groups: new Float64Array([4, 5, 1, 12, 9, 3]) });
    const r = log.read(log.cursorAfter(6) as LogCursor, 1 << 20);
    assert.equal(Buffer.concat(r!.chunks).toString(), 'bbb\nccc\n');
    assert.equal(r!.lines, 2);
  });
});

describe('a log that answers later and fails appends', () => {
  test('a failed append is never heard, nor any append queued behind it, and lastAppended falls back to the head', async () => {
    const log = new AsyncLog({ startToken: 0 }, false);
    const heard: number[] = [];
    log.listen({ stored: (e) => heard.push(e.lastToken), gap: () => assert.fail('a log that stores what it is handed has no gap') });
    const first = log.append(entry([{ token: 1, rows: 1 }]));
    log.answer();
    await first;
    log.failAppends = true;
    const lost = [log.append(entry([{ token: 2, rows: 1 }])), log.append(entry([{ token: 3, rows: 1 }]))];
    assert.equal(log.lastAppended, 3);
    log.answer();
    for (const p of lost) await assert.rejects(p, /disk full/);
    await turn();
    assert.deepEqual(heard, [1]);
    assert.equal(log.head, 1);
    assert.equal(log.lastAppended, 1);
  });
});
