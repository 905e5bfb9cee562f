// Credentials over WebSocket, on each engine: the token in an HttpOnly
// cookie (--auth-cookie) authenticates the upgrade as AUTH would, a wrong
// one is refused like a wrong AUTH, an AUTH may still replace it; and the
// browser-page rule: a page only reads unless its token lists +page.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { cookieValue } from '../../src/bindings/ws-access.js';
import { parseTokenSpec } from '../../src/core/credentials.js';
import { describeEachEngine, waitUntil, WsPeer } from './ws-harness.js';

it('cookieValue finds the named cookie among others, unquoted, and nothing else', () => {
  assert.equal(cookieValue('a=1; rg_token=s3cret; b=2', 'rg_token'), 's3cret');
  assert.equal(cookieValue('rg_token="s3cret"', 'rg_token'), 's3cret');
  assert.equal(cookieValue('xrg_token=no; rg_token_old=no', 'rg_token'), null);
  assert.equal(cookieValue('rg_token=', 'rg_token'), null);
  assert.equal(cookieValue('', 'rg_token'), null);
});

const credentials = [
  parseTokenSpec('tab:typing'),
  parseTokenSpec('all'),
  parseTokenSpec('dash:typing,+page'),
  parseTokenSpec('master', 'writer'),
  parseTokenSpec('page-writer:events,+page', 'writer'),
];

describeEachEngine('WebSocket credentials', (edge) => {
  it('authenticates an upgrade by its cookie: read list, writer rows, a wrong cookie refused, and AUTH still works', async () => {
    const gw = await edge.start({ credentials }, { authCookie: 'rg_token' });
    try {
      const tab = await WsPeer.open(gw.wsUrl, { cookie: 'theme=dark; rg_token=tab' });
      tab.send('REPLICATE ALL NOW\n');
      await tab.line('POSITION typing 0');
      tab.send('REPLICATE events NOW\n');
      assert.equal(await tab.line(/^ERROR /), 'ERROR not permitted to read stream events');
      await tab.waitClosed();

      const writer = await WsPeer.open(gw.wsUrl, { cookie: 'rg_token=master' });
      writer.send('RDATA events 1 ["from-cookie"]\n');
      await waitUntil('the row stored', () => (gw.server.head('events') === 1 ? true : undefined));

      const wrong = await WsPeer.open(gw.wsUrl, { cookie: 'rg_token=guess' });
      assert.equal(await wrong.line(/^ERROR /), 'ERROR AUTH failed: the token matches no configured credential');
      await wrong.waitClosed();

      // No cookie: AUTH as before. A cookie's credential: AUTH replaces it before anything is subscribed.
      const plain = await WsPeer.open(gw.wsUrl);
      plain.send('AUTH all\nREPLICATE events 0\n');
      await plain.line('RDATA events 1 ["from-cookie"]');
      const replaced = await WsPeer.open(gw.wsUrl, { cookie: 'rg_token=tab' });
      replaced.send('AUTH all\nREPLICATE events 0\n');
      await replaced.line('RDATA events 1 ["from-cookie"]');
      replaced.send('AUTH tab\n');
      assert.equal(await replaced.line(/^ERROR /), 'ERROR already authenticated as a subscriber');
      for (const p of [writer, plain]) p.terminate();
    } finally {
      await gw.close();
    }
  });

  it('reads no cookie unless --auth-cookie names it', async () => {
    const gw = await edge.start({ credentials });
    try {
      const peer = await WsPeer.open(gw.wsUrl, { cookie: 'rg_token=all' });
      peer.send('REPLICATE events NOW\n');
      assert.equal(await peer.line(/^ERROR /), 'ERROR authentication required: send AUTH <token> before REPLICATE');
    } finally {
      await gw.close();
    }
  });

  it('a page only reads, unless its token lists +page: then its client commands and rows go through', async () => {
    const heard: string[] = [];
    const gw = await edge.start({ credentials }, { authCookie: 'rg_token' });
    gw.server.on('command', (cmd) => heard.push(cmd.name));
    try {
      const origin = gw.httpUrl;
      const tab = await WsPeer.open(gw.wsUrl, { origin, cookie: 'rg_token=tab' });
      tab.send('USER_SYNC @a:hs start 1\n');
      assert.match(await tab.line(/^ERROR /), /^ERROR USER_SYNC may not be sent from a browser page: pages only read streams/);

      const master = await WsPeer.open(gw.wsUrl, { origin });
      master.send('AUTH master\nRDATA events 1 ["from-a-page"]\n');
      assert.match(await master.line(/^ERROR /), /^ERROR RDATA may not be sent from a browser page/);
      await master.waitClosed();
      assert.equal(gw.server.head('events'), 0, 'nothing stored');

      const dash = await WsPeer.open(gw.wsUrl, { origin, cookie: 'rg_token=dash' });
      dash.send('USER_SYNC @a:hs start 1\nFEDERATION_ACK 3\nREPLICATE typing NOW\n');
      await dash.line('POSITION typing 0');
      await waitUntil('both commands heard', () => (heard.length === 2 ? true : undefined));
      assert.deepEqual(heard, ['USER_SYNC', 'FEDERATION_ACK']);

      const pageWriter = await WsPeer.open(gw.wsUrl, { origin });
      pageWriter.send('AUTH page-writer\nRDATA events 1 ["from-a-page"]\n');
      await waitUntil('the page writer\'s row stored', () => (gw.server.head('events') === 1 ? true : undefined));
      pageWriter.send('RDATA typing 1 ["t"]\n');
      assert.equal(await pageWriter.line(/^ERROR /), 'ERROR not permitted to write stream typing');
      for (const p of [dash]) p.terminate();
    } finally {
      await gw.close();
    }
  });
});
