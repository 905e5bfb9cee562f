// A shared log that finds entries gone before it could tell them (a trim
// or a Redis restart under a gateway) calls its listener's gap(): live
// subscribers of the stream get the too-old ERROR, never a silent gap; a
// `jump` stream goes on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStreamLog, type LogListener } from '../../src/core/stream-log.js';
import { fakeHub, send } from './support/fake-hub.js';

test('a log gap closes the live subscribers of that stream with the too-old ERROR; jump streams and other streams go on', () => {
  const listeners = new Map<string, LogListener>();
  const h = fakeHub({
    createLog: (stream) => {
      const log = new MemoryStreamLog({ startToken: 0 });
      const listen = log.listen.bind(log);
      log.listen = (l) => {
        listeners.set(stream, l);
        listen(l);
      };
      return log;
    },
  });
  const events = h.connect();
  send(h, events.conn, 'REPLICATE events NOW\nREPLICATE caches NOW\n');
  const typing = h.connect();
  send(h, typing.conn, 'REPLICATE typing NOW\n');
  events.t.take();
  typing.t.take();

  listeners.get('events')!.gap(0);
  listeners.get('typing')!.gap(0);
  h.settle();
  assert.deepEqual(events.t.take(), ['ERROR token 0 is older than the oldest retained token 0 (stream=events oldest=0 head=0)']);
  assert.equal(events.t.ended || events.t.destroyed, true, 'closed');
  assert.deepEqual(typing.t.take(), []);
  assert.equal(typing.t.ended || typing.t.destroyed, false, 'a jump stream goes on');
});
