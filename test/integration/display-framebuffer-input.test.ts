import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { XvfbDisplay } from '../../src/display/xvfb.js';
import { Framebuffer } from '../../src/display/framebuffer.js';
import { XInput, keysymForChar } from '../../src/display/input.js';
import type { FrameSubscriber, Rect } from '../../src/display/types.js';
import { launchProcess, type LaunchedProcess } from '../../src/util/process.js';
import { silentLogger } from '../../src/util/logger.js';

const W = 1024;
const H = 640;
const XK = { Shift_L: 0xffe1, Control_L: 0xffe3, Return: 0xff0d, Down: 0xff54 } as const;

const pages: Record<string, string> = {
  // Red left half, blue right half, and a green box that a timer can turn yellow.
  '/colors': `<!doctype html><html><body style="margin:0;overflow:hidden">
    <div style="position:fixed;left:0;top:0;width:50vw;height:100vh;background:#f00"></div>
    <div style="position:fixed;left:50vw;top:0;width:50vw;height:100vh;background:#00f"></div>
    <div id="box" style="position:fixed;left:140px;top:130px;width:60px;height:40px;background:#0f0"></div>
    <script>window.flipSoon = () => setTimeout(() => box.style.background = '#ff0', 50);</script>
  </body></html>`,
  '/form': `<!doctype html><html><body style="margin:0;font:16px sans-serif">
    <button id="btn" style="position:absolute;left:40px;top:40px;width:160px;height:40px">Click</button>
    <input id="text" style="position:absolute;left:40px;top:110px;width:400px;height:30px">
    <select id="sel" style="position:absolute;left:40px;top:170px;width:160px;height:30px">
      <option>One</option><option>Two</option><option>Three</option>
    </select>
    <input id="paste" style="position:absolute;left:40px;top:230px;width:400px;height:30px">
    <div style="height:4000px"></div>
    <script>
      window.clicks = [];
      btn.addEventListener('click', (e) => clicks.push({ trusted: e.isTrusted, x: e.clientX, y: e.clientY }));
      window.changes = [];
      sel.addEventListener('change', (e) => changes.push({ trusted: e.isTrusted, value: sel.value }));
    </script>
  </body></html>`,
};

let xvfb: XvfbDisplay;
let server: Server;
let profile: string;
let chromium: LaunchedProcess;
let browser: Browser;
let page: Page;
let fb: Framebuffer;
let input: XInput;
let origin: string;

async function devToolsPort(dir: string, proc: LaunchedProcess): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const text = await readFile(join(dir, 'DevToolsActivePort'), 'utf8').catch(() => '');
    if (text.includes('\n')) return Number.parseInt(text, 10);
    if (proc.hasExited) throw new Error(`chromium exited: ${proc.stderrTail()}`);
    await sleep(50);
  }
  throw new Error('no DevToolsActivePort');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `sub` has a dirty region and returns it. */
function nextDirty(sub: FrameSubscriber, timeoutMs = 3000): Promise<Rect[]> {
  return new Promise((resolve, reject) => {
    if (sub.dirty) return resolve(sub.takeDirty());
    const timer = setTimeout(() => reject(new Error('no damage')), timeoutMs);
    sub.onDirty(() => {
      clearTimeout(timer);
      resolve(sub.takeDirty());
    });
  });
}

function pixel(sub: FrameSubscriber, x: number, y: number): [number, number, number] {
  const f = sub.frame();
  const o = y * f.stride + x * 4;
  return [f.data[o + 2]!, f.data[o + 1]!, f.data[o]!]; // stored B, G, R, X
}

async function waitForPixel(sub: FrameSubscriber, x: number, y: number, rgb: [number, number, number]) {
  for (let i = 0; i < 100 && pixel(sub, x, y).join() !== rgb.join(); i++) await sleep(30);
  expect(pixel(sub, x, y)).toEqual(rgb);
}

async function center(selector: string): Promise<{ x: number; y: number }> {
  return page.$eval(selector, (el) => {
    const r = el.getBoundingClientRect();
    return { x: Math.round(r.left + r.width / 2), y: Math.round(r.top + r.height / 2) };
  });
}

function click(x: number, y: number): void {
  input.pointer(x, y, 0);
  input.pointer(x, y, 1);
  input.pointer(x, y, 0);
}

/** Clicks into a field and waits for it to have focus (a click that closes a popup is swallowed). */
async function focusByClick(selector: string): Promise<void> {
  const { x, y } = await center(selector);
  for (let attempt = 0; attempt < 3; attempt++) {
    click(x, y);
    const focused = await page
      .waitForFunction((s) => document.activeElement === document.querySelector(s), { timeout: 1000 }, selector)
      .then(() => true, () => false);
    if (focused) return;
  }
  throw new Error(`${selector} did not get focus`);
}

function tap(keysym: number): void {
  input.key(keysym, true);
  input.key(keysym, false);
}

function type(text: string): void {
  for (const ch of text) tap(keysymForChar(ch));
}

