// Who may connect and what they may read over WebSocket: AUTH before
// anything but PING when a subscriber token is configured, per-token stream
// lists, read-only browser roles, the Origin allow-list, and the open-door rule.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { originAllowed } from '../../src/bindings/ws-access.js';
import { parseTokenSpec } from '../../src/core/credentials.js';
import { HttpListener } from '../../src/bindings/http-app.js';
import { ReplicationServer } from '../../src/server.js';
import { describeEachEngine, waitUntil, WsPeer } from './ws-harness.js';

describe('originAllowed', () => {
  it('allows requests without an Origin (not a browser)', () => {
    assert.equal(originAllowed('', '127.0.0.1:9093', []), true);
  });

  it('allows the listener own origin by default, and nothing else', () => {
    assert.equal(originAllowed('http://127.0.0.1:9093', '127.0.0.1:9093', []), true);
    assert.equal(originAllowed('https://GW.example.org', 'gw.example.org', []), true);
    assert.equal(originAllowed('http://gw.example.org:80', 'gw.example.org', []), true);
    assert.equal(originAllowed('http://evil.example', '127.0.0.1:9093', []), false);
    assert.equal(originAllowed('http://127.0.0.1:9999', '127.0.0.1:9093', []), false);
    assert.equal(originAllowed('null', '127.0.0.1:9093', []), false);
  });

  it('allows listed origins and * for any', () => {
    assert.equal(originAllowed('https://dash.example', 'gw:9093', ['https://dash.example/']), true);
    assert.equal(originAllowed('https://other.example', 'gw:9093', ['https://dash.example']), false);
    assert.equal(originAllowed('https://other.example', 'gw:9093', ['*']), true);
  });
});

describe('listening off loopback', () => {
  it('the library listener refuses a non-loopback address without TLS and a subscriber token (src/core/open-door.ts)', async () => {
    const server = new ReplicationServer({ writerToken: 'w' });
    const http = new HttpListener(server);
    try {
      await assert.rejects(http.listen('0.0.0.0', 0), /^Error: refusing to listen on 0\.0\.0\.0:0 \(--http\) without TLS and a credential/);
    } finally {
      await Promise.all([server.close(), http.close()]);
    }
  });
});

describeEachEngine('WebSocket access', (edge) => {
  it('requires AUTH before anything but PING when a subscriber token is configured', async () => {
    const gw = await edge.start({ subscriberToken: 'sub' });
    try {
      const early = await WsPeer.open(gw.wsUrl);
      early.send('PING 1\nREPLICATE events NOW');
      assert.match(await early.line(/^ERROR /), /^ERROR authentication required: send AUTH <token> before REPLICATE/);
      await early.waitClosed();

      const good = await WsPeer.open(gw.wsUrl);
      good.send('AUTH sub\nREPLICATE events NOW');
      await good.line(/^POSITION events \d+$/);
      good.terminate();
    } finally {
      await gw.close();
    }
  });

  it('limits a token to its stream list (--subscriber-token T:events,typing)', async () => {
    const gw = await edge.start({ credentials: [parseTokenSpec('tab:events,typing')] });
    try {
      const peer = await WsPeer.open(gw.wsUrl);
      peer.send('AUTH tab\nREPLICATE ALL NOW');
      await peer.line(/^POSITION typing \d+$/);
      await peer.line(/^POSITION events \d+$/);
      await gw.server.publish('caches', [['x']]);
      const token = await gw.server.publish('events', [['y']]);
      await peer.line(new RegExp(`^RDATA events ${token} `));
      assert.ok(!peer.lines.some((l) => l.includes(' caches ')), peer.lines.join('|'));

      const denied = await WsPeer.open(gw.wsUrl);
      denied.send('AUTH tab\nREPLICATE caches 0');
      assert.equal(await denied.line(/^ERROR /), 'ERROR not permitted to read stream caches');
      await denied.waitClosed();
      peer.terminate();
    } finally {
      await gw.close();
    }
  });

  it('keeps subscriber roles read-only', async () => {
    const gw = await edge.start({ subscriberToken: 'sub', writerToken: 'w' });
    try {
      const peer = await WsPeer.open(gw.wsUrl);
      peer.send('AUTH sub\nRDATA events 99 ["x"]');
      assert.match(await peer.line(/^ERROR /), /^ERROR RDATA may not be sent by a client/);
      await peer.waitClosed();
      assert.equal(gw.server.head('events'), 0);
    } finally {
      await gw.close();
    }
  });

  it('refuses an upgrade from another origin with 403, and takes listed ones', async () => {
    const gw = await edge.start({}, { allowOrigins: ['https://dash.example'] });
    try {
      const foreign = new WsPeer(gw.wsUrl, { origin: 'https://evil.example' });
      await assert.rejects(foreign.opened, /Unexpected server response: 403/);
      assert.equal(gw.http.bridge.refusedOrigins, 1);

      const same = await WsPeer.open(gw.wsUrl, { origin: gw.httpUrl });
      await same.line(/^SERVER /);
      const listed = await WsPeer.open(gw.wsUrl, { origin: 'https://dash.example' });
      await listed.line(/^SERVER /);
      const noOrigin = await WsPeer.open(gw.wsUrl);
      await noOrigin.line(/^SERVER /);
      for (const p of [same, listed, noOrigin]) p.terminate();
      await waitUntil('sockets gone', () => (gw.http.bridge.socketCount === 0 ? true : undefined));
    } finally {
      await gw.close();
    }
  });
});
