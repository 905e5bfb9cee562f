// A real browser authenticating by an HttpOnly cookie (--auth-cookie): the
// page's script never sees the token, the client library sends no AUTH, and
// the WebSocket upgrade carries the cookie, so the page reads what the
// cookie's token allows: its stream, not another.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { parseTokenSpec } from '../../src/core/credentials.js';
import { describeEachEngine, waitUntil, type Gateway } from '../bindings/ws-harness.js';
import { ensureBrowserBuild, launchChromium } from './browser-harness.js';

const PAGE_SCRIPT = `
import { ReplicationClient } from '/client.js';
const state = { rows: [], positions: [], errors: [], cookie: document.cookie };
window.state = state;
const client = new ReplicationClient({ streams: [window.STREAM], name: 'cookie-tab', backoff: { initialMs: 50, maxMs: 200 } });
client.on('position', ({ token }) => state.positions.push(token));
client.on('error', ({ message }) => state.errors.push(message));
client.on('rows', ({ token, rows }) => state.rows.push({ token, rows }));
window.client = client.start();
`;

type PageGlobals = typeof globalThis & { state: { rows: { token: number; rows: unknown[] }[]; positions: number[]; errors: string[]; cookie: string }; client: { close(): Promise<void> } };

describeEachEngine('cookie authentication in chromium', (edge) => {
  let gw: Gateway;
  let browser: Browser;
  before(async () => {
    await ensureBrowserBuild();
    gw = await edge.start({ credentials: [parseTokenSpec('tab-cookie:typing'), parseTokenSpec('ops')] }, { authCookie: 'rg_token' });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await gw?.close();
  });

  async function openPage(stream: string) {
    const context = await browser.newContext();
    await context.addCookies([{ name: 'rg_token', value: 'tab-cookie', url: gw.httpUrl, httpOnly: true, sameSite: 'Strict' }]);
    const page = await context.newPage();
    await page.goto(`${gw.httpUrl}/healthz`);
    await page.evaluate((s) => ((globalThis as unknown as { STREAM: string }).STREAM = s), stream);
    await page.addScriptTag({ type: 'module', content: PAGE_SCRIPT });
    return { context, page };
  }

  it('follows the stream its cookie allows, with the token out of reach of the script', async () => {
    const { context, page } = await openPage('typing');
    // The page's module may not have run yet when addScriptTag resolves: no state to read until then.
    await page.waitForFunction(() => ((globalThis as Partial<PageGlobals>).state?.positions.length ?? 0) > 0, null, { timeout: 5000 });
    const conn = await waitUntil('the page connection', () => gw.server.connections().find((c) => c.name === 'cookie-tab'));
    assert.equal(conn.role, 'subscriber');
    const token = await gw.server.publish('typing', [{ user: '@a:hs' }]);
    await page.waitForFunction(() => (globalThis as PageGlobals).state.rows.length === 1, null, { timeout: 5000 });
    const state = await page.evaluate(() => (globalThis as PageGlobals).state);
    assert.deepEqual(state.rows, [{ token, rows: [{ user: '@a:hs' }] }]);
    assert.equal(state.cookie, '', 'an HttpOnly cookie is not visible to the page');
    await page.evaluate(() => (globalThis as PageGlobals).client.close());
    await context.close();
  });

  it('is refused a stream its cookie does not allow', async () => {
    const { context, page } = await openPage('events');
    await page.waitForFunction(() => ((globalThis as Partial<PageGlobals>).state?.errors.length ?? 0) > 0, null, { timeout: 5000 });
    const state = await page.evaluate(() => (globalThis as PageGlobals).state);
    assert.equal(state.errors[0], 'not permitted to read stream events');
    assert.deepEqual(state.rows, []);
    await page.evaluate(() => (globalThis as PageGlobals).client.close());
    await context.close();
  });
});
