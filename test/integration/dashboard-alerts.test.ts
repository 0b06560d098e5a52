import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';
import { startPageServer, type PageServer } from '../helpers/pages.js';

/*
 * Issue 12: the dashboard calls the operator. Real daemon, real sessions; `Notification` is
 * stubbed in the page to observe the call. Writes docs/screenshots/dashboard.png.
 */

const SHOTS = new URL('../../docs/screenshots/', import.meta.url);

describe('dashboard alerts', { timeout: 120_000 }, () => {
  let daemon: RunningDaemon;
  let browser: Browser;
  let dash: Page;
  let agent: Browser;
  let pages: PageServer;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    pages = await startPageServer();
    daemon = await startDaemon();
    browser = await puppeteer.launch({ executablePath: '/usr/lib/chromium/chromium', headless: true, args: ['--no-sandbox'] });
    // One session that ended, one live with an agent on a page.
    const ended = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=finished-run&auto_close=false`, defaultViewport: null });
    await ended.disconnect();
    expect((await api(daemon.url, '/session/finished-run/stop', { method: 'POST' })).status).toBe(200);
    agent = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=checkout-run&auto_close=false`, defaultViewport: null });
    await (await agent.pages())[0]!.goto(`${pages.url}/login`);
  }, 180_000);

  afterAll(async () => {
    await agent?.disconnect();
    await browser?.close();
    await daemon?.cleanup();
    await pages?.close();
  }, 60_000);

  it('notifies on a help request (permission asked on a click), badges the title, collapses ended sessions, shows the page', async () => {
    dash = await browser.newPage();
    await dash.setViewport({ width: 1100, height: 760 });
    await dash.evaluateOnNewDocument(() => {
      const w = window as any;
      w.notes = [];
      w.permissionAsked = 0;
      w.Notification = class {
        static permission = 'default';
        static async requestPermission() {
          w.permissionAsked++;
          w.Notification.permission = 'granted';
          return 'granted';
        }
        onclick: unknown = null;
        constructor(title: string, opts: { body?: string }) {
          w.notes.push({ title, body: opts?.body });
        }
        close() {}
      };
    });
    await dash.goto(daemon.url + '/');
    await dash.waitForSelector('[data-session="checkout-run"]');
    expect(await dash.evaluate(() => (window as any).permissionAsked)).toBe(0); // not before a click
    await dash.click('#notify');
    await waitFor('permission', async () => (await dash.$eval('#notify', (b) => b.textContent)) === 'Notifications on');

    // Live first; the ended one in a collapsed section.
    expect(await dash.$$eval('#sessions .session code', (c) => c.map((x) => x.textContent))).toEqual(['checkout-run']);
    expect(await dash.$$eval('#ended .session code', (c) => c.map((x) => x.textContent))).toEqual(['finished-run']);
    expect(await dash.$eval('#ended-section', (d) => (d as HTMLDetailsElement).open)).toBe(false);
    expect(await dash.$eval('#ended-count', (e) => e.textContent)).toBe('(1)');

    // The page title, URL and a thumbnail of the screen.
    const title = () => dash.$eval('[data-session="checkout-run"] .page-title', (e) => e.textContent ?? '');
    await waitFor('a page title', title, 40_000);
    await waitFor('the page title', async () => (await title()) === 'login', 20_000).catch(async (e) => {
      throw new Error(`${e.message}: shows "${await title()}"`);
    });
    expect(await dash.$eval('[data-session="checkout-run"] .page-url', (e) => e.textContent)).toBe(`${pages.url}/login`);
    await waitFor('the thumbnail', () => dash.$eval('[data-session="checkout-run"] img.thumb', (i) => !(i as HTMLImageElement).hidden && (i as HTMLImageElement).naturalWidth === 320));

    expect(await dash.evaluate(() => (window as any).notes.length)).toBe(0);
    expect(await dash.title()).toBe('handoff');
    const asked = await api(daemon.url, '/session/checkout-run/handoff', { method: 'POST', body: JSON.stringify({ reason: 'Solve the captcha' }) });
    expect(asked.status).toBe(200);
    const notes = await waitFor('a notification', () => dash.evaluate(() => (window as any).notes.length && (window as any).notes));
    expect(notes).toEqual([{ title: 'Help requested: session checkout-run', body: 'Solve the captcha' }]);
    await waitFor('the title badge', async () => (await dash.title()) === '(1) handoff: help requested');
    expect(await dash.$eval('#session-count', (e) => e.textContent)).toBe('(1 live, 1 asking for help)');
    // Once per request, however many polls see it.
    await new Promise((r) => setTimeout(r, 2500));
    expect(await dash.evaluate(() => (window as any).notes.length)).toBe(1);

    // The audit, newest first, in words.
    await waitFor('audit row', async () => (await dash.$eval('#audit tr:first-child', (r) => r.textContent ?? '')).includes('help requested'));
    expect(await dash.$eval('#audit', (t) => t.textContent)).toContain('agent attached over cdp');
    await dash.screenshot({ path: new URL('dashboard.png', SHOTS).pathname as `${string}.png` });

    // Muting is remembered.
    await dash.click('#sound');
    expect(await dash.$eval('#sound', (b) => b.getAttribute('aria-pressed'))).toBe('false');
    expect(await dash.evaluate(() => localStorage.getItem('handoff.sound'))).toBe('off');
  });
});
