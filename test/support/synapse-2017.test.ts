// The recordings loader and the v1 worker model against the recordings
// themselves: every session parses, every run-length summary expands to its
// count, and the model hands over exactly the groups Synapse's own worker
// reported for the bytes the scripted master sent it, in every worker-side
// session (so the model can stand in for Synapse's worker when the bytes
// come from our server).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  connections,
  loadSession,
  observed,
  peerArg,
  recordingsSkip,
  runLines,
  sessionLines,
  sessionNames,
  V1Worker,
  type Session,
} from './synapse-2017.js';

const skip = recordingsSkip();

/** Row field counts of Synapse 2017's streams that a worker-side session sends (w-unusable-rows sends a short events row). */
const ROW_FIELDS = { events: 5, caches: 3, typing: 2 };

function recordedGroups(s: Session): unknown[] {
  return observed(s, 'rdata')
    .concat(observed(s, 'position'))
    .sort((a, b) => s.observed.indexOf(a) - s.observed.indexOf(b))
    .map((o) => ({ type: o['type'], stream: o['stream'], token: o['token'], rows: o['rows'] }));
}

describe('the Synapse 2017 recordings', { skip }, () => {
  it('expands a run as the README defines it', () => {
    assert.deepEqual(
      runLines({ template: 'RDATA s <token> [<t>,<j>,<t%3>,<t+10>]\n', per_token: 2, framing: 'batch', from: [4, 1], to: [6, 0], count: 4 }),
      ['RDATA s 4 [4,1,1,14]\n', 'RDATA s batch [5,0,2,15]\n', 'RDATA s 5 [5,1,2,15]\n', 'RDATA s batch [6,0,0,16]\n'],
    );
  });

  it('has master and worker sessions, each of which loads', () => {
    const names = sessionNames();
    const sides = names.map((n) => loadSession(n).side);
    assert.ok(sides.includes('master') && sides.includes('worker'), `sides seen: ${[...new Set(sides)].join(', ')}`);
    for (const n of names) assert.ok(sessionLines(loadSession(n)).length > 0 || n === 'w-backoff', `${n} has lines`);
  });

  for (const name of skip ? [] : sessionNames().filter((n) => loadSession(n).side === 'worker')) {
    it(`the v1 worker model groups ${name} as Synapse's worker did`, () => {
      const s = loadSession(name);
      const expectServer = peerArg(s, '--expect-server');
      const worker = new V1Worker({ ...(expectServer !== null ? { expectServer } : {}), rowFields: ROW_FIELDS });
      for (const conn of connections(s)) {
        for (const l of sessionLines(s, { dir: 's2c', conn })) worker.feed(l.bytes);
        worker.connectionLost();
      }
      assert.deepEqual(worker.rowGroups(), recordedGroups(s));
    });
  }
});
