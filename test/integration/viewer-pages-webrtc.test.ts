import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import puppeteer, { type Browser, type ElementHandle, type Page } from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';
import { surfacePoint, waitState } from '../helpers/viewer.js';
import { FILE_INPUT_HTML } from '../helpers/pages.js';

/**
 * Issue 11 on the WebRTC transport, and the agent's tab: a real daemon, Puppeteer as the agent,
 * headless Chromium as the human on the viewer's WebRTC tab. The tab strip follows the
 * session's pages and marks the one the agent acts on (so does the dashboard card, titles
 * only); switching and closing tabs, a file the human picks (the page reads its exact bytes)
 * and a copy inside the session all go over WebRTC's signalling socket. A view link's
 * signalling gets tab titles only (no url) and no file request.
 */

const PAGE = `<!doctype html><html><head><title>First page</title></head>
<body style="margin:0;background:rgb(240,240,240)">
${FILE_INPUT_HTML}
<textarea id="t" style="position:absolute;left:100px;top:300px;width:400px;height:80px">COPY-RTC-42</textarea>
</body></html>`;
const SECOND = '<!doctype html><html><head><title>Second page</title></head><body>second</body></html>';

const SID = 'pages-rtc';
const PASSWORD = 'rtcpw1234';
const FB = { width: 1280, height: 720 };
let d: RunningDaemon;
let site: Server;
let siteUrl: string;
let agent: Browser;
let page: Page;
let viewers: Browser;
let vp: Page;
let tmp: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'handoff-viewer-rtc-pages-'));
  site = createServer((req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(req.url === '/second' ? SECOND : PAGE));
  await new Promise<void>((r) => site.listen(0, '127.0.0.1', r));
  siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/`;
  d = await startDaemon();
  agent = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=${SID}&auto_close=false&enable_rtc=true&rtc_password=${PASSWORD}`, defaultViewport: null });
  page = (await agent.pages())[0]!;
  await page.goto(siteUrl);
  viewers = await puppeteer.launch({ executablePath: '/usr/lib/chromium/chromium', headless: true, args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'] });
  await viewers.defaultBrowserContext().overridePermissions(new URL(d.url).origin, ['clipboard-read', 'clipboard-write', 'clipboard-sanitized-write']);
  const link = await api(d.url, `/session/${SID}/live?kind=control`);
  vp = await viewers.newPage();
  await vp.setViewport({ width: 1000, height: 700 });
  await vp.goto(`${link.body.url}?transport=webrtc`);
  const pw = await vp.waitForSelector('.hk-notice input[type=password]', { timeout: 20_000 });
  await pw!.type(PASSWORD);
  await vp.click('.hk-notice button[type=submit]');
  await waitState(vp, ['live'], 30_000);
  await waitFor('the video', () => vp.$eval('video[data-handoff-surface]', (v) => (v as HTMLVideoElement).videoWidth > 0));
}, 90_000);

