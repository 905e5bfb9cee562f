import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyLines } from '../../src/gateway/metrics.js';

describe('classifyLines', () => {
  it('counts the commands in a buffer of lines by name', () => {
    const counts = new Float64Array(15);
    classifyLines(
      Buffer.from('SERVER hs\nPING 1\nRDATA e batch []\nRDATA e 1 []\nPOSITION e 1\nERROR x\nSYNC 1\nUSER_SYNC u start 1\nUSER_IP u []\nREMOVE_PUSHER a b c\nREPLICATE e 1\nFEDERATION_ACK 1\nINVALIDATE_CACHE f []\n'),
      counts,
    );
    // RDATA POSITION PING SERVER SYNC ERROR USER_SYNC USER_IP FEDERATION_ACK REMOVE_PUSHER INVALIDATE_CACHE NAME REPLICATE AUTH OTHER
    assert.deepEqual([...counts], [2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0]);
  });
});
