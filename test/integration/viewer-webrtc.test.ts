/**
 * The viewer's WebRTC tab (hitl-kit.js with the daemon's kit-webrtc.js) in a headless Chromium
 * viewer. Against a real daemon: the password form (a wrong password asks again and is
 * audited), the video showing the page's colours, a click and typed text reaching the page,
 * fps and latency in the status line, Done answering a handoff, and the fallback to the
 * screencast, with a notice, for a session without WebRTC. Against a scripted signalling
 * server: the refusals and failures a daemon does not produce on demand.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import type { WebSocket } from 'ws';
import { HttpServer, sendJson } from '../../src/http/server.js';
import { assetRoutes } from '../../src/http/routes/assets.js';
import { silentLogger } from '../../src/util/logger.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';
import { near, surfacePoint, waitState } from '../helpers/viewer.js';

const ID = 'viewer-rtc';
const PLAIN = 'viewer-plain';
const PASSWORD = 'pw123456';
const FB = { width: 800, height: 600 };

/** Three known colours across the top, a click counter and an input below (the page fills the screen). */
const PAGE = `<body style="margin:0;font:24px sans-serif;background:#fff">
  <div style="display:flex;height:300px">
    <div style="flex:1;background:rgb(220,30,30)"></div>
    <div style="flex:1;background:rgb(30,180,60)"></div>
    <div style="flex:1;background:rgb(30,60,220)"></div>
  </div>
  <button id="btn" style="position:absolute;left:50px;top:350px;width:200px;height:100px;font-size:24px"
    onclick="this.textContent = 'clicked ' + (++window.clicks)">click me</button>
  <input id="text" autocomplete="off" style="position:absolute;left:350px;top:370px;width:300px;height:60px;font-size:24px">
  <script>window.clicks = 0;</script>
</body>`;
const COLOURS: Array<[number, number, [number, number, number]]> = [
  [130, 150, [220, 30, 30]],
  [400, 150, [30, 180, 60]],
  [670, 150, [30, 60, 220]],
  [400, 550, [255, 255, 255]],
];

let daemon: RunningDaemon;
let viewer: Browser;
let launched: Promise<Browser> | undefined;
const leaks = new LeakTracker();
let mock: HttpServer;
let mockUrl: string;
/** What the scripted /webrtc endpoint does with each viewer's hello. */
let onHello: (ws: WebSocket) => void = () => {};
const mockSockets = { webrtc: 0, screencast: 0 };

const session = async (id = ID) => (await api(daemon.url, `/session/${id}`)).body;

