import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';
import { freePort } from '../helpers/vnc.js';
import { Enc, RawRfb } from '../helpers/vnc-raw.js';
import { parsePrometheus, value } from '../helpers/prometheus.js';
import { clickSurface, waitState } from '../helpers/viewer.js';

/**
 * Issue 12 part 3 (VNC) with real clients on a real daemon: noVNC in headless Chromium turns
 * on ContinuousUpdates after our Fence and EndOfContinuousUpdates, draws our cursor locally and
 * follows changes without asking for them; a malformed fence closes only its connection.
 * Part 4: after a viewer in control on each transport, /metrics has its series and they moved.
 */
let d: RunningDaemon;
let vncPort: number;
let viewers: Browser;
let agent: Browser;
let page: Page;
const leaks = new LeakTracker();
const PASSWORD = 'qualitypw';

beforeAll(async () => {
  vncPort = await freePort();
  d = await startDaemon({ args: ['--vnc-port', String(vncPort)] });
  agent = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=q&auto_close=false&enable_vnc=true&vnc_password=${PASSWORD}`, defaultViewport: null });
  page = (await agent.pages())[0]!;
  // The agent stays attached (viewers are view-only) so it can change the page under them.
  await page.goto('data:text/html,<body style="margin:0;background:rgb(255,0,0)">');
  leaks.note(d.stateDir);
  viewers = await puppeteer.launch({ executablePath: '/usr/lib/chromium/chromium', headless: true, args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'] });
}, 60_000);

afterAll(async () => {
  await viewers?.close();
  await agent?.disconnect();
  await d?.cleanup();
  expect(leaks.leftovers()).toEqual([]);
});

const setColour = (css: string) => page.evaluate((c) => void (document.body.style.background = c), css);

describe('VNC extensions with real clients', () => {
  it('noVNC enables continuous updates after our fence, draws our cursor and follows changes unasked', async () => {
    const { url } = (await api(d.url, '/session/q/live?kind=control')).body;
    const ws = url.replace(/^http/, 'ws') + '/vnc';
    const vp = await viewers.newPage();
    await vp.goto(`${d.url}/hitl-kit.js`); // any page of the daemon's origin
    // A string: vitest would rewrite a dynamic import() inside a function.
    await vp.evaluate(`(async () => {
      const RFB = (await import('/assets/novnc/core/rfb.js')).default;
      const screen = document.createElement('div');
      screen.style.cssText = 'width:1280px;height:720px';
      document.body.replaceChildren(screen);
      window.rfb = new RFB(screen, ${JSON.stringify(ws)}, { credentials: { password: ${JSON.stringify(PASSWORD)} }, shared: true });
    })()`);
    const state = () =>
      vp.evaluate(() => {
        const r = (window as unknown as { rfb: Record<string, any> }).rfb;
        const c = document.querySelector('canvas')!;
        const px = c.width ? Array.from(c.getContext('2d')!.getImageData(40, 40, 1, 1).data.slice(0, 3)) : [];
        return { fence: r._supportsFence, cu: r._enabledContinuousUpdates, cursor: [r._cursorImage?.w, r._cursorImage?.hotx], px };
      });
    const red = await waitFor('noVNC drew the red page with continuous updates on', async () => {
      const s = await state();
      return s.cu && s.px[0]! > 200 && s.px[1]! < 60 ? s : null;
    });
    expect(red).toMatchObject({ fence: true, cu: true });
    expect(red.cursor[0]).toBeGreaterThan(0); // the session's X cursor shape
    // noVNC sends no FramebufferUpdateRequest while continuous updates are on.
    await setColour('rgb(0,0,255)');
    await waitFor('noVNC followed the change', async () => {
      const s = await state();
      return s.px[2]! > 200 && s.px[0]! < 60;
    });
    await vp.close();
  });

  it('a fence with a payload over 64 bytes closes that connection; the daemon serves the next', async () => {
    const bad = await RawRfb.connect(vncPort, PASSWORD);
    bad.setEncodings([Enc.Raw, Enc.Fence]);
    bad.fence(0x80000000, Buffer.alloc(200), 200);
    await bad.closed;
    const good = await RawRfb.connect(vncPort, PASSWORD);
    good.setEncodings([Enc.Raw, Enc.ContinuousUpdates]);
    good.request(false, 0, 0, 64, 64);
    expect((await good.readUpdate()).rects).toEqual([{ x: 0, y: 0, w: 64, h: 64, enc: Enc.Raw, bytes: 64 * 64 * 4 }]);
    expect(good.controls).toEqual([{ type: 'endOfContinuousUpdates' }]);
    good.destroy();
    expect((await api(d.url, '/health')).status).toBe(200);
  });
});

describe('live-view quality in /metrics and in the status line', () => {
  const M = 'metered';
  const TOGGLE = `data:text/html,<body style="margin:0;background:rgb(255,0,0)" onmousedown="this.style.background = this.style.background === 'rgb(0, 0, 255)' ? 'rgb(255, 0, 0)' : 'rgb(0, 0, 255)'">`;
  const metrics = async () => parsePrometheus((await api(d.url, '/metrics')).body);
  const labels = (transport: string) => ({ transport, session: M });

  beforeAll(async () => {
    const a = await puppeteer.connect({
      browserWSEndpoint: `${d.wsUrl}/?session=${M}&auto_close=false&enable_vnc=true&vnc_password=meteredpw&enable_rtc=true&rtc_password=meteredrtc`,
      defaultViewport: null,
    });
    await (await a.pages())[0]!.goto(TOGGLE);
    await a.disconnect();
    await waitFor('attachment none', async () => (await api(d.url, `/session/${M}`)).body.attachment === 'none');
  }, 60_000);

  async function viewerSession(transport: 'screencast' | 'webrtc' | 'vnc', password: string | null): Promise<void> {
    const { url } = (await api(d.url, `/session/${M}/live?kind=control`)).body;
    const vp = await viewers.newPage();
    await vp.setViewport({ width: 1000, height: 700 });
    await vp.goto(`${url}?transport=${transport}`);
    if (password) {
      const input = await vp.waitForSelector('.hk-notice input[type=password]', { timeout: 20_000 });
      await input!.type(password);
      await input!.press('Enter');
    }
    await waitState(vp, ['live']);
    await waitFor(`${transport} viewer counted`, async () => value(await metrics(), 'handoff_liveview_viewers', labels(transport)) === 1);
    // Clicks toggle the page's colour: each is an input followed by damage.
    await waitFor(`${transport} input-to-frame probe observed`, async () => {
      await clickSurface(vp, 300, 300);
      return (value(await metrics(), 'handoff_liveview_input_to_frame_seconds_count', labels(transport)) ?? 0) >= 2;
    }, 30_000, 500);
    const status = await waitFor('fps in the status line', async () => {
      const text = await vp.$eval('.hk-status', (el) => el.textContent ?? '');
      return /\d+ fps/.test(text) && /latency \d+ ms/.test(text) ? text : null;
    });
    expect(status).toMatch(/fps/);
    await vp.close();
  }

  it('each transport counts frames, bytes, encode time, latency and viewers for the session', async () => {
    await viewerSession('screencast', null);
    await viewerSession('vnc', 'meteredpw');
    await viewerSession('webrtc', 'meteredrtc');
    const f = await metrics();
    for (const t of ['screencast', 'webrtc', 'vnc']) {
      expect(value(f, 'handoff_liveview_frames_total', labels(t)), t).toBeGreaterThan(2);
      expect(value(f, 'handoff_liveview_bytes_total', labels(t)), t).toBeGreaterThan(1000);
      expect(value(f, 'handoff_liveview_dropped_frames_total', labels(t)) ?? 0, t).toBeGreaterThanOrEqual(0);
      expect(value(f, 'handoff_liveview_input_to_frame_seconds_count', labels(t)), t).toBeGreaterThanOrEqual(2);
      expect(value(f, 'handoff_liveview_input_to_frame_seconds_sum', labels(t)), t).toBeGreaterThan(0);
      await waitFor(`${t} viewer gone`, async () => value(await metrics(), 'handoff_liveview_viewers', labels(t)) === 0);
    }
    for (const t of ['screencast', 'vnc']) expect(value(f, 'handoff_liveview_encode_seconds_count', labels(t)), t).toBeGreaterThan(2);
    expect(f.get('handoff_liveview_dropped_frames_total')?.type).toBe('counter');
    // A stopped session's series go.
    expect((await api(d.url, `/session/${M}/stop`, { method: 'POST' })).status).toBe(200);
    const after = await metrics();
    expect(after.get('handoff_liveview_frames_total')!.samples.filter((s) => s.labels.session === M)).toEqual([]);
  });
});
