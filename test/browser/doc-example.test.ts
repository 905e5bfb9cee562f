// docs/websocket.md's browser page, exactly as written, in headless chromium
// against `replication-gateway serve` on its defaults (a writer token added so
// rows can be published): it shows the rows a TCP writer publishes.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { ENGINES } from '../bindings/ws-harness.js';
import { docExamples } from '../support/doc-examples.js';
import { LineClient, killAllGateways, startGateway, type GatewayProcess } from '../e2e/support/gateway-process.js';
import { launchChromium } from './browser-harness.js';

after(() => killAllGateways());

const [example] = docExamples('html').filter((e) => e.where.startsWith('docs/websocket.md'));

for (const { name: engine, skip } of ENGINES) {
  describeExample(engine, skip);
}

function describeExample(engine: string, skip: string | false): void {
  let gw: GatewayProcess;
  let browser: Browser;
  before(async () => {
    if (skip !== false) return;
    gw = await startGateway(['--ws-engine', engine, '--writer-token', 'w']);
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await gw?.stop();
  });

  it(`[${engine}] docs/websocket.md's page shows the rows a writer publishes, as written`, { skip, timeout: 30_000 }, async () => {
    assert.ok(example !== undefined, 'docs/websocket.md has an html example');
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    // The page as a user would host it: a document of the gateway's own origin (so /client.js and /replication are its).
    await page.goto(`http://127.0.0.1:${gw.http}/healthz`);
    await page.setContent(example.code);
    // The page subscribes from NOW: publish once its WebSocket is in.
    await page.waitForFunction(() => performance.getEntriesByType('resource').some((e) => e.name.endsWith('/client.js')), null, { timeout: 10_000 });
    const writer = await LineClient.connect(gw.tcp);
    writer.send('AUTH w', 'REPLICATE events NOW');
    await writer.waitFor((l) => l.startsWith('POSITION events'));
    let token = 0;
    const deadline = Date.now() + 15_000;
    let items: string[] = [];
    while (items.length === 0 && Date.now() < deadline) {
      writer.send(`RDATA events ${++token} ["$ev${token}","!room:hs"]`);
      await new Promise((r) => setTimeout(r, 200));
      items = await page.locator('#rows li').allTextContents();
    }
    writer.close();
    assert.ok(items.length > 0, `rows shown; page errors: ${pageErrors.join('; ')}`);
    assert.match(items[0]!, /^events \d+ \["\$ev\d+","!room:hs"\]$/);
    assert.deepEqual(pageErrors, []);
    await page.close();
  });
}
