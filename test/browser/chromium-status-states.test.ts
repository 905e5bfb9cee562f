// The status page of a whole gateway (in process, on 127.0.0.1) in chromium,
// through the states an operator meets: rows flowing with a worker falling
// behind, that worker cut, the page on a 480 px screen, and the page
// reconnecting after the gateway went away. A screenshot of each goes to
// test/artifacts.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { pino } from 'pino';
import type { Browser, Page } from 'playwright-core';
import { loadConfig } from '../../src/gateway/config.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { describeEachEngine, TcpPeer, waitUntil } from '../bindings/ws-harness.js';
import { artifactPath, ensureBrowserBuild, launchChromium } from './browser-harness.js';

const FILLER = 'x'.repeat(32 * 1024);

describeEachEngine('status page states in chromium', ({ engine }) => {
  let gateway: Gateway;
  let tcpPort: number;
  let httpUrl: string;
  let browser: Browser;
  let page: Page;
  const peers: TcpPeer[] = [];
  let token = 0;

  before(async () => {
    await ensureBrowserBuild();
    const { config } = loadConfig({
      argv: ['--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--ws-engine', engine, '--writer-token', 'w', '--streams', 'events,typing',
        '--max-queue-bytes', '4MiB', '--max-queue-commands', '1000000', '--max-stall-ms', '6000'],
      env: {},
    });
    gateway = await Gateway.open(config, pino({ level: 'silent' }));
    const addresses = (await gateway.start())!;
    tcpPort = addresses.tcp.port;
    httpUrl = `http://127.0.0.1:${addresses.http!.port}`;
    browser = await launchChromium();
  });
  after(async () => {
    for (const p of peers) p.close();
    await browser?.close();
    await gateway?.stop(2_000);
  });

  const connect = async (lines: string): Promise<TcpPeer> => {
    const peer = await TcpPeer.connect(tcpPort);
    peers.push(peer);
    peer.send(lines);
    return peer;
  };
  const stuckQueued = (): number => gateway.server.connections().find((c) => c.name === 'stuck-worker')?.queuedBytes ?? 0;

  it('shows rows/s over a window with a sparkline, uptime and version, lag in seconds and how full a queue is', async () => {
    const writer = await connect('NAME writer\nAUTH w\n');
    const live = await connect('NAME live-worker\nREPLICATE events NOW\n');
    await live.line(/^POSITION events/);
    const stuck = await connect('NAME stuck-worker\nREPLICATE events NOW\n');
    await stuck.line(/^POSITION events/);
    stuck.socket.pause();

    page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`${httpUrl}/`);
    await page.locator('#state', { hasText: 'live' }).waitFor({ timeout: 5000 });

    // Rows until the stuck worker has some queued (its socket buffers full), well short of its 4 MiB limit.
    await waitUntil('bytes queued for the stuck worker', () => {
      if (stuckQueued() > 256 * 1024) return true;
      for (let i = 0; i < 8; i++) writer.send(`RDATA events ${++token} ["${FILLER}"]\n`);
      return undefined;
    }, 10_000);
    const rate = page.locator('#streams tr[data-key="events"] td.rate');
    await rate.filter({ hasText: /^[1-9]\d*$/ }).waitFor({ timeout: 5000 });
    const fill = page.locator('#connections tr', { hasText: 'stuck-worker' }).locator('td[data-fill]');
    for (let i = 0; i < 100 && !(Number(await fill.getAttribute('data-fill')) > 0); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(Number(await fill.getAttribute('data-fill')) > 0, 'the stuck worker\'s queue bar is filled');
    // Nothing more is written: two seconds on, the 10 s window still shows the rows.
    await new Promise((r) => setTimeout(r, 2_000));
    assert.match((await rate.textContent())!, /^[1-9]\d*$/, 'rows/s is not 0 right after a burst');
    const points = await page.locator('#streams tr[data-key="events"] svg.spark polyline').getAttribute('points');
    assert.ok(points !== null && points.split(' ').length >= 2, `sparkline points: ${points}`);
    assert.match((await page.locator('#connections tr', { hasText: 'live-worker' }).locator('td.lag').textContent())!, /^\d+ \/ \d+\.\ds$/);
    assert.match((await page.locator('#version').textContent())!, /^\d+\.\d+\.\d+/);
    assert.match((await page.locator('#uptime').textContent())!, /^\d+[smhd]$/);
    assert.deepEqual(errors, []);
    await page.screenshot({ path: artifactPath(`status-live-${engine}.png`), fullPage: true });
  });

  it('drops a cut worker from the live connections and lists it in recent cuts with its limit, queue and last token', async () => {
    const writer = peers[0]!;
    const before = token;
    await waitUntil('the stuck worker cut', () => {
      if (!gateway.server.connections().some((c) => c.name === 'stuck-worker')) return true;
      if (gateway.cuts.list().length > 0) return true;
      for (let i = 0; i < 8; i++) writer.send(`RDATA events ${++token} ["${FILLER}"]\n`);
      return undefined;
    }, 10_000);
    assert.ok(token > before);
    const cut = page.locator('#cuts tr', { hasText: 'stuck-worker' });
    await cut.waitFor({ timeout: 5000 });
    // Past its queue limits it read from the log: what cuts a worker that stopped reading is the stall limit.
    assert.equal(await cut.locator('td.limit').textContent(), 'stall');
    assert.match((await cut.locator('td.queued').textContent())!, /^\d+ \/ \d+$/);
    assert.match((await cut.locator('td.token').textContent())!, /^\d+$/);
    await page.locator('#connections tr', { hasText: 'stuck-worker' }).waitFor({ state: 'detached', timeout: 5000 });
    await page.locator('#connections tr', { hasText: 'live-worker' }).waitFor({ timeout: 5000 });
    await page.screenshot({ path: artifactPath(`status-cut-${engine}.png`), fullPage: true });
  });

  it('fits a 480 px wide screen without the page scrolling sideways', async () => {
    await page.setViewportSize({ width: 480, height: 800 });
    await page.locator('#state', { hasText: 'live' }).waitFor({ timeout: 5000 });
    // No DOM typings in this project: the page's document as far as this needs it.
    const width = await page.evaluate(() => (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } }).document.documentElement.scrollWidth);
    assert.ok(width <= 480, `page is ${width} px wide`);
    assert.ok(await page.locator('#streams tr[data-key="events"] svg.spark').isVisible());
    await page.screenshot({ path: artifactPath(`status-480px-${engine}.png`), fullPage: true });
    await page.setViewportSize({ width: 1100, height: 800 });
  });

  it('greys what it shows while it is reconnecting', async () => {
    assert.equal(await page.locator('#main.stale').count(), 0);
    for (const p of peers) p.close();
    await gateway.stop(2_000);
    await page.locator('#state', { hasText: 'reconnecting' }).waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#main.stale').count(), 1);
    // The old numbers stay readable (greyed), not blanked.
    await page.locator('#streams tr[data-key="events"]').waitFor({ timeout: 1000 });
    await page.screenshot({ path: artifactPath(`status-reconnecting-${engine}.png`), fullPage: true });
    await page.close();
  });
});
