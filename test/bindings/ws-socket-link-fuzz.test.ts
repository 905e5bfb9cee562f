// Property tests (fast-check) of the WebSocket link (src/bindings/ws-socket-link.ts,
// ws-bridge.ts) on each engine, over real sockets: random runs of valid
// commands grouped into random messages (a message's last line with or
// without its LF), with at most one invalid command. A valid run leaves the
// socket open with no ERROR; an invalid command gets one ERROR and the close;
// a subscriber beside it gets every row published meanwhile; no connection
// outlives its socket.

import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import fc from 'fast-check';
import { describeEachEngine, WsPeer, waitUntil, row, type Gateway } from './ws-harness.js';

const word = fc.stringMatching(/^[a-z0-9._-]{1,16}$/);
const user = word.map((w) => `@${w}:hs`);
const stream = fc.constantFrom('events', 'caches', 'typing');

const validLine = fc.oneof(
  fc.nat().map((n) => `PING ${n}`),
  fc.constantFrom('PING', 'GENERATION', 'REPLICATE ALL NOW', 'ERROR the page says something went wrong'),
  word.map((w) => `NAME ${w}`),
  fc.tuple(stream, fc.oneof(fc.constant('NOW'), fc.nat(5).map(String))).map(([s, t]) => `REPLICATE ${s} ${t}`),
  fc.tuple(user, fc.constantFrom('start', 'end'), fc.nat()).map(([u, s, ms]) => `USER_SYNC ${u} ${s} ${ms}`),
  fc.nat().map((n) => `FEDERATION_ACK ${n}`),
);

const invalidLine = fc.constantFrom(
  'HELLO x', 'ping 1', 'RDATA events 1 [1]', 'POSITION events 3', 'SERVER gw', 'REPLICATE nosuch NOW',
  'REPLICATE events -1', 'REPLICATE events abc', 'REPLICATE ALL 5', 'NAME', 'FEDERATION_ACK xyz', 'AUTH not-a-token',
  'USER_SYNC @u:hs stop 1', 'INVALIDATE_CACHE f [',
);

interface Run {
  lines: string[];
  /** Where the invalid line goes, if any. */
  invalid: { line: string; at: number } | null;
  /** Per line: end the message after it. */
  breaks: boolean[];
  /** Per message: drop its last LF. */
  bareEnds: boolean[];
}

const run = (withInvalid: boolean): fc.Arbitrary<Run> =>
  fc.record({
    lines: fc.array(validLine, { minLength: 1, maxLength: 15 }),
    invalid: withInvalid ? fc.record({ line: invalidLine, at: fc.nat(15) }) : fc.constant(null),
    breaks: fc.array(fc.boolean(), { maxLength: 16 }),
    bareEnds: fc.array(fc.boolean(), { maxLength: 16 }),
  });

function messagesOf(r: Run): string[] {
  const lines = [...r.lines];
  if (r.invalid !== null) lines.splice(Math.min(r.invalid.at, lines.length), 0, r.invalid.line);
  const messages: string[] = [];
  let current = '';
  for (const [i, line] of lines.entries()) {
    current += `${line}\n`;
    if (r.breaks[i] === true || i === lines.length - 1) {
      messages.push(r.bareEnds[messages.length] === true ? current.slice(0, -1) : current);
      current = '';
    }
  }
  return messages;
}

describeEachEngine('the WebSocket link under random commands', (edge) => {
  let gw: Gateway;
  let neighbour: WsPeer;
  let published = 0;
  before(async () => {
    gw = await edge.start();
    neighbour = await WsPeer.open(gw.wsUrl);
    neighbour.send('REPLICATE events NOW\n');
    await neighbour.line(/^POSITION events /);
  });
  after(async () => {
    neighbour.terminate();
    await gw.close();
  });

  const play = async (r: Run): Promise<WsPeer> => {
    const peer = await WsPeer.open(gw.wsUrl);
    for (const m of messagesOf(r)) {
      peer.send(m);
      await gw.server.publish('events', [row(++published)]);
    }
    return peer;
  };

  const neighbourGotEveryRow = async (): Promise<void> => {
    await waitUntil(`${published} rows at the neighbour`, () => (neighbour.rdata('events').length >= published ? true : undefined));
    const tokens = neighbour.rdata('events').map((l) => Number(l.split(' ')[2]));
    assert.deepEqual(tokens, Array.from({ length: published }, (_, i) => tokens[0]! + i));
  };

  it('valid commands in random messages: the socket stays open and no ERROR comes', async () => {
    await fc.assert(
      fc.asyncProperty(run(false), async (r) => {
        const peer = await play(r);
        // GENERATION is answered in order: everything before it was taken.
        peer.send('GENERATION\n');
        await waitUntil('the answer to the last GENERATION', () => (peer.lines.filter((l) => l.startsWith('GENERATION ')).length > r.lines.filter((l) => l === 'GENERATION').length ? true : undefined));
        assert.deepEqual(peer.lines.filter((l) => l.startsWith('ERROR')), []);
        assert.equal(peer.closeCode, null);
        peer.terminate();
        await peer.closed;
      }),
      { numRuns: 60 },
    );
    await neighbourGotEveryRow();
  });

  it('one invalid command among them: one ERROR, then the close', async () => {
    await fc.assert(
      fc.asyncProperty(run(true), async (r) => {
        const peer = await play(r);
        await peer.waitClosed();
        const errors = peer.lines.filter((l) => l.startsWith('ERROR'));
        assert.equal(errors.length, 1, JSON.stringify(peer.lines.slice(-3)));
        assert.equal(peer.lines.at(-1), errors[0]);
      }),
      { numRuns: 60 },
    );
    await neighbourGotEveryRow();
    await waitUntil('only the neighbour left connected', () => (gw.server.connections().length === 1 ? true : undefined));
  });
});
