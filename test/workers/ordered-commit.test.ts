// Mirrors src/core/ordered-commit.ts (kept beside the pool tests it serves).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { OrderedPublisher, tokensFromHead, type CommitFn } from '../../src/core/ordered-commit.js';
import { encodeRows, RowEncodingError, type RowEncoder } from '../../src/core/row-encoding.js';
import { ProtocolError } from '../../src/core/errors.js';

interface Commit {
  stream: string;
  token: number;
  text: string;
  rowCount: number;
}

/** A server stand-in: heads per stream, moved by each commit. */
function fakeServer(start: Record<string, number> = {}) {
  const heads = new Map<string, number>(Object.entries(start));
  const commits: Commit[] = [];
  const commit: CommitFn = (stream, token, bytes, rowCount) => {
    const head = heads.get(stream) ?? 0;
    assert.ok(token > head, `${stream}: token ${token} committed after ${head}`);
    heads.set(stream, token);
    commits.push({ stream, token, text: bytes.toString(), rowCount });
  };
  const head = (stream: string): number => heads.get(stream) ?? 0;
  return { heads, commits, commit, head };
}

/** An encoder whose promises the test settles by hand, in any order. */
function manualEncoder() {
  const calls: { stream: string; token: number; rows: readonly unknown[]; finish(): void; fail(err: unknown): void }[] = [];
  const encoder: RowEncoder = {
    encode(stream, token, rows) {
      return new Promise<Buffer>((resolve, reject) => {
        calls.push({
          stream,
          token,
          rows,
          finish: () => {
            try {
              resolve(encodeRows(stream, token, rows));
            } catch (err) {
              reject(err);
            }
          },
          fail: reject,
        });
      });
    },
  };
  return { encoder, calls };
}

test('commits in reservation order when a later encode finishes first', async () => {
  const server = fakeServer();
  const { encoder, calls } = manualEncoder();
  const publisher = new OrderedPublisher({ encoder, tokens: tokensFromHead(server.head), commit: server.commit });
  const first = publisher.publish('events', ['a', 'b']);
  const second = publisher.publish('events', ['c']);
  assert.deepEqual(
    calls.map((c) => c.token),
    [1, 2],
    'tokens are reserved before publish returns',
  );
  calls[1]!.finish();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(server.commits.length, 0, 'token 2 waits for token 1');
  calls[0]!.finish();
  assert.equal(await first, 1);
  assert.equal(await second, 2);
  assert.deepEqual(server.commits, [
    { stream: 'events', token: 1, text: 'RDATA events batch "a"\nRDATA events 1 "b"\n', rowCount: 2 },
    { stream: 'events', token: 2, text: 'RDATA events 2 "c"\n', rowCount: 1 },
  ]);
});

test('an inline encode with nothing ahead of it commits before publish returns', () => {
  const server = fakeServer({ caches: 53 });
  const publisher = new OrderedPublisher({ encoder: { encode: encodeRows }, tokens: tokensFromHead(server.head), commit: server.commit });
  void publisher.publish('caches', [['get_user_by_id', ['@c:hs'], 1490197670513]]);
  assert.deepEqual(server.commits, [
    { stream: 'caches', token: 54, text: 'RDATA caches 54 ["get_user_by_id",["@c:hs"],1490197670513]\n', rowCount: 1 },
  ]);
});

test('tokens continue from the head the server reports', async () => {
  const server = fakeServer({ events: 41 });
  const publisher = new OrderedPublisher({ encoder: { encode: encodeRows }, tokens: tokensFromHead(server.head), commit: server.commit });
  assert.equal(await publisher.publish('events', [1]), 42);
  server.heads.set('events', 100); // a writer moved the stream by another path
  assert.equal(await publisher.publish('events', [2]), 101);
});

test('a failed encode is rejected, commits nothing and does not hold back later publishes', async () => {
  const server = fakeServer();
  const { encoder, calls } = manualEncoder();
  const publisher = new OrderedPublisher({ encoder, tokens: tokensFromHead(server.head), commit: server.commit });
  const ok1 = publisher.publish('events', ['a']);
  const bad = publisher.publish('events', ['b', 10n]);
  const ok3 = publisher.publish('events', ['c']);
  calls[2]!.finish();
  calls[1]!.finish(); // the BigInt makes this one fail
  await assert.rejects(bad, (err: unknown) => err instanceof RowEncodingError && err.rowIndex === 1);
  assert.equal(server.commits.length, 0, 'token 3 still waits for token 1');
  calls[0]!.finish();
  assert.equal(await ok1, 1);
  assert.equal(await ok3, 3);
  assert.deepEqual(
    server.commits.map((c) => [c.token, c.text]),
    [
      [1, 'RDATA events 1 "a"\n'],
      [3, 'RDATA events 3 "c"\n'],
    ],
    'token 2 is a gap: nothing of the bad publish went out',
  );
});

test('an encoder that throws synchronously rejects only that publish', async () => {
  const server = fakeServer();
  const publisher = new OrderedPublisher({ encoder: { encode: encodeRows }, tokens: tokensFromHead(server.head), commit: server.commit });
  await assert.rejects(publisher.publish('events', [undefined]), { name: 'RowEncodingError', rowIndex: 0 });
  assert.equal(server.commits.length, 0);
  assert.equal(await publisher.publish('events', ['x']), 1, 'a failed last publish leaves no gap');
});

