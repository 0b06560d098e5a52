import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import sharp from 'sharp';
import { readFileSync } from 'node:fs';
import type { WebSocket } from 'ws';
import { HttpServer, sendJson } from '../../src/http/server.js';
import { assetRoutes } from '../../src/http/routes/assets.js';
import { silentLogger } from '../../src/util/logger.js';

/*
 * The viewer kit and the dashboard in headless Chromium, against a scripted stand-in for the
 * daemon's live and REST routes (the real ones are tested with the daemon). Asset routes are the real ones.
 */

const W = 1280;
const H = 720;
const API_KEY = 'dashboard-key';

interface Viewer {
  ws: WebSocket;
  received: any[];
}

const mock = {
  info: 200 as 200 | 404 | 410,
  canControl: true,
  link: 'control' as 'control' | 'view',
  handoff: null as null | { id: string; reason: string; requested_at: string },
  files: [] as { name: string; size: number; completed_at: string }[],
  viewers: [] as Viewer[],
  handoffPosts: [] as unknown[],
  stopped: [] as string[],
};

function infoBody() {
  return { sessionId: 'sess-1', width: W, height: H, state: 'ready', transports: { screencast: true, webrtc: true, vnc: true }, attachment: 'human', handoff: mock.handoff, viewOnly: !mock.canControl, link: mock.link };
}

function stateMsg(downloads = mock.files.length) {
  return JSON.stringify({ type: 'state', canControl: mock.canControl, attachment: mock.canControl ? 'human' : 'agent', handoff: mock.handoff, viewers: { screencast: 1, webrtc: 0, vnc: 0 }, downloads });
}

async function tile(kind: 1 | 2, seq: number, x: number, y: number, w: number, h: number, rgb: [number, number, number]): Promise<Buffer> {
  const jpeg = await sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).jpeg({ quality: 90 }).toBuffer();
  const head = Buffer.alloc(14);
  head[0] = kind;
  head.writeUInt32BE(seq, 1);
  head.writeUInt16BE(x, 5);
  head.writeUInt16BE(y, 7);
  head.writeUInt16BE(w, 9);
  head.writeUInt16BE(h, 11);
  return Buffer.concat([head, jpeg]);
}

const session = (id: string, extra: Record<string, unknown> = {}) => ({
  session_id: id, run_id: `run-${id}`, state: 'ready', attachment: 'agent', attached_by: 'agent', auto_close: true, width: W, height: H,
  created_at: new Date(Date.now() - 65_000).toISOString(), last_activity_at: new Date().toISOString(), expires_at: null,
  transports: { screencast: true, webrtc: false, vnc: true }, viewers: { screencast: 1, webrtc: 0, vnc: 0 }, vnc_url: `vnc://run-${id}@127.0.0.1:5901`,
  debug: false, handoff: null, ...extra,
});

let http: HttpServer;
let base: string;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  http = new HttpServer({ apiKey: API_KEY, logger: silentLogger, onAuthFailed: () => {} });
  assetRoutes(http);
  http.route('GET', '/live/:token', (_ctx, res) => {
    // What the lead's route serves: live.html as is.
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(readFileSync(new URL('../../src/http/assets/live.html', import.meta.url)));
  }, true);
  http.route('GET', '/embed', (_ctx, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><body style="margin:0"><div id="v" style="width:800px;height:600px"></div><script src="/hitl-kit.js"></script></body>`);
  }, true);
  http.route('GET', '/live/:token/info', (_ctx, res) => {
    if (mock.info === 410) return sendJson(res, 410, { error: { code: 'link_expired', message: 'expired' } });
    if (mock.info === 404) return sendJson(res, 404, { error: { code: 'session_not_found', message: 'gone' } });
    sendJson(res, 200, infoBody());
  }, true);
  http.route('GET', '/live/:token/downloads', (_ctx, res) => sendJson(res, 200, { files: mock.files }), true);
  http.route('POST', '/live/:token/handoff', async (ctx, res) => {
    let body = '';
    for await (const c of ctx.req) body += c;
    mock.handoffPosts.push(JSON.parse(body));
    sendJson(res, 200, { ok: true });
  }, true);
  http.upgrade('/live/:token/screencast', async (_ctx, up) => {
    const ws = await up.accept();
    const v: Viewer = { ws, received: [] };
    mock.viewers.push(v);
    ws.on('message', (m) => v.received.push(JSON.parse(String(m))));
    ws.send(JSON.stringify({ type: 'hello', sessionId: 'sess-1', width: W, height: H, transport: 'screencast' }));
    ws.send(stateMsg());
  }, true);
  http.route('GET', '/sessions', (_ctx, res) =>
    sendJson(res, 200, { sessions: [session('agent-run'), session('needs-help', { handoff: { id: 'h1', reason: 'solve the captcha', requested_at: new Date().toISOString() } })] }));
  http.route('GET', '/audit', (_ctx, res) =>
    sendJson(res, 200, { events: [{ id: 1, ts: new Date().toISOString(), type: 'session_created', session_id: 'agent-run', run_id: 'r', transport: '', source_ip: '127.0.0.1', actor: '', detail: { width: W } }] }));
  http.route('POST', '/session/:id/stop', (ctx, res) => {
    mock.stopped.push(ctx.params.id!);
    sendJson(res, 200, { stopped: true });
  });
  const addr = await http.listen(0, '127.0.0.1');
  base = `http://127.0.0.1:${addr.port}`;
  browser = await puppeteer.launch({ executablePath: '/usr/lib/chromium/chromium', args: ['--no-sandbox'] });
});

