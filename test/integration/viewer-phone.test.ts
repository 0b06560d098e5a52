import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import puppeteer, { type Browser, type CDPSession, type Page } from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';
import { surfacePoint, waitState } from '../helpers/viewer.js';

/*
 * Issue 12: the live view on a phone (Chromium with mobile emulation, 390x844, touch) against a
 * real daemon: taps, the text proxy (insertText as Android keyboards do, and key events), swipe
 * scroll, long-press and two-finger tap as right clicks, pinch zoom. Writes the screenshots the
 * README shows.
 */

const SHOTS = new URL('../../docs/screenshots/', import.meta.url);
const PHONE = { width: 390, height: 844, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
const MOBILE_UA = 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36';

// Fixed elements at known framebuffer points; the page scrolls under them.
const PAGE = `<!doctype html><html><head><title>Checkout</title></head><body style="margin:0;height:4000px;font:24px sans-serif;background:linear-gradient(#fff,#9cf)">
<h1 style="margin:0;padding:20px 100px">Shipping details</h1>
<input id="field" autocomplete="off" inputmode="numeric" placeholder="Postcode" style="position:fixed;left:100px;top:100px;width:400px;height:60px;font-size:28px">
<div id="blue" style="position:fixed;left:900px;top:500px;width:40px;height:40px;background:rgb(0,0,255)"></div>
<div id="red" style="position:fixed;left:950px;top:500px;width:40px;height:40px;background:rgb(255,0,0)"></div>
<script>
  window.menus = []; window.clicks = [];
  addEventListener('contextmenu', (e) => { menus.push([e.clientX, e.clientY]); e.preventDefault(); });
  addEventListener('click', (e) => clicks.push(e.target.id || e.target.tagName));
</script></body></html>`;

describe('the viewer on a phone', { timeout: 120_000 }, () => {
  let daemon: RunningDaemon;
  let viewers: Browser;
  let agent: Browser;
  let remote: Page; // the session's page, seen through the agent
  let vp: Page; // the phone
  let cdp: CDPSession;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    daemon = await startDaemon();
    viewers = await puppeteer.launch({ executablePath: '/usr/lib/chromium/chromium', headless: true, args: ['--no-sandbox'] });
    const created = await api(daemon.url, '/devtools/browser?keep_alive=600000&targets=true', { method: 'POST' });
    if (!created.body.webSocketDebuggerUrl) throw new Error('create: ' + created.status + ' ' + JSON.stringify(created.body) + daemon.logs().slice(-1500));
    agent = await puppeteer.connect({ browserWSEndpoint: created.body.webSocketDebuggerUrl, defaultViewport: null });
    remote = (await agent.pages())[0]!;
    await remote.goto('data:text/html,' + encodeURIComponent(PAGE));
    vp = await viewers.newPage();
    await vp.emulate({ viewport: PHONE, userAgent: MOBILE_UA });
    // The control link while the agent is connected: a handoff, so the banner shows too.
    await vp.goto(created.body.targets[0].devtoolsFrontendUrl);
    await waitState(vp, ['live']);
    cdp = await vp.createCDPSession();
  }, 180_000);

  afterAll(async () => {
    await cdp?.detach().catch(() => {});
    await agent?.disconnect();
    await viewers?.close();
    await daemon?.cleanup();
  }, 60_000);

  const tapAt = async (fx: number, fy: number) => {
    const p = await surfacePoint(vp, fx, fy);
    await vp.touchscreen.tap(p.x, p.y);
  };
  const touches = (type: string, points: [number, number][]) =>
    cdp.send('Input.dispatchTouchEvent', { type: type as 'touchStart', touchPoints: points.map(([x, y], id) => ({ x, y, id })) });
  const surfaceWidth = () => vp.$eval('[data-handoff-surface]', (el) => el.getBoundingClientRect().width);

  it('gives the picture the screen: one line above it, Done one tap away, the key bar below', async () => {
    await vp.waitForSelector('.hk-banner:not([hidden]) .hk-primary');
    const layout = await vp.evaluate(() => {
      const r = (s: string) => document.querySelector(s)!.getBoundingClientRect();
      return { view: r('.hk-view').height, banner: r('.hk-banner').height, bar: r('.hk-bar').height, keys: r('.hk-keys').height, surface: r('[data-handoff-surface]').width };
    });
    expect(layout.bar).toBe(0); // the request line replaces the status line
    expect(layout.banner).toBeLessThan(60);
    expect(layout.keys).toBeGreaterThan(30);
    expect(layout.surface).toBe(390);
    await waitFor('a frame', () => vp.$eval('canvas', (c) => (c as HTMLCanvasElement).getContext('2d')!.getImageData(10, 10, 1, 1).data[3] === 255));
    await vp.screenshot({ path: new URL('phone-portrait.png', SHOTS).pathname as `${string}.png` });
  });

  const proxyFocused = () => vp.evaluate(() => document.activeElement?.className === 'hk-textproxy');

  it('a tap on a remote field opens the keyboard by itself (the text proxy takes the focus); insertText and key events type into it', async () => {
    expect(await proxyFocused()).toBe(false);
    await tapAt(300, 130);
    await waitFor('the remote field focused', () => remote.evaluate(() => document.activeElement?.id === 'field'));
    await waitFor('the text proxy focused, no keyboard button pressed', proxyFocused);
    expect(await vp.$eval('.hk-textproxy', (el) => el.getAttribute('inputmode'))).toBe('numeric'); // the field's keyboard
    expect(await vp.$eval('[data-key="keyboard"]', (el) => el.getAttribute('aria-pressed'))).toBe('true');
    await vp.keyboard.sendCharacter('123456'); // Input.insertText, as Android keyboards commit text
    await waitFor('insertText arrives', async () => (await remote.$eval('#field', (el) => (el as HTMLInputElement).value)) === '123456');
    await vp.keyboard.type('123456'); // key events
    await waitFor('keys arrive', async () => (await remote.$eval('#field', (el) => (el as HTMLInputElement).value)) === '123456123456');
    await vp.keyboard.press('Backspace');
    await waitFor('backspace arrives', async () => (await remote.$eval('#field', (el) => (el as HTMLInputElement).value)) === '12345612345');
    // An IME rewriting its word (autocorrect): the difference is sent.
    await vp.evaluate(() => {
      const t = document.querySelector('.hk-textproxy') as HTMLTextAreaElement;
      t.value = 'teh';
      t.dispatchEvent(new InputEvent('input', { inputType: 'insertText', data: 'teh' }));
      t.value = 'the';
      t.dispatchEvent(new InputEvent('input', { inputType: 'insertReplacementText', data: 'the' }));
    });
    await waitFor('autocorrect arrives', async () => (await remote.$eval('#field', (el) => (el as HTMLInputElement).value)) === '12345612345the');
    // The key bar: Ctrl then "a" selects all; Backspace clears.
    await vp.tap('[data-key="ctrl"]');
    await vp.keyboard.type('a');
    await vp.keyboard.press('Backspace');
    await waitFor('cleared with Ctrl+A', async () => (await remote.$eval('#field', (el) => (el as HTMLInputElement).value)) === '');
    // Another tap on the field keeps the keyboard open.
    await tapAt(200, 130);
    await new Promise((r) => setTimeout(r, 1200)); // every focus probe of that tap answered
    expect(await proxyFocused()).toBe(true);
    await vp.keyboard.sendCharacter('42');
    await waitFor('typed after the second tap', async () => (await remote.$eval('#field', (el) => (el as HTMLInputElement).value)) === '42');
  });

  it('a tap away from text fields closes the keyboard a tap opened; the keyboard button still opens and closes it', async () => {
    await tapAt(640, 300);
    await waitFor('the remote field blurred', () => remote.evaluate(() => document.activeElement === document.body));
    await waitFor('the text proxy closed', async () => !(await proxyFocused()));
    await vp.tap('[data-key="keyboard"]');
    expect(await proxyFocused()).toBe(true);
    await vp.tap('[data-key="keyboard"]');
    expect(await proxyFocused()).toBe(false);
  });

  it('a page that lies about its focus (its own activeElement getter) opens no keyboard: the probe reads the real DOM', async () => {
    await remote.evaluate(() => {
      (window as any).realActive = Object.getOwnPropertyDescriptor(Document.prototype, 'activeElement');
      Object.defineProperty(Document.prototype, 'activeElement', { configurable: true, get: () => document.getElementById('field') });
    });
    try {
      await tapAt(640, 300);
      await new Promise((r) => setTimeout(r, 1200)); // every focus probe of that tap answered
      expect(await proxyFocused()).toBe(false);
    } finally {
      await remote.evaluate(() => {
        Object.defineProperty(Document.prototype, 'activeElement', (window as any).realActive);
      });
    }
  });

  it('a swipe scrolls the remote page', async () => {
    const p = await surfacePoint(vp, 640, 600);
    const t = await vp.touchscreen.touchStart(p.x, p.y);
    for (let i = 1; i <= 10; i++) await t.move(p.x, p.y - i * 15);
    await t.end();
    await waitFor('the page scrolled', () => remote.evaluate(() => window.scrollY > 0));
  });

  it('a long press and a two-finger tap are right clicks where the finger is', async () => {
    const p = await surfacePoint(vp, 920, 520);
    await touches('touchStart', [[p.x, p.y]]);
    await new Promise((r) => setTimeout(r, 800));
    await touches('touchEnd', []);
    const [menu] = await waitFor('a context menu', () => remote.evaluate(() => (window as any).menus.length && (window as any).menus));
    expect(Math.abs(menu[0] - 920)).toBeLessThanOrEqual(4);
    expect(Math.abs(menu[1] - 520)).toBeLessThanOrEqual(4);
    await touches('touchStart', [[p.x - 5, p.y], [p.x + 5, p.y]]);
    await touches('touchEnd', []);
    await waitFor('a second context menu', () => remote.evaluate(() => (window as any).menus.length === 2));
  });

  it('pinch zooms the picture, taps still land on the right element, and the reset button undoes it', async () => {
    const before = await surfaceWidth();
    const clicked = (await remote.evaluate(() => (window as any).clicks.length)) as number;
    const c = await surfacePoint(vp, 945, 520);
    await touches('touchStart', [[c.x - 10, c.y], [c.x + 10, c.y]]);
    for (let i = 1; i <= 8; i++) await touches('touchMove', [[c.x - 10 - i * 8, c.y], [c.x + 10 + i * 8, c.y]]);
    await touches('touchEnd', []);
    const after = await surfaceWidth();
    expect(after).toBeGreaterThan(before * 2);
    expect(await vp.$eval('.hk', (el) => el.hasAttribute('data-zoomed'))).toBe(true);
    // The two 40 px squares, 10 px apart, are now far apart on the phone: each tap hits its own.
    await tapAt(970, 520);
    await tapAt(920, 520);
    await waitFor('both clicks', () => remote.evaluate((n) => (window as any).clicks.length >= n + 2, clicked));
    expect((await remote.evaluate(() => (window as any).clicks)).slice(-2)).toEqual(['red', 'blue']);
    await vp.tap('[data-key="reset-zoom"]');
    expect(await surfaceWidth()).toBe(before);
  });

  it('works in landscape', async () => {
    const clicked = (await remote.evaluate(() => (window as any).clicks.length)) as number;
    await vp.setViewport({ ...PHONE, width: 844, height: 390 });
    await waitFor('refit', async () => (await vp.$eval('[data-handoff-surface]', (el) => el.getBoundingClientRect().height)) > 200);
    await tapAt(970, 520);
    await waitFor('a click', () => remote.evaluate((n) => (window as any).clicks.length > n, clicked));
    expect((await remote.evaluate(() => (window as any).clicks)).at(-1)).toBe('red');
    await vp.screenshot({ path: new URL('phone-landscape.png', SHOTS).pathname as `${string}.png` });
  });
});