test('streams proceed independently: a slow encode on one does not hold another', async () => {
  const server = fakeServer();
  const { encoder, calls } = manualEncoder();
  const publisher = new OrderedPublisher({ encoder, tokens: tokensFromHead(server.head), commit: server.commit });
  const slow = publisher.publish('events', ['slow']);
  const other = publisher.publish('caches', ['quick']);
  calls[1]!.finish();
  assert.equal(await other, 1);
  assert.deepEqual(
    server.commits.map((c) => c.stream),
    ['caches'],
  );
  calls[0]!.finish();
  assert.equal(await slow, 1);
});

test('refuses to commit a token the stream head has already passed', async () => {
  const server = fakeServer();
  const { encoder, calls } = manualEncoder();
  const publisher = new OrderedPublisher({ encoder, tokens: tokensFromHead(server.head), commit: server.commit });
  const late = publisher.publish('events', ['late']);
  server.heads.set('events', 5); // moved past token 1 by another path while encoding
  calls[0]!.finish();
  await assert.rejects(late, (err: unknown) => err instanceof ProtocolError && err.code === 'TOKEN_NOT_RISING');
  assert.equal(server.commits.length, 0);
});

test('a commit callback may publish again; the new publish commits after it', async () => {
  const order: number[] = [];
  const heads = new Map<string, number>();
  let again: Promise<number> | null = null;
  const publisher: OrderedPublisher = new OrderedPublisher({
    encoder: { encode: encodeRows },
    tokens: tokensFromHead((s) => heads.get(s) ?? 0),
    commit: (stream, token) => {
      heads.set(stream, token);
      order.push(token);
      if (token === 1) again = publisher.publish(stream, ['again']);
    },
  });
  assert.equal(await publisher.publish('events', ['first']), 1);
  assert.equal(await again, 2);
  assert.deepEqual(order, [1, 2]);
});

test('a commit callback that throws rejects that publish only', async () => {
  const heads = new Map<string, number>();
  const publisher = new OrderedPublisher({
    encoder: { encode: encodeRows },
    tokens: tokensFromHead((s) => heads.get(s) ?? 0),
    commit: (stream, token, bytes) => {
      if (bytes.includes('"no"')) throw new Error('log full');
      heads.set(stream, token);
    },
  });
  await assert.rejects(publisher.publish('events', ['no']), /log full/);
  assert.equal(await publisher.publish('events', ['yes']), 1);
});

test('idle() resolves once every publish has settled', async () => {
  const server = fakeServer();
  const { encoder, calls } = manualEncoder();
  const publisher = new OrderedPublisher({ encoder, tokens: tokensFromHead(server.head), commit: server.commit });
  await publisher.idle();
  void publisher.publish('a', [1]);
  publisher.publish('b', [2]).catch(() => {});
  assert.equal(publisher.pending, 2);
  let idle = false;
  const waiting = publisher.idle().then(() => {
    idle = true;
  });
  calls[0]!.finish();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(idle, false);
  calls[1]!.fail(new Error('no'));
  await waiting;
  assert.equal(publisher.pending, 0);
});

test('thousands of interleaved publishes on several streams commit in order with rising tokens', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({
          stream: fc.constantFrom('events', 'caches', 'typing', 'receipts'),
          rows: fc.integer({ min: 1, max: 5 }),
          delay: fc.integer({ min: 0, max: 3 }),
          bad: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
        }),
        { minLength: 500, maxLength: 1500 },
      ),
      async (publishes) => {
        const server = fakeServer({ caches: 1000 });
        // Finishes each encode after 0-3 turns of the event loop: later publishes often finish first.
        const encoder: RowEncoder = {
          async encode(stream, token, rows) {
            const delay = (rows[0] as { delay: number }).delay;
            for (let i = 0; i < delay; i++) await new Promise((resolve) => setImmediate(resolve));
            return encodeRows(stream, token, rows);
          },
        };
        const publisher = new OrderedPublisher({ encoder, tokens: tokensFromHead(server.head), commit: server.commit });
        const expected = new Map<string, number[]>();
        const results = publishes.map((p, i) => {
          const rows = Array.from({ length: p.rows }, (_, r) => ({ i, r, delay: p.delay, bad: p.bad ? 1n : 0 }));
          const promise = publisher.publish(p.stream, rows);
          return promise.then(
            (token) => ({ i, token }),
            () => ({ i, token: -1 }),
          );
        });
        const settled = await Promise.all(results);
        await publisher.idle();
        for (const { i, token } of settled) {
          assert.equal(token === -1, publishes[i]!.bad, `publish ${i} failed exactly when it had a bad row`);
          if (token !== -1) {
            const list = expected.get(publishes[i]!.stream) ?? [];
            list.push(i);
            expected.set(publishes[i]!.stream, list);
          }
        }
        for (const [stream, indexes] of expected) {
          const commits = server.commits.filter((c) => c.stream === stream);
          // Commit order per stream is publish order, and the tokens rise.
          assert.deepEqual(
            commits.map((c) => (JSON.parse(c.text.slice(c.text.lastIndexOf(' {') + 1)) as { i: number }).i),
            indexes,
          );
          for (let k = 1; k < commits.length; k++) assert.ok(commits[k]!.token > commits[k - 1]!.token);
          for (const c of commits) assert.equal(c.text.split('\n').length - 1, c.rowCount);
        }
      },
    ),
    { numRuns: 8 },
  );
});
