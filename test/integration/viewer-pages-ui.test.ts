import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser, type ElementHandle, type Page } from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';
import { canvasPixel, clickSurface, near, openViewer } from '../helpers/viewer.js';
import { FILE_INPUT_HTML } from '../helpers/pages.js';

/**
 * Issue 11 in the viewer page (kit/pages.ts): a real daemon, Puppeteer as the agent, headless
 * Chromium as the human on the live link page. The page's file request is answered from the
 * viewer's own picker (the page reads the exact bytes); the page's tabs are in a strip that
 * switches and closes them; after a popup window opened and closed, a <select> list opens and
 * is chosen from by mouse (seen in the framebuffer); a copy inside the session shows with a Copy button; the picture
 * has the keyboard focus when the viewer opens and says "click to type" when it has not.
 */

const PAGE = `<!doctype html><html><head><title>First page</title></head>
<body style="margin:0;background:rgb(240,240,240)">
${FILE_INPUT_HTML}
<textarea id="t" style="position:absolute;left:100px;top:300px;width:400px;height:80px">COPY-ME-123</textarea>
<div style="position:absolute;left:700px;top:140px;width:300px;height:300px;background:rgb(20,140,220)"></div>
<select id="s" style="position:absolute;left:700px;top:100px;width:300px;height:40px;font-size:20px">
${Array.from({ length: 8 }, (_, i) => `<option>option ${i}</option>`).join('')}
</select>
<script>window.escapes = 0; addEventListener('keydown', (e) => { if (e.key === 'Escape') escapes++; });</script>
</body></html>`;
const BLUE: [number, number, number] = [20, 140, 220];
const SECOND = '<!doctype html><html><head><title>Second page</title></head><body>second</body></html>';

const SID = 'pages-ui';
let d: RunningDaemon;
let site: Server;
let siteUrl: string;
let agent: Browser;
let page: Page;
let viewers: Browser;
let vp: Page;
let tmp: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'handoff-viewer-pages-'));
  site = createServer((req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(req.url === '/second' ? SECOND : PAGE));
  await new Promise<void>((r) => site.listen(0, '127.0.0.1', r));
  siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/`;
  d = await startDaemon();
  agent = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=${SID}&auto_close=false`, defaultViewport: null });
  page = (await agent.pages())[0]!;
  await page.goto(siteUrl);
  const link = await api(d.url, `/session/${SID}/live?kind=control`);
  expect(link.status).toBe(200);
  viewers = await puppeteer.launch({ executablePath: '/usr/lib/chromium/chromium', headless: true, args: ['--no-sandbox'] });
  await viewers.defaultBrowserContext().overridePermissions(new URL(d.url).origin, ['clipboard-read', 'clipboard-write', 'clipboard-sanitized-write']);
  vp = await openViewer(viewers, link.body.url, ['live']);
}, 90_000);