afterAll(async () => {
  await viewers?.close();
  await agent?.disconnect();
  await d?.cleanup();
  await new Promise((r) => site?.close(r));
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const shown = (sel: string) => vp.$eval(sel, (el) => !(el as HTMLElement).closest('[hidden]') && getComputedStyle(el).display !== 'none').catch(() => false);
/** [title, visible, agent] per tab in the viewer's strip. */
const strip = () => vp.$$eval('.hk-page', (els) => els.map((el) => [el.querySelector('.hk-page-title')!.textContent, (el as HTMLElement).dataset.visible, (el as HTMLElement).dataset.agent]));
const stripIs = (want: string[][]) => async () => JSON.stringify(await strip()) === JSON.stringify(want);
async function clickVideo(fx: number, fy: number): Promise<void> {
  const p = await surfacePoint(vp, fx, fy, FB);
  await vp.mouse.click(p.x, p.y);
}

describe('the session\'s pages over WebRTC', () => {
  it('tabs: the strip follows the pages and marks the agent\'s; the dashboard card lists the titles; switch and close go over WebRTC', async () => {
    await waitFor('the first tab, the agent\'s', stripIs([['First page', 'true', 'true']]));
    const second = new Promise<Page>((resolve) => agent.once('targetcreated', async (t) => resolve((await t.page())!)));
    await page.evaluate((u) => void window.open(u + 'second', '_blank'), siteUrl);
    const tab2 = await second;
    // The new tab is in front; the agent still acts on the first until it uses the second.
    await waitFor('both tabs', stripIs([['First page', 'false', 'true'], ['Second page', 'true', 'false']]));
    await tab2.evaluate(() => document.title);
    await waitFor('the agent on the second', stripIs([['First page', 'false', 'false'], ['Second page', 'true', 'true']]));

    const preview = (await api(d.url, `/session/${SID}/preview?width=32`)).body;
    expect(preview.tabs).toEqual([{ title: 'First page', visible: false, agent: false }, { title: 'Second page', visible: true, agent: true }]);
    const dash = await viewers.newPage();
    try {
      await dash.goto(d.url + '/');
      const cardTabs = () => dash.$$eval(`[data-session="${SID}"] .page-tabs li`, (li) => li.map((x) => [x.textContent, x.getAttribute('aria-current')]));
      await waitFor('the card\'s tabs', async () => JSON.stringify(await cardTabs()) === JSON.stringify([['First page', null], ['Second page (agent)', 'true']]), 20_000);
    } finally {
      await dash.close();
    }

    await vp.click('.hk-page[data-visible="false"] .hk-page-title');
    await waitFor('the first tab in front', stripIs([['First page', 'true', 'false'], ['Second page', 'false', 'true']]));
    await vp.click('.hk-page[data-visible="false"] .hk-page-close');
    await waitFor('the second tab closed', () => tab2.isClosed());
    await waitFor('one tab left', stripIs([['First page', 'true', 'false']]));
  });

  it('file: the page asks, the human picks a file of their own over WebRTC, the page reads its exact bytes', async () => {
    await clickVideo(300, 140);
    await waitFor('the file request in the viewer', () => shown('.hk-filereq'));
    // Two chunks of the kit's 384 KiB (a chunk is larger than a signalling message may be).
    const bytes = Buffer.from(Array.from({ length: 500_000 }, (_, i) => (i * 13 + 1) & 0xff));
    const file = join(tmp, 'rtc.bin');
    writeFileSync(file, bytes);
    await ((await vp.$('input[data-handoff-file]')) as ElementHandle<HTMLInputElement>).uploadFile(file);
    const got = await waitFor('the page read the file', async () => (await page.evaluate(() => (window as any).got)).at(0), 30_000);
    expect(got).toEqual([{ name: 'rtc.bin', b64: bytes.toString('base64') }]);
    await waitFor('the request is gone from the viewer', async () => !(await shown('.hk-filereq')));
    const audit = (await api(d.url, `/audit?session_id=${SID}&type=file_uploaded`)).body.events;
    expect(audit.map((e: any) => [e.actor, e.transport, e.detail.name, e.detail.size])).toEqual([['human', 'webrtc', 'rtc.bin', bytes.length]]);
  });

  it('clipboard: a copy inside the session reaches the WebRTC viewer; the human\'s paste after it pastes the human\'s text', async () => {
    await clickVideo(300, 340);
    await vp.keyboard.down('Control');
    await vp.keyboard.press('a');
    await vp.keyboard.press('c');
    await vp.keyboard.up('Control');
    await waitFor('the remote copy in the viewer', () => shown('.hk-clip'));
    expect(await vp.$eval('.hk-clip-text', (el) => (el as HTMLTextAreaElement).value)).toBe('COPY-RTC-42');

    await vp.evaluate(() => navigator.clipboard.writeText('HUMAN-RTC-7'));
    await clickVideo(300, 340);
    await vp.keyboard.down('Control');
    await vp.keyboard.press('a');
    await vp.keyboard.press('v');
    await vp.keyboard.up('Control');
    await waitFor('the human\'s text pasted', async () => (await page.$eval('#t', (el) => (el as HTMLTextAreaElement).value)) === 'HUMAN-RTC-7');
  });

  it('a view link\'s signalling: titles only, no file request, no copies, no tab actions', async () => {
    await clickVideo(300, 140); // a file request is open again
    await waitFor('the file request', () => shown('.hk-filereq'));
    const link = await api(d.url, `/session/${SID}/live?kind=view`);
    const ws = new WebSocket(`${link.body.url.replace(/^http/, 'ws')}/webrtc`);
    const got: any[] = [];
    ws.on('message', (m) => got.push(JSON.parse(String(m))));
    try {
      await new Promise((r, j) => ws.once('open', r).once('error', j));
      ws.send(JSON.stringify({ type: 'hello', password: PASSWORD, codecs: ['H264', 'VP8'] }));
      const state = await waitFor('a state', () => got.find((m) => m.type === 'state'));
      expect(state.tabs).toEqual([{ id: expect.any(String), title: 'First page', visible: true, agent: true }]);
      expect(state.fileRequest).toBeNull();
      // Dropped while it is not in control; refused with forbidden if it ever is (a view link).
      ws.send(JSON.stringify({ type: 'tab', action: 'new' }));
      ws.send(JSON.stringify({ type: 'tab', action: 'focus' })); // no focus hints either
      await new Promise((r) => setTimeout(r, 1000));
      expect(ws.readyState).toBe(WebSocket.OPEN);
      expect((await agent.pages()).length).toBe(1);
      expect(got.filter((m) => m.type === 'clipboard' || m.type === 'focus')).toEqual([]);
      for (const e of got.filter((m) => m.type === 'error')) expect(e.code).toBe('forbidden');
    } finally {
      ws.close();
    }
    await vp.click('.hk-filereq button'); // cancel
    await waitFor('the request cancelled', async () => (await page.evaluate(() => (window as any).cancels)) === 1);
  });
});