/** Creates a session as an agent would, with `query`, shows PAGE and lets go of it. */
async function agentShowsPage(id: string, query: string): Promise<void> {
  const agent = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=${id}&auto_close=false&${query}`, defaultViewport: null });
  const page = (await agent.pages())[0]!;
  await page.setContent(PAGE);
  leaks.note(daemon.stateDir, id);
  await agent.disconnect();
  await waitFor('attachment none', async () => (await session(id)).attachment === 'none');
}

/** A fresh link of session `id` (a view link unless said), opened in the viewer with `?transport=webrtc`. */
async function openWebRtcTab(id = ID, kind: 'view' | 'control' = 'view'): Promise<Page> {
  const live = await api(daemon.url, `/session/${id}/live?kind=${kind}`);
  expect(live.status).toBe(200);
  const page = await viewer.newPage();
  await page.setViewport({ width: 1000, height: 700 });
  await page.goto(`${live.body.url}?transport=webrtc`);
  return page;
}

const transportOf = (page: Page) => page.$eval('[data-handoff-state]', (el) => (el as HTMLElement).dataset.transport);
const noticeText = (page: Page) => page.$eval('.hk-notice', (el) => ((el as HTMLElement).hidden ? '' : el.textContent ?? ''));

async function enterPassword(page: Page, password: string): Promise<void> {
  const input = await page.waitForSelector('.hk-notice input[type=password]', { timeout: 20_000 });
  await input!.type(password);
  await page.click('.hk-notice button[type=submit]');
}

/** The colour the <video> shows at framebuffer point (fx, fy), drawn into a canvas. */
function videoPixel(page: Page, fx: number, fy: number): Promise<[number, number, number]> {
  return page.$eval(
    'video[data-handoff-surface]',
    (el, x, y) => {
      const v = el as HTMLVideoElement;
      const c = document.createElement('canvas');
      c.width = v.videoWidth;
      c.height = v.videoHeight;
      const ctx = c.getContext('2d')!;
      ctx.drawImage(v, 0, 0);
      const d = ctx.getImageData(x, y, 1, 1).data;
      return [d[0]!, d[1]!, d[2]!] as [number, number, number];
    },
    fx,
    fy,
  );
}

beforeAll(async () => {
  // The viewer browser starts while the daemon and its two sessions do.
  launched = puppeteer.launch({
    executablePath: '/usr/lib/chromium/chromium',
    headless: true,
    args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'],
  });
  launched.catch(() => {}); // awaited below; a failure is reported there
  daemon = await startDaemon();
  await Promise.all([
    agentShowsPage(ID, `width=${FB.width}&height=${FB.height}&enable_rtc=true&rtc_password=${PASSWORD}`),
    agentShowsPage(PLAIN, `width=${FB.width}&height=${FB.height}`),
  ]);
  mock = new HttpServer({ apiKey: 'unused', logger: silentLogger, onAuthFailed: () => {} });
  assetRoutes(mock);
  mock.route('GET', '/embed', (_ctx, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><body style="margin:0"><div id="v" style="width:800px;height:600px"></div><script src="/hitl-kit.js"></script>
      <script>HandoffKit.mount(document.getElementById('v'), { url: location.origin + '/live/TOKEN', transport: 'webrtc', password: 'given-pw' });</script>`);
  }, true);
  mock.route('GET', '/live/:token/info', (_ctx, res) =>
    sendJson(res, 200, { sessionId: 'mock', width: FB.width, height: FB.height, state: 'ready', transports: { screencast: true, webrtc: true, vnc: false }, attachment: 'none', handoff: null, viewOnly: false }), true);
  mock.route('GET', '/live/:token/downloads', (_ctx, res) => sendJson(res, 200, { files: [] }), true);
  mock.upgrade('/live/:token/screencast', async (_ctx, up) => {
    const ws = await up.accept();
    mockSockets.screencast++;
    ws.send(JSON.stringify({ type: 'hello', sessionId: 'mock', width: FB.width, height: FB.height, transport: 'screencast' }));
    ws.send(JSON.stringify({ type: 'state', canControl: true, attachment: 'human', handoff: null, viewers: { screencast: 1, webrtc: 0, vnc: 0 }, downloads: 0 }));
  }, true);
  mock.upgrade('/live/:token/webrtc', async (_ctx, up) => {
    const ws = await up.accept();
    mockSockets.webrtc++;
    ws.once('message', (m) => {
      expect(JSON.parse(String(m))).toMatchObject({ type: 'hello', password: 'given-pw' }); // the mount options' credentials
      onHello(ws);
    });
  }, true);
  mockUrl = `http://127.0.0.1:${(await mock.listen(0, '127.0.0.1')).port}`;
  viewer = await launched;
}, 90_000);

afterAll(async () => {
  // Closed also when beforeAll failed after starting it.
  await (viewer ?? (await launched?.catch(() => null)))?.close();
  await mock?.close();
  await daemon?.cleanup();
  expect(leaks.leftovers()).toEqual([]);
}, 60_000);

