// A real browser opens the status page at / and sees the stream's head
// token move as rows are written, fed by the status feed over WebSocket.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { describeEachEngine, row, TcpPeer, type Gateway } from '../bindings/ws-harness.js';
import { artifactPath, ensureBrowserBuild, launchChromium } from './browser-harness.js';

describeEachEngine('status page in chromium', (edge) => {
  let gw: Gateway;
  let browser: Browser;
  before(async () => {
    await ensureBrowserBuild();
    gw = await edge.start({ subscriberToken: 'ops' }, { status: { intervalMs: 100 } });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await gw?.close();
  });

  it('shows the head token of a stream moving, with the connection reading it', async () => {
    const worker = await TcpPeer.connect(gw.tcpPort);
    worker.send('AUTH ops\nNAME synapse.app.federation_sender\nREPLICATE events NOW\n');
    await worker.line(/^POSITION events/);
    await gw.server.publish('events', [row(1)]);

    const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`${gw.httpUrl}/#token=ops`);
    const head = page.locator('#streams tr[data-key="events"] td.head');
    await head.filter({ hasText: /^1$/ }).waitFor({ timeout: 5000 });

    for (let i = 2; i <= 4; i++) await gw.server.publish('events', [row(i)]);
    await head.filter({ hasText: /^4$/ }).waitFor({ timeout: 5000 });
    await page.locator('#connections td', { hasText: 'synapse.app.federation_sender' }).waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#state').textContent(), 'live');
    assert.deepEqual(errors, []);
    await page.screenshot({ path: artifactPath('status-page.png'), fullPage: true });
    worker.close();
    await page.close();
  });

  it('asks for a token when none is given', async () => {
    const page = await browser.newPage();
    await page.goto(`${gw.httpUrl}/`);
    await page.locator('#auth').waitFor({ state: 'visible', timeout: 5000 });
    await page.fill('#token', 'ops');
    await page.click('#auth button');
    await page.locator('#streams tr[data-key="events"] td.head').waitFor({ timeout: 5000 });
    await page.close();
  });
});
