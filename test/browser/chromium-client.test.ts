// A real browser: headless chromium opens a page on the gateway, loads
// /client.js, follows a stream, and sees the rows a TCP writer publishes
// after it connected, in order, also across a cut.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { parseTokenSpec } from '../../src/core/credentials.js';
import { describeEachEngine, TcpPeer, waitUntil, type Gateway } from '../bindings/ws-harness.js';
import { artifactPath, ensureBrowserBuild, launchChromium } from './browser-harness.js';
import { hubOf } from '../../src/server.js';

/** What the page runs: plain browser JavaScript, as a dashboard would write it. */
const PAGE_SCRIPT = `
import { ReplicationClient } from '/client.js';
document.body.innerHTML = '<h1>events</h1><p id="status">connecting</p><ol id="rows"></ol>';
const state = { rows: [], positions: [], errors: [] };
window.state = state;
const client = new ReplicationClient({ streams: ['events'], auth: 'tab', name: 'chromium-tab', backoff: { initialMs: 50, maxMs: 200 } });
client.on('position', ({ token }) => {
  state.positions.push(token);
  document.getElementById('status').textContent = 'at ' + token;
});
client.on('error', ({ message }) => state.errors.push(message));
client.on('rows', ({ stream, token, rows }) => {
  state.rows.push({ stream, token, rows });
  for (const r of rows) {
    const li = document.createElement('li');
    li.textContent = stream + ' ' + token + ' ' + JSON.stringify(r);
    document.getElementById('rows').append(li);
  }
});
window.client = client.start();
`;

/** Globals of the page, as seen from page.evaluate (no DOM typings in this project). */
type PageGlobals = typeof globalThis & { state: PageState; client: { close(): Promise<void> } };

interface PageState {
  rows: { stream: string; token: number; rows: unknown[] }[];
  positions: number[];
  errors: string[];
}

describeEachEngine('browser client in chromium', (edge) => {
  let gw: Gateway;
  let browser: Browser;
  before(async () => {
    await ensureBrowserBuild();
    gw = await edge.start({ writerToken: 'w-secret', credentials: [parseTokenSpec('tab:events')] });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await gw?.close();
  });

  it('follows a stream and shows rows published over TCP, in order', async () => {
    const page = await browser.newPage({ viewport: { width: 900, height: 500 } });
    const consoleErrors: string[] = [];
    page.on('pageerror', (err) => consoleErrors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(msg.text());
    });
    // Any page of the gateway's origin: /client.js is then same-origin, as for a real dashboard.
    await page.goto(`${gw.httpUrl}/healthz`);
    await page.addScriptTag({ type: 'module', content: PAGE_SCRIPT });
    await waitUntil('the tab subscribed', () =>
      gw.server.connections().find((c) => c.name === 'chromium-tab' && c.transportKind === 'ws' && c.subscriptions().length === 1),
    );
    await page.waitForFunction(() => (globalThis as PageGlobals).state.positions.length > 0, null, { timeout: 5000 });

    const writer = await TcpPeer.connect(gw.tcpPort);
    writer.send('AUTH w-secret\n');
    const sent: [number | 'batch', unknown][] = [];
    for (let t = 1; t <= 6; t++) {
      if (t === 4) sent.push(['batch', { n: 'batch-row', t }]);
      sent.push([t, { n: `row ${t}`, ok: true }]);
    }
    writer.send(sent.map(([t, r]) => `RDATA events ${t} ${JSON.stringify(r)}\n`).join(''));
    await page.waitForFunction(() => (globalThis as PageGlobals).state.rows.length === 6, null, { timeout: 5000 });

    // Cut the tab's connection and write while it is away: it reconnects and resumes.
    for (const c of hubOf(gw.server).connections()) if (c.name === 'chromium-tab') c.close('shutdown', 'test cut');
    writer.send('RDATA events 7 {"n":"row 7","ok":true}\nRDATA events 8 {"n":"row 8","ok":true}\n');
    await page.waitForFunction(() => (globalThis as PageGlobals).state.rows.length === 8, null, { timeout: 10_000 });

    const state = await page.evaluate(() => (globalThis as PageGlobals).state);
    assert.deepEqual(state.rows.map((r) => r.token), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(state.rows[3]!.rows, [{ n: 'batch-row', t: 4 }, { n: 'row 4', ok: true }]);
    assert.deepEqual(state.rows[7]!.rows, [{ n: 'row 8', ok: true }]);
    assert.ok(state.rows.every((r) => r.stream === 'events'));
    assert.deepEqual(state.errors, ['test cut']);
    assert.deepEqual(consoleErrors, []);
    assert.equal(await page.locator('#rows li').count(), 9);
    await page.screenshot({ path: artifactPath('browser-client.png') });
    writer.close();
    await page.evaluate(() => (globalThis as PageGlobals).client.close());
    await page.close();
  });
});
