// The GENERATION extension on a real ReplicationServer over TCP on 127.0.0.1:
// the log's generation id (or none) to a client that asks, nothing to one that does not.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplicationServer } from '../../src/server.js';
import { hubOf } from '../../src/server.js';
import { greeted, startServer } from './support/raw-peer.js';

const ID = '9f2c01d4a6b84e0f8c3b2a1d0e9f8a7b';

test('answers GENERATION with the log generation id, ahead of the rows of a REPLICATE sent after it', async () => {
  const f = await startServer({ streams: ['events'], generation: ID });
  try {
    await f.server.publish('events', [['$1']]);
    const p = await greeted(f);
    p.send('NAME worker', 'GENERATION', 'REPLICATE events 0');
    await p.line('POSITION events 1');
    assert.deepEqual(p.content(), [`GENERATION ${ID}`, 'RDATA events 1 ["$1"]', 'POSITION events 1']);
    assert.equal(hubOf(f.server).commandsIn.GENERATION, 1);
  } finally {
    await f.close();
  }
});

test('answers GENERATION none for a log without a generation (the default memory log)', async () => {
  const f = await startServer({ streams: ['events'] });
  try {
    const p = await greeted(f);
    p.send('GENERATION');
    await p.line('GENERATION none');
  } finally {
    await f.close();
  }
});

test('a peer that never asks sees no GENERATION line: the v1 conversation is unchanged', async () => {
  const f = await startServer({ streams: ['events'], generation: ID });
  try {
    const p = await greeted(f);
    p.send('NAME worker', 'REPLICATE events NOW');
    await p.line('POSITION events 0');
    assert.deepEqual(p.content(), ['POSITION events 0']);
  } finally {
    await f.close();
  }
});

test('GENERATION waits for AUTH where AUTH is required', async () => {
  const f = await startServer({ streams: ['events'], generation: ID, subscriberToken: 's' });
  try {
    const early = await greeted(f);
    early.send('GENERATION');
    await early.line(/^ERROR .*AUTH/);
    await early.closed();
    const p = await greeted(f, 's');
    p.send('GENERATION');
    await p.line(`GENERATION ${ID}`);
  } finally {
    await f.close();
  }
});

test('a client GENERATION with an argument is an ERROR and a close', async () => {
  const f = await startServer({ streams: ['events'], generation: ID });
  try {
    const p = await greeted(f);
    p.send('GENERATION abc');
    await p.line('ERROR GENERATION from a client takes no arguments: send GENERATION alone');
    await p.closed();
  } finally {
    await f.close();
  }
});

test('a generation id that is not one printable word, or is none, is refused when the server is made', () => {
  for (const generation of ['a b', 'none', '', 'x\n']) {
    assert.throws(() => new ReplicationServer({ streams: ['events'], generation }), /invalid generation id/, JSON.stringify(generation));
  }
});