describe('viewer kit: WebRTC tab', () => {
  it('asks for the password in the page, asks again after a wrong one, and the failure is audited', async () => {
    const page = await openWebRtcTab();
    await enterPassword(page, 'wrong-pw');
    await waitFor('the form again', async () => /Wrong/.test(await noticeText(page)) && (await page.$('.hk-notice input[type=password]')));
    expect(await waitState(page, ['connecting'])).toBe('connecting');
    expect(await transportOf(page)).toBe('webrtc');
    const events = (await api(daemon.url, `/audit?session_id=${ID}&type=auth_failed`)).body.events;
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ transport: 'webrtc', actor: 'human' });
    expect((await session()).viewers.webrtc).toBe(0);
    await page.close();
  });

  it('shows the page as video with fps and latency, sends a click, typed text and Done', async () => {
    // A control link: only those may answer a handoff (a view link's viewer sees no Done).
    const page = await openWebRtcTab(ID, 'control');
    await enterPassword(page, PASSWORD);
    expect(await waitState(page, ['live'], 30_000)).toBe('live');
    expect(await transportOf(page)).toBe('webrtc');
    expect(await noticeText(page)).toBe('');
    const video = await page.$eval('video[data-handoff-surface]', (el) => {
      const v = el as HTMLVideoElement;
      return { muted: v.muted, autoplay: v.autoplay, playsInline: v.playsInline };
    });
    expect(video).toEqual({ muted: true, autoplay: true, playsInline: true });
    await waitFor('the video at the screen size', () =>
      page.$eval('video[data-handoff-surface]', (el, w, h) => (el as HTMLVideoElement).videoWidth === w && (el as HTMLVideoElement).videoHeight === h, FB.width, FB.height));
    // Scaled to fit the 1000x700 window, keeping the aspect ratio.
    const box = await page.$eval('video[data-handoff-surface]', (el) => el.getBoundingClientRect().toJSON());
    expect(Math.abs(box.width / box.height - FB.width / FB.height)).toBeLessThan(0.01);
    for (const [x, y, want] of COLOURS) {
      await waitFor(`colour at ${x},${y}`, async () => near(await videoPixel(page, x, y), want));
    }
    const detail = await waitFor('fps and latency', async () => {
      const t = await page.$eval('.hk-detail', (el) => el.textContent ?? '');
      return /\d+ fps/.test(t) && /latency \d+ ms/.test(t) ? t : '';
    });
    expect(detail).toContain('WebRTC H264');
    expect((await session()).viewers.webrtc).toBe(1);
    expect(leaks.note(daemon.stateDir, ID).filter((r) => r.kind === 'ffmpeg')).toHaveLength(1); // the encoder, checked gone at the end

    // The button's centre and the input, in framebuffer pixels, through the scaled video.
    const btn = await surfacePoint(page, 150, 400, FB);
    await page.mouse.click(btn.x, btn.y);
    const input = await surfacePoint(page, 500, 400, FB);
    await page.mouse.click(input.x, input.y);
    await page.keyboard.type('Hi rtc');

    // A handoff request shows the banner; Done answers it over the signalling socket.
    expect((await api(daemon.url, `/session/${ID}/handoff`, { method: 'POST', body: JSON.stringify({ reason: 'check the form' }) })).status).toBe(200);
    await page.waitForSelector('.hk-banner:not([hidden]) .hk-primary:not([disabled])', { timeout: 10_000 });
    expect(await page.$eval('.hk-reason', (el) => el.textContent)).toContain('check the form');
    await page.click('.hk-banner .hk-primary');
    await waitFor('the handoff answered', async () => (await session()).handoff === null);
    const completed = (await api(daemon.url, `/audit?session_id=${ID}&type=handoff_completed`)).body.events;
    expect(completed.at(-1)).toMatchObject({ transport: 'webrtc', detail: { outcome: 'done' } });

    await page.close();
    await waitFor('the viewer gone', async () => (await session()).viewers.webrtc === 0);
    await waitFor('attachment none', async () => (await session()).attachment === 'none');

    const agent = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=${ID}&auto_close=false`, defaultViewport: null });
    const agentPage = (await agent.pages())[0]!;
    expect(await agentPage.$eval('#btn', (el) => el.textContent)).toBe('clicked 1');
    expect(await agentPage.$eval('#text', (el) => (el as HTMLInputElement).value)).toBe('Hi rtc');
    await agent.disconnect();
  });

  it('falls back to the screencast with a notice for a session without WebRTC', async () => {
    const page = await openWebRtcTab(PLAIN);
    expect(await waitState(page, ['live'])).toBe('live');
    expect(await transportOf(page)).toBe('screencast');
    const notice = await page.$eval('.hk-fallback', (el) => ((el as HTMLElement).hidden ? '' : el.textContent ?? ''));
    expect(notice).toMatch(/WebRTC is not enabled.*screencast/);
    expect(await page.$('canvas[data-handoff-surface]')).not.toBeNull();
    await page.close();
  });
});

describe('viewer kit: WebRTC refusals and failures (scripted signalling)', () => {
  async function mountMock(hello: (ws: WebSocket) => void, init?: () => void): Promise<Page> {
    onHello = hello;
    mockSockets.webrtc = mockSockets.screencast = 0;
    const page = await viewer.newPage();
    if (init) await page.evaluateOnNewDocument(init);
    await page.goto(`${mockUrl}/embed`);
    return page;
  }
  const fallbackText = (page: Page) => page.$eval('.hk-fallback', (el) => ((el as HTMLElement).hidden ? '' : el.textContent ?? ''));
  const refuse = (code: string, close: number) => (ws: WebSocket) => {
    ws.send(JSON.stringify({ type: 'error', code, message: code }));
    ws.close(close, code);
  };

  it.each([
    ['too_many_viewers', 4029, /as many viewers/],
    ['connection_failed', 1011, /could not connect/],
  ])('%s falls back to the screencast with a notice', async (code, close, text) => {
    const page = await mountMock(refuse(code, close));
    expect(await waitState(page, ['live'])).toBe('live');
    expect(await transportOf(page)).toBe('screencast');
    expect(await fallbackText(page)).toMatch(text);
    expect(mockSockets.webrtc).toBe(1);
    await page.close();
  });

  it('a close 1011 without an error message falls back too', async () => {
    const page = await mountMock((ws) => ws.close(1011, 'media failed'));
    expect(await waitState(page, ['live'])).toBe('live');
    expect(await fallbackText(page)).toMatch(/could not connect/);
    await page.close();
  });

  it('falls back when no picture comes within 15 s', async () => {
    // The page's clock runs the kit's 15 s no-picture timer in 3 s (only a timer of exactly
    // 15000 ms is shortened): the fallback still comes from that timer and nothing else.
    const page = await mountMock(() => {}, () => {
      const real = window.setTimeout.bind(window);
      (window as any).setTimeout = (fn: TimerHandler, ms?: number, ...args: unknown[]) => real(fn, ms === 15000 ? 3000 : ms, ...args);
    }); // never offers
    await waitState(page, ['connecting']);
    expect(await waitState(page, ['live'], 25_000)).toBe('live');
    expect(await transportOf(page)).toBe('screencast');
    expect(await fallbackText(page)).toMatch(/no picture within 15 s/);
    await page.close();
  }, 40_000);

  it('falls back at once in a browser without RTCPeerConnection', async () => {
    const page = await mountMock(() => {}, () => delete (window as any).RTCPeerConnection);
    expect(await waitState(page, ['live'])).toBe('live');
    expect(await fallbackText(page)).toMatch(/cannot use WebRTC/);
    expect(mockSockets.webrtc).toBe(0);
    await page.close();
  });

  it('asks for credentials on unauthorized, ends without reconnecting on 4000 and reconnects after a drop', async () => {
    const page = await mountMock(refuse('unauthorized', 4001));
    await page.waitForSelector('.hk-notice input[type=password]');
    expect(await noticeText(page)).toMatch(/Wrong/);
    await page.close();

    const dropped = await mountMock((ws) => ws.terminate());
    await waitFor('a reconnect', () => mockSockets.webrtc >= 2, 15_000);
    expect(await noticeText(dropped)).toMatch(/Reconnecting/);
    expect(await transportOf(dropped)).toBe('webrtc');
    await dropped.close();

    const ended = await mountMock((ws) => {
      ws.send(JSON.stringify({ type: 'ended', reason: 'session stopped' }));
      ws.close(4000, 'session stopped');
    });
    expect(await waitState(ended, ['ended'])).toBe('ended');
    expect(await noticeText(ended)).toContain('session stopped');
    await new Promise((r) => setTimeout(r, 1500));
    expect(mockSockets.webrtc).toBe(1);
    await ended.close();
  });
});