async function valueOf(selector: string, expected: string): Promise<string> {
  await page.waitForFunction((s, v) => (document.querySelector(s) as HTMLInputElement).value === v, { timeout: 3000 }, selector, expected).catch(() => {});
  return page.$eval(selector, (el) => (el as HTMLInputElement).value);
}

beforeAll(async () => {
  xvfb = await XvfbDisplay.start({ width: W, height: H, tmpRoot: '/dev/shm' });
  server = createServer((req, res) => {
    const body = pages[req.url ?? ''];
    res.writeHead(body ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' });
    res.end(body ?? 'not found');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fb = await Framebuffer.open({ fbPath: xvfb.fbPath, display: xvfb, logger: silentLogger });
  input = await XInput.open({ display: xvfb, logger: silentLogger });
  profile = await mkdtemp(join(tmpdir(), 'handoff-test-profile-'));
  // Chromium's own temp dirs (the SingletonSocket dir survives a kill) go under our temp dir.
  await mkdir(join(profile, 'tmp'));
  chromium = launchProcess('/usr/lib/chromium/chromium', [
    ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
    '--test-type', '--kiosk', '--window-position=0,0', `--window-size=${W},${H}`,
    `--user-data-dir=${join(profile, 'data')}`, '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--password-store=basic',
    '--remote-debugging-port=0', `${origin}/colors`,
  ], { env: { ...process.env, ...xvfb.env(), TMPDIR: join(profile, 'tmp') } });
  const port = await devToolsPort(join(profile, 'data'), chromium);
  browser = await puppeteer.connect({ browserURL: `http://127.0.0.1:${port}`, defaultViewport: null });
  for (let i = 0; i < 100 && !page; i++) {
    page = (await browser.pages()).find((p) => p.url().endsWith('/colors'))!;
    if (!page) await sleep(50);
  }
  await page.waitForFunction(() => document.readyState === 'complete');
}, 30_000);

afterAll(async () => {
  await browser?.disconnect().catch(() => {});
  await chromium?.close(2000);
  await input?.close();
  await fb?.close();
  await xvfb?.close();
  await new Promise((r) => server?.close(r));
  if (profile) await rm(profile, { recursive: true, force: true });
}, 20_000);

describe('framebuffer on a real display', () => {
  it('shows the page pixels where the page puts them', async () => {
    const sub = fb.subscribe();
    try {
      expect(sub.dirty).toBe(true); // a new subscriber has everything to see
      expect(sub.takeDirty()).toEqual([{ x: 0, y: 0, width: W, height: H }]);
      // Chromium sizes a window that would exactly cover the screen 1 px smaller (no WM here).
      const [sx, sy, iw, ih] = await page.evaluate(() => [window.screenX, window.screenY, innerWidth, innerHeight]);
      expect([sx, sy]).toEqual([0, 0]);
      expect(iw).toBeGreaterThanOrEqual(W - 1);
      expect(ih).toBeGreaterThanOrEqual(H - 1);
      const half = Math.floor(iw! / 2);
      await waitForPixel(sub, 10, 10, [255, 0, 0]);
      await waitForPixel(sub, half - 2, H - 5, [255, 0, 0]);
      await waitForPixel(sub, half + 2, 5, [0, 0, 255]);
      await waitForPixel(sub, W - 2, H - 2, [0, 0, 255]);
      await waitForPixel(sub, 150, 140, [0, 255, 0]);
      expect(sub.frame()).toMatchObject({ width: W, height: H, stride: W * 4 });
    } finally {
      sub.close();
    }
  });

  it('reports a page change as a small dirty region', async () => {
    const sub = fb.subscribe();
    try {
      sub.takeDirty();
      await sleep(300); // let anything still settling go by
      sub.takeDirty();
      const t0 = performance.now();
      await page.evaluate(() => (window as unknown as { flipSoon(): void }).flipSoon());
      const rects = await nextDirty(sub);
      const latencyMs = performance.now() - t0;
      const covers = (x: number, y: number) => rects.some((r) => x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height);
      for (const [x, y] of [[140, 130], [199, 169], [170, 150]] as const) expect(covers(x, y)).toBe(true);
      const area = rects.reduce((a, r) => a + r.width * r.height, 0);
      expect(area).toBeLessThan((W * H) / 4);
      expect(covers(W - 1, H - 1)).toBe(false);
      expect(pixel(sub, 170, 150)).toEqual([255, 255, 0]);
      console.log(`damage: ${rects.length} rects, ${area} px, flip->dirty ${latencyMs.toFixed(1)} ms (incl. 50 ms page timer)`);
    } finally {
      sub.close();
    }
  });

  it('keeps one dirty region per subscriber and stops watching with the last one', async () => {
    const a = fb.subscribe();
    const b = fb.subscribe();
    expect(fb.watching).toBe(true);
    a.takeDirty();
    b.takeDirty();
    let fired = 0;
    a.onDirty(() => fired++);
    a.invalidate();
    a.invalidate(); // already dirty: no second notification
    await sleep(0);
    expect(fired).toBe(1);
    expect(b.dirty).toBe(false);
    expect(a.takeDirty()).toEqual([{ x: 0, y: 0, width: W, height: H }]);
    await page.evaluate(() => ((document.getElementById('box') as HTMLElement).style.background = '#0f0'));
    const rb = await nextDirty(b);
    expect(rb.length).toBeGreaterThan(0);
    expect(fired).toBe(2); // a got the same change
    expect(a.takeDirty().length).toBeGreaterThan(0);
    a.close();
    expect(fb.watching).toBe(true);
    b.close();
    b.close();
    expect(fb.watching).toBe(false);
  });
});

describe('XTest input into Chromium', () => {
  beforeAll(async () => {
    await page.goto(`${origin}/form`);
  });

  it('clicks with a trusted event at the right place', async () => {
    const { x, y } = await center('#btn');
    click(x, y);
    await page.waitForFunction(() => (window as unknown as { clicks: unknown[] }).clicks.length > 0, { timeout: 3000 });
    expect(await page.evaluate(() => (window as unknown as { clicks: unknown[] }).clicks)).toEqual([{ trusted: true, x, y }]);
  });

  it('types ASCII, shifted punctuation and characters missing from the keymap', async () => {
    await focusByClick('#text');
    const text = 'Hello, World! 123 é ж';
    type(text);
    expect(await valueOf('#text', text)).toBe(text);
  });

  it('types more distinct unmapped characters than there are spare keycodes', async () => {
    await focusByClick('#text');
    await page.$eval('#text', (el) => ((el as HTMLInputElement).value = ''));
    const text = 'абвгдеёжзийклмнопрстуфхцчшщ ÀÉÎÕÜ €';
    type(text);
    expect(await valueOf('#text', text)).toBe(text);
  });

  it('scrolls with the wheel', async () => {
    input.pointer(600, 400, 0);
    for (let i = 0; i < 3; i++) {
      input.pointer(600, 400, 1 << 4); // button 5: down
      input.pointer(600, 400, 0);
    }
    await page.waitForFunction(() => scrollY > 0, { timeout: 3000 });
    input.pointer(600, 400, 1 << 3); // button 4: up, sent as a single event
    for (let i = 0; i < 5; i++) input.pointer(600, 400, 1 << 3);
    input.pointer(600, 400, 0);
    await page.waitForFunction(() => scrollY === 0, { timeout: 3000 });
  });

  it('opens a native <select> popup and picks with the keyboard', async () => {
    const sub = fb.subscribe();
    try {
      const { x, y } = await center('#sel');
      await sleep(100);
      sub.takeDirty();
      click(x, y);
      // The popup is its own X window below the select: the framebuffer shows it.
      const below = async () => {
        for (let i = 0; i < 50; i++) {
          const rects = sub.takeDirty();
          if (rects.some((r) => r.y + r.height > y + 30 && r.x < x)) return true;
          await sleep(30);
        }
        return false;
      };
      expect(await below()).toBe(true);
      tap(XK.Down);
      tap(XK.Return);
      await page.waitForFunction(() => (window as unknown as { changes: unknown[] }).changes.length > 0, { timeout: 3000 });
      expect(await page.evaluate(() => (window as unknown as { changes: unknown[] }).changes)).toEqual([{ trusted: true, value: 'Two' }]);
    } finally {
      sub.close();
    }
  });

  it('pastes the clipboard with Ctrl+V', async () => {
    const text = 'from the clipboard ✓ ünïcødé';
    input.setClipboard(text);
    await focusByClick('#paste');
    input.key(XK.Control_L, true);
    tap(keysymForChar('v'));
    input.key(XK.Control_L, false);
    expect(await valueOf('#paste', text)).toBe(text);
  });

  it('releaseAll lifts a held Shift', async () => {
    await focusByClick('#text');
    await page.$eval('#text', (el) => ((el as HTMLInputElement).value = ''));
    input.key(XK.Shift_L, true);
    input.releaseAll();
    type('a');
    expect(await valueOf('#text', 'a')).toBe('a');
  });
});

describe('when the X server dies', () => {
  it('stops without crashing and closes cleanly', async () => {
    const x = await XvfbDisplay.start({ width: 320, height: 200, tmpRoot: '/dev/shm' });
    try {
      const f = await Framebuffer.open({ fbPath: x.fbPath, display: x, logger: silentLogger });
      const i = await XInput.open({ display: x, logger: silentLogger });
      const sub = f.subscribe();
      expect(f.watching).toBe(true);
      x.process.child.kill('SIGKILL');
      await x.process.exited;
      await sleep(100);
      expect(f.watching).toBe(false);
      i.pointer(10, 10, 1);
      i.key(0x61, true);
      i.setClipboard('x');
      i.releaseAll();
      expect(sub.frame().width).toBe(320); // the last frame stays readable
      sub.close();
      await i.close();
      await f.close();
    } finally {
      await x.close();
    }
  });
});