afterAll(async () => {
  await viewers?.close();
  await agent?.disconnect();
  await d?.cleanup();
  await new Promise((r) => site?.close(r));
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const shown = (sel: string) => vp.$eval(sel, (el) => !(el as HTMLElement).closest('[hidden]') && getComputedStyle(el).display !== 'none').catch(() => false);
const tabTitles = () => vp.$$eval('.hk-page', (els) => els.map((el) => [el.querySelector('.hk-page-title')!.textContent, (el as HTMLElement).dataset.visible]));

describe('the viewer shows the session\'s pages', () => {
  it('focus: the picture has the keyboard when the viewer opens; without it the view says to click', async () => {
    expect(await vp.evaluate(() => document.activeElement?.hasAttribute('data-handoff-surface'))).toBe(true);
    expect(await shown('.hk-typehint')).toBe(false);
    await vp.evaluate(() => (document.activeElement as HTMLElement).blur());
    await waitFor('the hint', () => shown('.hk-typehint'));
    expect(await vp.$eval('.hk-typehint', (el) => el.textContent)).toBe('Click the picture to type');
    await vp.click('.hk-typehint');
    await waitFor('focus back on the picture', () => vp.evaluate(() => document.activeElement?.hasAttribute('data-handoff-surface')));
    expect(await shown('.hk-typehint')).toBe(false);
  });

  it('file: the page asks, the human picks a file of their own, the page reads its exact bytes; Cancel cancels; a drop works', async () => {
    expect(await shown('.hk-filereq')).toBe(false);
    await clickSurface(vp, 300, 140);
    await waitFor('the file request in the viewer', () => shown('.hk-filereq'));
    expect(await vp.$eval('.hk-file-title', (el) => el.textContent)).toBe('The page asks for a file');

    // Three chunks (384 KiB each), every byte value.
    const bytes = Buffer.from(Array.from({ length: 900_000 }, (_, i) => (i * 7 + 3) & 0xff));
    const file = join(tmp, 'mine.bin');
    writeFileSync(file, bytes);
    const picker = (await vp.$('input[data-handoff-file]')) as ElementHandle<HTMLInputElement>;
    await picker.uploadFile(file);
    const got = await waitFor('the page read the file', async () => (await page.evaluate(() => (window as any).got)).at(0), 30_000);
    expect(got).toEqual([{ name: 'mine.bin', b64: bytes.toString('base64') }]);
    await waitFor('the request is gone from the viewer', async () => !(await shown('.hk-filereq')));
    const audit = (await api(d.url, `/audit?session_id=${SID}&type=file_uploaded`)).body.events;
    expect(audit.map((e: any) => [e.actor, e.transport, e.detail.name, e.detail.size])).toEqual([['human', 'screencast', 'mine.bin', bytes.length]]);

    await clickSurface(vp, 300, 140);
    await waitFor('a second request', () => shown('.hk-filereq'));
    await vp.click('.hk-filereq button');
    await waitFor('the page saw cancel', async () => (await page.evaluate(() => (window as any).cancels)) === 1);
    await waitFor('the request is gone again', async () => !(await shown('.hk-filereq')));
    expect((await page.evaluate(() => (window as any).got)).length).toBe(1);

    // A file dropped onto the picture answers the request too.
    await clickSurface(vp, 300, 140);
    await waitFor('a third request', () => shown('.hk-filereq'));
    await vp.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['dropped ✓'], 'dropped.txt', { type: 'text/plain' }));
      const view = document.querySelector('.hk-view')!;
      view.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
      view.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    const dropped = await waitFor('the page read the dropped file', async () => (await page.evaluate(() => (window as any).got)).at(1));
    expect(dropped).toEqual([{ name: 'dropped.txt', b64: Buffer.from('dropped ✓').toString('base64') }]);
    await waitFor('the request is gone after the drop', async () => !(await shown('.hk-filereq')));
  });

  it('tabs: a tab the page opens is in the strip; clicking a tab shows it, the key menu goes to the next, × closes', async () => {
    await waitFor('one tab in the strip', async () => (await tabTitles()).length === 1);
    await waitFor('the first page\'s title', async () => JSON.stringify(await tabTitles()) === JSON.stringify([['First page', 'true']]));
    const second = new Promise<Page>((resolve) => agent.once('targetcreated', async (t) => resolve((await t.page())!)));
    await page.evaluate((u) => void window.open(u + 'second', '_blank'), siteUrl);
    const tab2 = await second;
    await waitFor('both tabs, the new one in front', async () => JSON.stringify(await tabTitles()) === JSON.stringify([['First page', 'false'], ['Second page', 'true']]));
    // Announced where a screen reader reads it too.
    await waitFor('the new tab announced', async () => (await vp.$eval('.hk-announce', (el) => el.textContent)) === 'New tab: Second page');
    expect(await vp.$eval('.hk-announce', (el) => [el.getAttribute('role'), el.getAttribute('aria-live')])).toEqual(['status', 'polite']);

    await vp.click('.hk-page[data-visible="false"] .hk-page-title');
    await waitFor('the first tab in front', async () => JSON.stringify(await tabTitles()) === JSON.stringify([['First page', 'true'], ['Second page', 'false']]));
    expect(await page.evaluate(() => document.visibilityState)).toBe('visible');
    expect(await vp.evaluate(() => document.activeElement?.hasAttribute('data-handoff-surface'))).toBe(true); // the keyboard is back on the picture

    await vp.click('.hk-keymenu summary');
    await vp.click('.hk-menuitem[data-key="next"]');
    await waitFor('next tab: the second in front', async () => JSON.stringify(await tabTitles()) === JSON.stringify([['First page', 'false'], ['Second page', 'true']]));

    await vp.click('.hk-page[data-visible="true"] .hk-page-close');
    await waitFor('the second tab closed', () => tab2.isClosed());
    await waitFor('one tab left, in front', async () => JSON.stringify(await tabTitles()) === JSON.stringify([['First page', 'true']]));
  });

  it('native UI: after a popup opened and closed, a <select> list shows in the framebuffer and a click picks an option', async () => {
    const opened = new Promise<Page>((resolve) => agent.once('targetcreated', async (t) => resolve((await t.page())!)));
    await page.evaluate((u) => void window.open(u + 'second', 'p', 'popup,width=500,height=300'), siteUrl);
    const popup = await opened;
    await popup.waitForSelector('body');
    await popup.close();
    await waitFor('the popup gone from the strip', async () => (await tabTitles()).length === 1);
    await waitFor('the page in the picture', async () => near(await canvasPixel(vp, 850, 300), BLUE));
    await clickSurface(vp, 850, 120);
    // The list drops over the blue block (read away from the pointer, which the picture shows).
    await waitFor('the list over the page', async () => !near(await canvasPixel(vp, 950, 220), BLUE));
    await clickSurface(vp, 850, 200);
    await waitFor('an option picked', async () => (await page.$eval('#s', (el) => (el as HTMLSelectElement).value)) !== 'option 0');
    await waitFor('the list closed', async () => near(await canvasPixel(vp, 950, 220), BLUE));
  });

  it('clipboard: a copy inside the session shows in the viewer; Copy puts it on the human\'s clipboard', async () => {
    expect(await shown('.hk-clip')).toBe(false);
    await clickSurface(vp, 300, 340);
    await vp.keyboard.down('Control');
    await vp.keyboard.press('a');
    await vp.keyboard.press('c');
    await vp.keyboard.up('Control');
    await waitFor('the remote copy in the viewer', () => shown('.hk-clip'));
    expect(await vp.$eval('.hk-clip-text', (el) => (el as HTMLTextAreaElement).value)).toBe('COPY-ME-123');
    await vp.click('.hk-clip .hk-primary');
    await waitFor('copied', async () => (await vp.$eval('.hk-clip-note', (el) => el.textContent)) === 'Copied to your clipboard.');
    expect(await vp.evaluate(() => navigator.clipboard.readText())).toBe('COPY-ME-123');

    // After that remote copy, the human's Ctrl+V pastes the human's own clipboard, not the session's.
    await vp.evaluate(() => navigator.clipboard.writeText('HUMAN-TEXT'));
    await clickSurface(vp, 300, 340);
    await vp.keyboard.down('Control');
    await vp.keyboard.press('a');
    await vp.keyboard.press('v');
    await vp.keyboard.up('Control');
    await waitFor('the human\'s text pasted', async () => (await page.$eval('#t', (el) => (el as HTMLTextAreaElement).value)) === 'HUMAN-TEXT');
  });

  it('keys: Shift+Tab from the viewer moves the page\'s focus backwards (X sends ISO_Left_Tab with Shift held)', async () => {
    await clickSurface(vp, 300, 340);
    await waitFor('the textarea focused', async () => (await page.evaluate(() => document.activeElement?.id)) === 't');
    await vp.keyboard.down('Shift');
    await vp.keyboard.press('Tab');
    await vp.keyboard.up('Shift');
    await waitFor('focus on the file input before it', async () => (await page.evaluate(() => document.activeElement?.id)) === 'f');
  });
  it('the key menu: new tab, previous and next tab, close tab, reload and Esc, each seen in the session', async () => {
    const menu = async (key: string) => {
      await vp.click('.hk-keymenu summary');
      await vp.click(`.hk-menuitem[data-key="${key}"]`);
    };
    const opened = new Promise<Page>((resolve) => agent.once('targetcreated', async (t) => resolve((await t.page())!)));
    await menu('new');
    const fresh = await opened;
    await waitFor('a new blank tab in front', async () => JSON.stringify(await tabTitles()) === JSON.stringify([['First page', 'false'], ['about:blank', 'true']]));
    await menu('previous');
    await waitFor('previous: the first in front', async () => JSON.stringify(await tabTitles()) === JSON.stringify([['First page', 'true'], ['about:blank', 'false']]));
    await menu('next');
    await waitFor('next: the new one in front', async () => JSON.stringify(await tabTitles()) === JSON.stringify([['First page', 'false'], ['about:blank', 'true']]));
    await menu('close');
    await waitFor('close: the new tab closed', () => fresh.isClosed());
    await waitFor('one tab left, in front', async () => JSON.stringify(await tabTitles()) === JSON.stringify([['First page', 'true']]));

    await page.evaluate(() => { (window as any).before = 'reload'; });
    await menu('reload');
    await waitFor('reloaded', async () => (await page.evaluate(() => (window as any).before).catch(() => 'reload')) === undefined);
    await page.waitForFunction(() => typeof (window as any).escapes === 'number');
    await clickSurface(vp, 850, 600);
    await menu('escape');
    await waitFor('Esc reached the page', async () => (await page.evaluate(() => (window as any).escapes)) === 1);
  });
});
