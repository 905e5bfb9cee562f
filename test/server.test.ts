import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EncoderPool } from '../src/workers/encoder-pool.js';
import { RowEncodingError } from '../src/core/row-encoding.js';
import { greeted, startServer, type Fixture, type RawPeer } from './bindings/support/raw-peer.js';

const row = (i: number): unknown[] => [`$${i}:hs`, '!r:hs', 'm.room.message', '@alice:hs', null];

/** A server publishing through a one-thread pool, and a peer at the head of `events`. */
async function poolServerWithFollower(pool: EncoderPool): Promise<{ f: Fixture; p: RawPeer }> {
  const f = await startServer({ streams: ['events'], encoder: pool });
  try {
    const p = await greeted(f);
    p.send('REPLICATE events NOW');
    await p.line('POSITION events 0');
    return { f, p };
  } catch (err) {
    await f.close();
    throw err;
  }
}

test('publishes on an encoder pool go out in call order with rising tokens, batches whole', async () => {
  const pool = new EncoderPool({ threads: 1 });
  const { f, p } = await poolServerWithFollower(pool);
  try {
    // A large batch (encoded on the pool) then small ones (inline) that finish first.
    const big = Array.from({ length: 5_000 }, (_, i) => row(i));
    const tokens = await Promise.all([
      f.server.publish('events', big),
      f.server.publish('events', [row(-1)]),
      f.server.publish('events', [row(-2), row(-3)]),
    ]);
    assert.deepEqual(tokens, [1, 2, 3]);
    await p.line(/^RDATA events 3 /);
    const rdata = p.lines.filter((l) => l.startsWith('RDATA'));
    assert.equal(rdata.length, 5_003);
    assert.ok(rdata.slice(0, 4_999).every((l) => l.startsWith('RDATA events batch ')));
    assert.equal(rdata[4_999], `RDATA events 1 ${JSON.stringify(row(4_999))}`);
    assert.equal(rdata[5_000], `RDATA events 2 ${JSON.stringify(row(-1))}`);
    assert.equal(rdata[5_001], `RDATA events batch ${JSON.stringify(row(-2))}`);
  } finally {
    await f.close();
    await pool.close();
  }
});

test('a publish with a row that is not JSON stores nothing and names the row', async () => {
  const f = await startServer({ streams: ['events'] });
  try {
    await assert.rejects(f.server.publish('events', [row(1), 10n]), (err: unknown) => {
      assert.ok(err instanceof RowEncodingError);
      assert.equal(err.rowIndex, 1);
      return true;
    });
    assert.equal(f.server.head('events'), 0);
    assert.equal(await f.server.publish('events', [row(2)]), 1);
  } finally {
    await f.close();
  }
});

test('close() waits for publishes still encoding: their rows reach subscribers before the shutdown ERROR', async () => {
  const pool = new EncoderPool({ threads: 1 });
  const { f, p } = await poolServerWithFollower(pool);
  try {
    const published = f.server.publish('events', Array.from({ length: 20_000 }, (_, i) => row(i)));
    await f.server.close();
    assert.equal(await published, 1);
    const at = await p.line('ERROR server shutting down');
    assert.equal(p.lines.filter((l) => l.startsWith('RDATA')).length, 20_000);
    assert.equal(p.lines[at - 1], `RDATA events 1 ${JSON.stringify(row(19_999))}`);
  } finally {
    await f.close();
    await pool.close();
  }
});
