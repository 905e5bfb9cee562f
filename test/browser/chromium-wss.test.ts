// A real browser over TLS: headless chromium opens a page from the gateway's
// HTTPS listener (a throwaway CA it is told to accept), and the page's client,
// by default on wss:// for an https page, follows a stream a TCP writer fills.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { describeEachEngine, TcpPeer, type Gateway } from '../bindings/ws-harness.js';
import { makeTestPki, type TestPki } from '../support/test-pki.js';
import { ensureBrowserBuild, launchChromium } from './browser-harness.js';

const PAGE_SCRIPT = `
import { ReplicationClient } from '/client.js';
const state = { rows: [], positions: [], url: location.href };
window.state = state;
const client = new ReplicationClient({ streams: ['events'], name: 'chromium-wss' });
client.on('position', ({ token }) => state.positions.push(token));
client.on('rows', ({ token, rows }) => state.rows.push({ token, rows }));
window.client = client.start();
`;

type PageGlobals = typeof globalThis & { state: { rows: { token: number; rows: unknown[] }[]; positions: number[]; url: string }; client: { close(): Promise<void> } };

describeEachEngine('browser client in chromium over wss://', (edge) => {
  let pki: TestPki;
  let gw: Gateway;
  let browser: Browser;
  before(async () => {
    await ensureBrowserBuild();
    pki = await makeTestPki();
    gw = await edge.start({ writerToken: 'w' }, { tls: { cert: pki.server.cert, key: pki.server.key } });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await gw?.close();
    await pki?.remove();
  });

  it('loads the page over HTTPS and follows a stream over wss://', { timeout: 30_000 }, async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await page.goto(`${gw.httpUrl}/healthz`);
    await page.addScriptTag({ type: 'module', content: PAGE_SCRIPT });
    // The module runs once its import of /client.js has loaded: `state` appears then.
    await page.waitForFunction(() => ((globalThis as Partial<PageGlobals>).state?.positions.length ?? 0) > 0, null, { timeout: 10_000 });
    const writer = await TcpPeer.connect(gw.tcpPort);
    writer.send('AUTH w\nRDATA events 1 {"over":"wss"}\nRDATA events 2 {"n":2}\n');
    await page.waitForFunction(() => (globalThis as PageGlobals).state.rows.length === 2, null, { timeout: 10_000 });
    const state = await page.evaluate(() => (globalThis as PageGlobals).state);
    assert.match(state.url, /^https:\/\/127\.0\.0\.1:\d+\//);
    assert.deepEqual(state.rows, [
      { token: 1, rows: [{ over: 'wss' }] },
      { token: 2, rows: [{ n: 2 }] },
    ]);
    const tab = gw.server.connections().find((c) => c.name === 'chromium-wss');
    assert.equal(tab?.transportKind, 'ws');
    writer.close();
    await page.evaluate(() => (globalThis as PageGlobals).client.close());
    await context.close();
  });
});
