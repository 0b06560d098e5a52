import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { chromium } from 'playwright-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { DOWNLOAD_BYTES, startPageServer, type PageServer } from '../helpers/pages.js';
import { api, waitFor } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';

/**
 * API.md 3.1, 3.3, 4: real Puppeteer and Playwright drive pages through the daemon's CDP
 * proxy; auto_close both ways; the long poll; downloads.
 */
let d: RunningDaemon;
let pages: PageServer;
const leaks = new LeakTracker();

beforeAll(async () => {
  [d, pages] = await Promise.all([startDaemon(), startPageServer()]);
});

afterAll(async () => {
  await d?.cleanup();
  await pages?.close();
  expect(leaks.leftovers()).toEqual([]);
});

/** The page the session's kiosk window shows (the one that fills the display). */
async function firstPage(browser: Browser): Promise<Page> {
  const all = await browser.pages();
  expect(all.length).toBeGreaterThan(0);
  return all[0]!;
}

async function auditTypes(sessionId: string): Promise<string[]> {
  const { body } = await api(d.url, `/audit?session_id=${sessionId}`);
  return body.events.map((e: { type: string }) => e.type);
}

describe('Puppeteer through the proxy', () => {
  it('navigates, clicks, types and reads back in a page that fills 1280x720; disconnecting stops the session (auto_close default)', async () => {
    const browser = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=pptr-default`, defaultViewport: null });
    leaks.note(d.stateDir);
    const page = await firstPage(browser);
    await page.goto(`${pages.url}/form`);
    await page.click('#btn');
    await page.click('#btn');
    await page.type('#text', 'hello handoff');
    expect(await page.$eval('#out', (e) => e.textContent)).toBe('clicked 2');
    expect(await page.$eval('#text', (e) => (e as HTMLInputElement).value)).toBe('hello handoff');
    expect(await page.evaluate(() => [window.innerWidth, window.innerHeight])).toEqual([1280, 720]);

    const live = await api(d.url, '/session/pptr-default');
    expect(live.body).toMatchObject({ session_id: 'pptr-default', state: 'ready', attachment: 'agent', attached_by: 'agent', auto_close: true, width: 1280, height: 720, expires_at: null });

    await browser.disconnect();
    const stopped = await api(d.url, '/session/pptr-default/wait?state=stopped&timeout_ms=20000');
    expect(stopped.status).toBe(200);
    expect(stopped.body).toMatchObject({ state: 'stopped', attachment: 'none', attached_by: '' });
    expect((await api(d.url, '/session/pptr-default')).body.state).toBe('stopped');
    await waitFor('session_stopped audit row', async () => (await auditTypes('pptr-default')).includes('session_stopped'));
  });
});

describe('Playwright through the proxy', () => {
  it('connectOverCDP(http://HOST:PORT) drives the page, which fills 1280x720', async () => {
    const before = (await api(d.url, '/sessions')).body.sessions.map((s: { session_id: string }) => s.session_id);
    const browser = await chromium.connectOverCDP(d.url);
    try {
      leaks.note(d.stateDir);
      const context = browser.contexts()[0]!;
      const page = context.pages()[0]!;
      await page.goto(`${pages.url}/form`);
      await page.click('#btn');
      await page.fill('#text', 'typed by playwright');
      expect(await page.textContent('#out')).toBe('clicked 1');
      expect(await page.inputValue('#text')).toBe('typed by playwright');
      expect(await page.evaluate(() => [window.innerWidth, window.innerHeight])).toEqual([1280, 720]);

      // The GET /json/version of connectOverCDP created nothing; the socket created one session.
      const now = (await api(d.url, '/sessions')).body.sessions.filter((s: { session_id: string; state: string }) => !before.includes(s.session_id) && s.state === 'ready');
      expect(now).toHaveLength(1);
      expect(now[0]).toMatchObject({ attachment: 'agent', width: 1280, height: 720 });
    } finally {
      await browser.close();
    }
  });

  it('connectOverCDP(ws://HOST:PORT/?session=...&width=1024&height=768) gets a 1024x768 page', async () => {
    const browser = await chromium.connectOverCDP(`${d.wsUrl}/?session=pw-ws&width=1024&height=768`);
    try {
      leaks.note(d.stateDir);
      const page = browser.contexts()[0]!.pages()[0]!;
      await page.goto(`${pages.url}/form`);
      await page.click('#btn');
      await page.type('#text', 'ws url');
      expect(await page.textContent('#out')).toBe('clicked 1');
      expect(await page.inputValue('#text')).toBe('ws url');
      expect(await page.evaluate(() => [window.innerWidth, window.innerHeight])).toEqual([1024, 768]);
      expect((await api(d.url, '/session/pw-ws')).body).toMatchObject({ width: 1024, height: 768, state: 'ready' });
    } finally {
      await browser.close();
    }
    expect((await api(d.url, '/session/pw-ws/wait?state=stopped&timeout_ms=20000')).body.state).toBe('stopped');
  });
});

describe('auto_close=false, the long poll, downloads', () => {
  const id = 'keep-1';
  const endpoint = () => `${d.wsUrl}/?session=${id}&auto_close=false`;

  it('keeps the browser, its page, cookies and storage after the agent disconnects; /wait answers as soon as it detaches', async () => {
    let browser = await puppeteer.connect({ browserWSEndpoint: endpoint(), defaultViewport: null });
    leaks.note(d.stateDir);
    let page = await firstPage(browser);
    await page.goto(`${pages.url}/form`);
    await page.evaluate(() => {
      document.cookie = 'flavour=oat; max-age=3600; path=/';
      localStorage.setItem('kept', 'yes');
    });
    await page.goto(`${pages.url}/other`);

    // The long poll is already waiting when the agent leaves.
    const waiting = api(d.url, `/session/${id}/wait?attachment=none&timeout_ms=10000`);
    await browser.disconnect();
    const waited = await waiting;
    expect(waited.status).toBe(200);
    expect(waited.body).toMatchObject({ session_id: id, attachment: 'none', attached_by: '' });

    const info = (await api(d.url, `/session/${id}`)).body;
    expect(info).toMatchObject({ state: 'ready', attachment: 'none', attached_by: '', auto_close: false });
    expect(typeof info.expires_at).toBe('string');
    expect(Date.parse(info.expires_at)).toBeGreaterThan(Date.now());

    browser = await puppeteer.connect({ browserWSEndpoint: endpoint(), defaultViewport: null });
    try {
      page = await firstPage(browser);
      expect(page.url()).toBe(`${pages.url}/other`);
      expect(await page.evaluate(() => document.cookie)).toContain('flavour=oat');
      expect(await page.evaluate(() => localStorage.getItem('kept'))).toBe('yes');
      expect((await api(d.url, `/session/${id}`)).body).toMatchObject({ attachment: 'agent', attached_by: 'agent', expires_at: null });
    } finally {
      await browser.disconnect();
    }
    expect((await api(d.url, `/session/${id}/wait?attachment=none&timeout_ms=10000`)).body.state).toBe('ready');
  });

  it('/wait answers 408 timeout when the condition does not hold', async () => {
    const r = await api(d.url, `/session/${id}/wait?attachment=agent&timeout_ms=300`);
    expect(r.status).toBe(408);
    expect(r.body.error.code).toBe('timeout');
    expect(typeof r.body.error.message).toBe('string');
  });

  it('a file the page downloads is listed and served under its suggested name, made unique when repeated, and audited with its sha256', async () => {
    const browser = await puppeteer.connect({ browserWSEndpoint: endpoint(), defaultViewport: null });
    try {
      const page = await firstPage(browser);
      await page.goto(`${pages.url}/download`);
      await page.click('#dl');
      const first = await waitFor('report.txt in the downloads', async () => {
        const files = (await api(d.url, `/session/${id}/downloads`)).body.files as { name: string; size: number; completed_at: string }[];
        return files.find((f) => f.name === 'report.txt');
      });
      expect(first).toMatchObject({ name: 'report.txt', size: DOWNLOAD_BYTES.length });
      expect(new Date(first.completed_at).toISOString()).toBe(first.completed_at);

      const file = await fetch(`${d.url}/session/${id}/downloads/report.txt`);
      expect(file.status).toBe(200);
      expect(Buffer.from(await file.arrayBuffer()).equals(DOWNLOAD_BYTES)).toBe(true);

      await page.click('#dl');
      const files = await waitFor('the second download', async () => {
        const list = (await api(d.url, `/session/${id}/downloads`)).body.files as { name: string; size: number }[];
        return list.length === 2 ? list : null;
      });
      expect(files.map((f) => f.name).sort()).toEqual(['report (1).txt', 'report.txt']);
      const second = await fetch(`${d.url}/session/${id}/downloads/${encodeURIComponent('report (1).txt')}`);
      expect(Buffer.from(await second.arrayBuffer()).equals(DOWNLOAD_BYTES)).toBe(true);

      const sha256 = createHash('sha256').update(DOWNLOAD_BYTES).digest('hex');
      const rows = (await api(d.url, `/audit?session_id=${id}&type=download_completed`)).body.events;
      expect(rows.map((r: { detail: unknown }) => r.detail)).toEqual([
        { name: 'report.txt', size: DOWNLOAD_BYTES.length, sha256 },
        { name: 'report (1).txt', size: DOWNLOAD_BYTES.length, sha256 },
      ]);

      const missing = await api(d.url, `/session/${id}/downloads/nothing.txt`);
      expect(missing.status).toBe(404);
      expect(missing.body.error.code).toBe('not_found');
    } finally {
      await browser.disconnect();
    }
  });

  it('POST /session/ID/stop stops it', async () => {
    const r = await api(d.url, `/session/${id}/stop`, { method: 'POST' });
    expect(r).toMatchObject({ status: 200, body: { stopped: true } });
    expect((await api(d.url, `/session/${id}`)).body.state).toBe('stopped');
  });
});

describe('Chrome-compatible discovery', () => {
  it('/json/version has Chrome\'s shape, points at ws://HOST:PORT/, and creates no session', async () => {
    const sessionsBefore = (await api(d.url, '/sessions')).body.sessions.length;
    const createdBefore = (await api(d.url, '/audit?type=session_created&limit=10000')).body.events.length;
    for (const path of ['/json/version', '/json/version/']) {
      const r = await api(d.url, path);
      expect(r.status).toBe(200);
      expect(r.body.Browser).toMatch(/^Chrome\/\d+\.\d+\.\d+\.\d+$/);
      expect(r.body['Protocol-Version']).toBe('1.3');
      expect(r.body.webSocketDebuggerUrl).toBe(`ws://127.0.0.1:${d.port}/`);
    }
    expect((await api(d.url, '/sessions')).body.sessions.length).toBe(sessionsBefore);
    expect((await api(d.url, '/audit?type=session_created&limit=10000')).body.events.length).toBe(createdBefore);
  });
});
