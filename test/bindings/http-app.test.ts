// The HTTP listener's rules that an engine could bend, checked on each
// engine: a port in use is refused, request headers are taken up to one
// limit and answered 431 past it, and only a WebSocket on /replication is an
// upgrade.
import assert from 'node:assert/strict';
import net from 'node:net';
import { it } from 'node:test';
import { HTTP_MAX_HEADER_BYTES } from '../../src/bindings/edge-engine.js';
import { chooseEngine } from '../../src/bindings/engine-choice.js';
import { HttpListener } from '../../src/bindings/http-app.js';
import { describeEachEngine, WAIT_MS, WsPeer } from './ws-harness.js';

/**
 * Sends `request` on a fresh connection, whole or in writes of `pieceBytes`
 * 5 ms apart (so each is its own read); resolves with what came back once
 * the head of an answer is in, or the close.
 */
function rawExchange(port: number, request: string, pieceBytes = 0): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const socket = net.connect(port, '127.0.0.1', async () => {
      if (pieceBytes === 0) return socket.write(request);
      for (let at = 0; at < request.length && !socket.destroyed; at += pieceBytes) {
        socket.write(request.slice(at, at + pieceBytes));
        await new Promise((r) => setTimeout(r, 5));
      }
    });
    const done = (): void => {
      socket.destroy();
      resolve(got);
    };
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes('\r\n\r\n')) done();
    });
    socket.on('error', () => {});
    socket.on('close', done);
    socket.setTimeout(WAIT_MS, done);
  });
}

describeEachEngine('HTTP listener', (edge) => {
  it('answers HEAD on every GET path: the same status and headers, no body', async () => {
    const gw = await edge.start();
    try {
      for (const path of ['/', '/client.js', '/healthz', '/favicon.ico']) {
        const get = await fetch(`${gw.httpUrl}${path}`);
        const getBody = Buffer.from(await get.arrayBuffer());
        const head = await fetch(`${gw.httpUrl}${path}`, { method: 'HEAD' });
        assert.equal(head.status, get.status, `HEAD ${path}`);
        assert.equal(head.headers.get('content-type'), get.headers.get('content-type'), `HEAD ${path} content-type`);
        if (get.status === 200) assert.equal(head.headers.get('content-length'), String(getBody.length), `HEAD ${path} content-length`);
        assert.equal((await head.arrayBuffer()).byteLength, 0, `HEAD ${path} has no body`);
      }
    } finally {
      await gw.close();
    }
  });

  it('lets the pages of --allow-origin origins load /client.js (CORS), and no others', async () => {
    const gw = await edge.start({}, { allowOrigins: ['https://dash.example.com'] });
    try {
      const allowed = await fetch(`${gw.httpUrl}/client.js`, { headers: { origin: 'https://dash.example.com' } });
      assert.equal(allowed.status, 200);
      assert.equal(allowed.headers.get('access-control-allow-origin'), 'https://dash.example.com');
      assert.match(allowed.headers.get('vary') ?? '', /Origin/);
      const other = await fetch(`${gw.httpUrl}/client.js`, { headers: { origin: 'https://evil.example.net' } });
      assert.equal(other.status, 200, 'served (a script tag of the same origin needs no CORS)');
      assert.equal(other.headers.get('access-control-allow-origin'), null, 'but not readable by another origin');
      const status = await fetch(`${gw.httpUrl}/healthz`, { headers: { origin: 'https://dash.example.com' } });
      assert.equal(status.headers.get('access-control-allow-origin'), null, 'only /client.js is shared');
    } finally {
      await gw.close();
    }
  });

  it('refuses a port in use, and the first listener carries on', async () => {
    const gw = await edge.start();
    const second = new HttpListener(gw.server, { engine: chooseEngine(edge.engine), closeGraceMs: 0 });
    try {
      await assert.rejects(second.listen('127.0.0.1', gw.httpPort), new RegExp(`^Error: cannot listen for HTTP on 127\\.0\\.0\\.1:${gw.httpPort}: `));
      assert.equal((await fetch(`${gw.httpUrl}/healthz`)).status, 200);
    } finally {
      await second.close();
      await gw.close();
    }
  });

  it(`serves request headers of 8 KiB, and answers 431 past ${HTTP_MAX_HEADER_BYTES / 1024} KiB, in one write or in pieces`, async () => {
    const gw = await edge.start();
    try {
      const request = (bytes: number, path = '/healthz', more = ''): string =>
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${more}X-Big: ${'a'.repeat(bytes)}\r\n\r\n`;
      const OK = /^HTTP\/1\.1 200 /;
      const TOO_LARGE = /^HTTP\/1\.1 431 /;
      assert.match(await rawExchange(gw.httpPort, request(8 * 1024)), OK);
      assert.match(await rawExchange(gw.httpPort, request(100 * 1024)), TOO_LARGE);
      const upgrade = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
      assert.match(await rawExchange(gw.httpPort, request(100 * 1024, '/replication', upgrade)), TOO_LARGE, 'an upgrade too');
      if (edge.engine === 'uws') {
        // uWebSockets.js 20.30 keeps at most 4 KiB of a header block that arrives in more than one
        // read, fixed when it was built, and past that closes without a word: nothing to answer
        // with on this engine (docs/websocket.md). This shows it, so a build without it is noticed.
        assert.equal(await rawExchange(gw.httpPort, request(8 * 1024), 1024), '');
        assert.equal(await rawExchange(gw.httpPort, request(100 * 1024), 1024), '');
        assert.match(await rawExchange(gw.httpPort, request(3 * 1024), 1024), OK, 'under 4 KiB in pieces is served');
      } else {
        assert.match(await rawExchange(gw.httpPort, request(8 * 1024), 1024), OK);
        assert.match(await rawExchange(gw.httpPort, request(100 * 1024), 1024), TOO_LARGE);
      }
      assert.equal((await fetch(`${gw.httpUrl}/healthz`)).status, 200);
    } finally {
      await gw.close();
    }
  });

  it('answers a plain GET of /replication, and a WebSocket elsewhere, as HTTP requests', async () => {
    const gw = await edge.start();
    try {
      const plain = await fetch(`${gw.httpUrl}/replication`);
      assert.equal(plain.status, 404);
      assert.equal(await plain.text(), 'not found\n');
      const elsewhere = new WsPeer(`ws://127.0.0.1:${gw.httpPort}/elsewhere`);
      await assert.rejects(elsewhere.opened, /Unexpected server response: 404/);
      const health = new WsPeer(`ws://127.0.0.1:${gw.httpPort}/healthz`);
      await assert.rejects(health.opened, /Unexpected server response: 200/);
    } finally {
      await gw.close();
    }
  });
});
