import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';
import { RfbViewer, XK, colourDistance, freePort } from '../helpers/vnc.js';

/**
 * Input from a real VNC client (rfb2) reaches the page as real X input (API.md 5, 6): a click
 * is a trusted event, typed text arrives exactly (capitals, punctuation, Latin-1 and Cyrillic
 * keysyms), and a native <select> popup opens with a click and takes Down, Return. Per API.md
 * 3.4 the agent sets the page up and leaves, the viewer acts with control, and the agent comes
 * back to read the result.
 */
let d: RunningDaemon;
let vncPort: number;
const leaks = new LeakTracker();
const browsers: Browser[] = [];
const viewers: RfbViewer[] = [];

const PAGE = `<!doctype html><body style="margin:0;font:20px sans-serif;background:#fff">
  <button id="b" style="position:absolute;left:40px;top:40px;width:200px;height:60px">Press</button>
  <input id="t" autocomplete="off" spellcheck="false" style="position:absolute;left:40px;top:140px;width:600px;height:40px;font-size:20px">
  <select id="s" style="position:absolute;left:40px;top:240px;width:200px;height:40px;font-size:20px">
    <option>one</option><option>two</option><option>three</option>
  </select>
  <script>
    window.events = [];
    b.addEventListener('click', (e) => events.push('click:' + e.isTrusted));
    s.addEventListener('change', (e) => events.push('change:' + e.isTrusted + ':' + s.value));
  </script>
</body>`;
const TEXT = 'Hello, World! (é ж) 42?';
/** Where the select's popup appears: just below it, over the white page. */
const POPUP = { x: 50, y: 290, w: 180, h: 90 };

async function agent(): Promise<{ browser: Browser; page: Page }> {
  const browser = await puppeteer.connect({
    browserWSEndpoint: `${d.wsUrl}/?session=input&auto_close=false&enable_vnc=true&vnc_password=typepass`,
    defaultViewport: null,
  });
  browsers.push(browser);
  return { browser, page: (await browser.pages())[0]! };
}

function popupShown(v: RfbViewer): boolean {
  let dark = 0;
  for (let y = POPUP.y; y < POPUP.y + POPUP.h; y += 2)
    for (let x = POPUP.x; x < POPUP.x + POPUP.w; x += 2) if (colourDistance(v.pixel(x, y), 0xffffff) > 64) dark++;
  return dark > 20;
}

beforeAll(async () => {
  vncPort = await freePort();
  d = await startDaemon({ args: ['--vnc-port', String(vncPort)] });
});

afterAll(async () => {
  for (const v of viewers) await v.close();
  for (const b of browsers) if (b.connected) await b.disconnect();
  await d?.cleanup();
  expect(leaks.leftovers()).toEqual([]);
});

describe('VNC input end to end', () => {
  it('click, typing and a native <select> from rfb2 reach the page as trusted input', async () => {
    const first = await agent();
    leaks.note(d.stateDir);
    await first.page.setContent(PAGE);
    await first.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await first.browser.disconnect();
    expect((await api(d.url, '/session/input/wait?attachment=none&timeout_ms=10000')).status).toBe(200);

    const v = await RfbViewer.connect(vncPort, 'typepass');
    viewers.push(v);
    expect(v.title).toBe('handoff input'); // not view only: nobody else is attached
    await v.fullFrame();
    expect((await api(d.url, '/session/input')).body.attachment).toBe('human');
    expect(popupShown(v)).toBe(false);

    v.click(140, 70);
    v.click(340, 160);
    v.type(TEXT);

    // The popup is a native window: it shows in the framebuffer, not in the DOM.
    v.click(140, 260);
    await v.until('the select popup to open', popupShown);
    v.tap(XK.Down);
    v.tap(XK.Return);
    await v.until('the select popup to close', (x) => !popupShown(x));

    await v.sync();
    await v.close();
    expect((await api(d.url, '/session/input/wait?attachment=none&timeout_ms=10000')).status).toBe(200);
    const back = await agent();
    const state = await back.page.evaluate(() => ({
      events: (window as any).events as string[],
      text: (document.getElementById('t') as HTMLInputElement).value,
      select: (document.getElementById('s') as HTMLSelectElement).value,
    }));
    expect(state).toEqual({ events: ['click:true', 'change:true:two'], text: TEXT, select: 'two' });
    await back.browser.disconnect();
  });
});
