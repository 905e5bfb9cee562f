// Every session recorded from Synapse's own 2017 master and worker
// (../shared/synapse-2017/sessions) is a test case here: a session added to
// the folder is a new test. Our server stands in for the Synapse side the
// recording shows (master-side sessions, and worker-side ones the recording
// says how to replay); our client stands in for Synapse's worker against the
// recorded master (worker-side sessions). Each behaviour tag in a session's
// `shows` names the assertion that applies (the README's lists; D1-D15 are
// where we deliberately differ, and the cases assert our behaviour).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadSession, recordingsSkip, sessionNames } from '../support/synapse-2017.js';
import { SERVER_TAGS, serverCase } from './support/server-session-cases.js';
import { CLIENT_TAGS, clientCase } from './support/client-session-cases.js';

const skip = recordingsSkip();
const names = skip === false ? sessionNames() : [];

describe('Synapse 2017 recorded sessions', { skip }, () => {
  it('every tag a session shows has an assertion, and every session a case', () => {
    for (const name of names) {
      const s = loadSession(name);
      const unknown = s.shows.filter((tag) => !SERVER_TAGS.has(tag) && !CLIENT_TAGS.has(tag));
      assert.deepEqual(unknown, [], `${name} shows tags no case asserts`);
      assert.ok(serverCase(s) !== null || clientCase(s) !== null, `${name} has no case`);
    }
  });

  for (const name of names) {
    const s = loadSession(name);
    for (const c of [serverCase(s), clientCase(s)]) {
      if (c !== null) it(`${name}: ${c.title}`, { timeout: c.timeoutMs ?? 20_000 }, (t) => c.run(t));
    }
  }
});