afterAll(async () => {
  await browser?.close();
  await http?.close();
});

beforeEach(async () => {
  Object.assign(mock, { info: 200, canControl: true, link: 'control', handoff: null, files: [], viewers: [], handoffPosts: [], stopped: [] });
  await page?.close();
  page = await browser.newPage();
  await page.setViewport({ width: 1000, height: 700 });
});

const until = async <T>(fn: () => T | Promise<T>, what: string, ms = 15_000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; the viewer showed: ${await shown()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};
/** The viewer's state and notice, for a timeout's message. */
const shown = () =>
  page.evaluate(() => {
    const root = document.querySelector<HTMLElement>('[data-handoff-state]');
    return root ? `${root.dataset.handoffState}: ${document.querySelector('.hk-notice')?.textContent ?? ''}` : 'no viewer';
  }).catch((e: Error) => `(page unreadable: ${e.message})`);
const rootState = () => page.$eval('[data-handoff-state]', (el) => (el as HTMLElement).dataset.handoffState);
const sent = (v: Viewer, type: string) => v.received.filter((m) => m.type === type);

/** Mounts the kit in an 800x600 element of a page on the mock's origin. */
async function mountKit(transport = 'screencast'): Promise<void> {
  await page.goto(`${base}/embed`);
  await page.evaluate((url, transport) => {
    const w = window as any;
    w.events = [];
    const el = document.getElementById('v')!;
    el.addEventListener('handoff-state', (e: any) => w.events.push(e.detail.state));
    w.viewer = w.HandoffKit.mount(el, { url, transport });
  }, `${base}/live/TOKEN`, transport);
}

async function liveViewer(): Promise<Viewer> {
  await mountKit();
  await until(async () => (await rootState()) === 'live', 'live');
  return mock.viewers[0]!;
}

describe('asset routes', () => {
  it('serve the kit, the pages and noVNC with their types, openly, and nothing else', async () => {
    const get = (p: string, headers: Record<string, string> = {}) => fetch(base + p, { headers });
    for (const [p, type] of [['/hitl-kit.js', 'text/javascript'], ['/assets/style.css', 'text/css'], ['/', 'text/html'], ['/assets/live.html', 'text/html'], ['/assets/novnc/core/rfb.js', 'text/javascript']]) {
      const res = await get(p!);
      expect(res.status, p).toBe(200);
      expect(res.headers.get('content-type'), p).toContain(type);
    }
    const kit = await get('/hitl-kit.js');
    expect((await get('/hitl-kit.js', { 'if-none-match': kit.headers.get('etag')! })).status).toBe(304);
    expect((await get('/assets/nope.js')).status).toBe(404);
    expect((await get('/assets/novnc/core/nope.js')).status).toBe(404);
    expect((await get('/assets/novnc/core')).status).toBe(404); // a directory
    expect((await get('/assets/novnc/core%2F..%2F..%2Fws%2Fpackage.json')).status).toBe(400);
    expect(((await (await get('/assets/nope.js')).json()) as any).error.code).toBe('not_found');
  });
});

describe('viewer kit: screencast', () => {
  it('goes connecting -> live, draws tiles in place and acks each frame once its last tile is drawn', async () => {
    const v = await liveViewer();
    expect(await page.$eval('[data-handoff-state]', (el) => (el as HTMLElement).dataset.transport)).toBe('screencast');
    expect(await page.evaluate(() => (window as any).events)).toEqual(['live']); // it starts as connecting
    v.ws.send(await tile(2, 1, 0, 0, W, H, [255, 0, 0]));
    await until(() => sent(v, 'ack').length === 1, 'first ack');
    v.ws.send(await tile(1, 2, 0, 0, 64, 64, [0, 0, 255]));
    await new Promise((r) => setTimeout(r, 200));
    expect(sent(v, 'ack')).toEqual([{ type: 'ack', seq: 1 }]); // a kind-1 tile does not end the frame
    v.ws.send(await tile(2, 2, 640, 320, 64, 64, [0, 255, 0]));
    await until(() => sent(v, 'ack').length === 2, 'second ack');
    expect(sent(v, 'ack')[1]).toEqual({ type: 'ack', seq: 2 });
    const px = await page.$eval('canvas[data-handoff-surface]', (c) => {
      const ctx = (c as HTMLCanvasElement).getContext('2d')!;
      const at = (x: number, y: number) => Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3));
      return { size: [(c as HTMLCanvasElement).width, (c as HTMLCanvasElement).height], blue: at(32, 32), green: at(672, 352), red: at(1000, 600) };
    });
    expect(px.size).toEqual([W, H]);
    const near = (got: number[], want: number[]) => got.every((g, i) => Math.abs(g - want[i]!) < 40);
    expect(near(px.blue, [0, 0, 255]), String(px.blue)).toBe(true);
    expect(near(px.green, [0, 255, 0]), String(px.green)).toBe(true);
    expect(near(px.red, [255, 0, 0]), String(px.red)).toBe(true);
  });

  it('maps pointer positions from the scaled canvas to framebuffer pixels with RFB buttons', async () => {
    const v = await liveViewer();
    const r = await page.$eval('canvas[data-handoff-surface]', (c) => c.getBoundingClientRect().toJSON());
    expect(r.width).toBeLessThan(W); // scaled down to the 800px element, keeping the aspect ratio
    expect(Math.abs(r.width / r.height - W / H)).toBeLessThan(0.01);
    await page.mouse.move(r.left + r.width / 4, r.top + r.height / 2);
    await page.mouse.down();
    await page.mouse.up();
    await page.mouse.down({ button: 'right' });
    await page.mouse.up({ button: 'right' });
    await page.mouse.down({ button: 'middle' });
    await page.mouse.up({ button: 'middle' });
    await until(() => sent(v, 'pointer').length >= 7, 'pointer messages');
    const ptr = sent(v, 'pointer');
    for (const p of ptr) {
      expect(Math.abs(p.x - 320)).toBeLessThanOrEqual(1);
      expect(Math.abs(p.y - 360)).toBeLessThanOrEqual(1);
    }
    expect(ptr.map((p) => p.buttons)).toEqual([0, 1, 0, 4, 0, 2, 0]);
    expect(await page.evaluate(() => document.activeElement?.hasAttribute('data-handoff-surface'))).toBe(true);
  });

  it('sends wheel notches, keysyms, pastes (not the raw Ctrl+V) and releases held keys on blur', async () => {
    const v = await liveViewer();
    const r = await page.$eval('canvas[data-handoff-surface]', (c) => c.getBoundingClientRect().toJSON());
    await page.mouse.click(r.left + 10, r.top + 10);
    await page.mouse.wheel({ deltaY: 100 });
    await page.mouse.wheel({ deltaY: -100 });
    await until(() => sent(v, 'wheel').length === 2, 'wheel');
    expect(sent(v, 'wheel').map((m) => [m.dx, m.dy])).toEqual([[0, 1], [0, -1]]);

    await page.keyboard.type('a');
    await page.keyboard.down('Shift');
    await page.keyboard.press('KeyB');
    await page.keyboard.up('Shift');
    await page.keyboard.press('Enter');
    await page.keyboard.down('Control');
    await page.keyboard.press('KeyV');
    await page.keyboard.up('Control');
    await page.$eval('canvas[data-handoff-surface]', (c) => {
      const data = new DataTransfer();
      data.setData('text/plain', 'pasted ✓');
      c.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true }));
    });
    await until(() => sent(v, 'paste').length === 1, 'paste');
    expect(sent(v, 'paste')[0].text).toBe('pasted ✓');
    expect(sent(v, 'key').map((k) => [k.keysym, k.down])).toEqual([
      [0x61, true], [0x61, false],
      [0xffe1, true], [0x42, true], [0x42, false], [0xffe1, false],
      [0xff0d, true], [0xff0d, false],
      [0xffe3, true], [0xffe3, false], // Ctrl only: the V went as the paste
    ]);

    v.received.length = 0;
    await page.keyboard.down('Shift');
    await page.keyboard.down('KeyX');
    await page.$eval('canvas[data-handoff-surface]', (c) => (c as HTMLElement).blur());
    await until(() => sent(v, 'key').length === 4, 'release on blur');
    expect(sent(v, 'key').map((k) => [k.keysym, k.down])).toEqual([[0xffe1, true], [0x58, true], [0xffe1, false], [0x58, false]]);
    await page.keyboard.up('KeyX');
    await page.keyboard.up('Shift');
  });

  it('is view-only when it cannot control: no input leaves it', async () => {
    mock.canControl = false;
    await mountKit();
    await until(async () => (await rootState()) === 'view-only', 'view-only');
    const v = mock.viewers[0]!;
    const r = await page.$eval('canvas[data-handoff-surface]', (c) => c.getBoundingClientRect().toJSON());
    await page.mouse.click(r.left + 50, r.top + 50);
    await page.keyboard.type('x');
    await page.mouse.wheel({ deltaY: 100 });
    await new Promise((res) => setTimeout(res, 200));
    // Acks and the picture format it takes (atlas frames) are not input.
    expect(v.received.filter((m) => m.type !== 'ack' && m.type !== 'format')).toEqual([]);
  });

  it('shows the handoff reason, answers Done over the socket and lists downloads', async () => {
    mock.handoff = { id: 'h1', reason: 'please log in', requested_at: new Date().toISOString() };
    const v = await liveViewer();
    expect(await page.$eval('.hk-banner', (b) => (b as HTMLElement).hidden)).toBe(false);
    expect(await page.$eval('.hk-reason', (b) => b.textContent)).toContain('please log in');
    mock.files = [{ name: 'report (1).txt', size: 2048, completed_at: new Date().toISOString() }];
    v.ws.send(stateMsg());
    const link = await until(() => page.$eval('.hk-files', (ul) => ul.querySelector('a')?.getAttribute('href')).catch(() => null), 'downloads list');
    expect(link).toBe(`${base}/live/TOKEN/downloads/report%20(1).txt`);
    await page.click('.hk-banner .hk-primary');
    await until(() => sent(v, 'handoff').length === 1, 'handoff answer');
    expect(sent(v, 'handoff')[0]).toEqual({ type: 'handoff', outcome: 'done' });
  });

  it('on a view link shows the handoff reason but no Done / Can\'t do it (only control links answer)', async () => {
    mock.link = 'view';
    mock.handoff = { id: 'h1', reason: 'please log in', requested_at: new Date().toISOString() };
    await liveViewer();
    await until(async () => (await page.$eval('.hk-reason', (b) => b.textContent)) === 'The agent asks for help: please log in', 'the reason');
    expect(await page.$eval('.hk-banner', (b) => (b as HTMLElement).hidden)).toBe(false);
    expect(await page.$$eval('.hk-banner .hk-btn', (bs) => bs.map((b) => (b as HTMLElement).hidden))).toEqual([true, true]);
  });

  it('ends without reconnecting on close 4000, and reconnects with backoff after a drop', async () => {
    const v = await liveViewer();
    v.ws.close(1011, 'gone for a moment');
    await until(() => mock.viewers.length === 2, 'reconnect', 3000);
    await until(async () => (await rootState()) === 'live', 'live again');
    const second = mock.viewers[1]!;
    second.ws.send(JSON.stringify({ type: 'ended', reason: 'session stopped' }));
    second.ws.close(4000, 'session stopped');
    await until(async () => (await rootState()) === 'ended', 'ended');
    expect(await page.$eval('.hk-notice', (n) => n.textContent)).toContain('session stopped');
    await new Promise((r) => setTimeout(r, 1200));
    expect(mock.viewers.length).toBe(2);
  });

  it('says expired for a 410 link and ended for a 404 session, without connecting', async () => {
    mock.info = 410;
    await mountKit();
    await until(async () => (await rootState()) === 'expired', 'expired');
    mock.info = 404;
    await mountKit();
    await until(async () => (await rootState()) === 'ended', 'ended');
    expect(mock.viewers.length).toBe(0);
  });

  it('asks for the WebRTC password, switches transport from the tabs, and disconnect() unmounts', async () => {
    await mountKit('webrtc');
    await until(() => page.$('.hk-notice input[type=password]'), 'password form');
    expect(await rootState()).toBe('connecting');
    expect(await page.$eval('[data-handoff-state]', (el) => (el as HTMLElement).dataset.transport)).toBe('webrtc');
    expect(await page.$$eval('.hk-tab', (tabs) => tabs.map((t) => t.textContent))).toEqual(['Screencast', 'VNC', 'WebRTC']);
    await page.click('.hk-tab[data-transport="screencast"]');
    await until(async () => (await rootState()) === 'live', 'live on screencast');
    expect(await page.$eval('[data-handoff-state]', (el) => (el as HTMLElement).dataset.transport)).toBe('screencast');
    await page.evaluate(() => (window as any).viewer.disconnect());
    expect(await page.$('[data-handoff-state]')).toBeNull();
    await until(() => mock.viewers[0]!.ws.readyState === mock.viewers[0]!.ws.CLOSED, 'socket closed');
  });

  it('asks for the VNC password in the page and loads noVNC from the daemon', async () => {
    await mountKit('vnc');
    await until(() => page.$('.hk-notice input[type=password]'), 'password form');
    expect(await rootState()).toBe('connecting');
    await page.type('.hk-notice input[type=password]', 'secret12');
    // No RFB endpoint in this mock: noVNC loads, builds its canvas, and the connection fails
    // into a retry, which takes the canvas away again: note that it was there at all.
    await page.evaluate(() => {
      const w = window as any;
      w.sawCanvas = false;
      const see = () => (w.sawCanvas ||= !!document.querySelector('.hk-vnc canvas[data-handoff-surface]'));
      new MutationObserver(see).observe(document.body, { subtree: true, childList: true, attributes: true });
    });
    await page.keyboard.press('Enter');
    await until(() => page.evaluate(() => (window as any).sawCanvas), 'noVNC canvas');
    // noVNC may wait out its own 3 s disconnect timeout before it reports the failure.
    await until(() => page.$eval('.hk-notice', (n) => /Reconnecting/.test(n.textContent ?? '')), 'retry notice', 10_000);
  });
});

describe('live page', () => {
  it('mounts the viewer full-window from its own URL and titles itself with the session', async () => {
    await page.goto(`${base}/live/TOKEN`);
    await until(async () => (await page.$('[data-handoff-state]')) && (await rootState()) === 'live', 'live');
    expect(await page.title()).toContain('sess-1');
  });
});

describe('dashboard', () => {
  it('asks for the API key on 401, then lists sessions with help requests first and stops one after a confirm', async () => {
    await page.goto(`${base}/`);
    await until(() => page.$eval('#login', (l) => !(l as HTMLElement).hidden), 'login form');
    await page.type('#api-key', API_KEY);
    await page.keyboard.press('Enter');
    await until(() => page.$$eval('.session', (s) => s.length === 2), 'sessions');
    expect(await page.$$eval('.session code', (c) => c.map((x) => x.textContent))).toEqual(['needs-help', 'agent-run']);
    expect(await page.$eval('.session.asking .handoff', (p) => p.textContent)).toContain('solve the captcha');
    expect(await page.$eval('#audit', (t) => t.textContent)).toContain('session created');
    expect(await page.evaluate(() => sessionStorage.getItem('handoff.apiKey'))).toBe(API_KEY);
    page.once('dialog', (d) => void d.accept());
    await page.click('.session:nth-child(2) [data-action=stop]');
    await until(() => mock.stopped.length === 1, 'stop');
    expect(mock.stopped).toEqual(['agent-run']);
  });
});
