/**
 * Issue 5, the WebRTC transport with headless Chromium as the real viewer: video decodes and
 * shows the page (H.264 and VP8), input over the DataChannel reaches the page, ten viewers at
 * once and the eleventh refused, the encoder lives only while someone watches, restarts when
 * killed, and wrong credentials get nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RtcSession, ViewerBrowser, ffmpegPids, isAlive, near, sleep, waitFor, type Viewer } from '../helpers/webrtc-harness.js';

const W = 640;
const H = 360;
const XK_RETURN = 0xff0d;

/** Quadrants of known colours: what the decoded video must show at the same points. */
const COLOURS: Array<{ at: [number, number]; rgb: [number, number, number] }> = [
  { at: [W / 4, H / 4], rgb: [255, 0, 0] },
  { at: [(3 * W) / 4, H / 4], rgb: [0, 255, 0] },
  { at: [W / 4, (3 * H) / 4], rgb: [0, 0, 255] },
  { at: [(3 * W) / 4, (3 * H) / 4], rgb: [255, 255, 255] },
];

const PAGES = {
  '/colors': `<!doctype html><html><body style="margin:0;overflow:hidden">
    <div style="position:fixed;left:0;top:0;width:50vw;height:50vh;background:#f00"></div>
    <div style="position:fixed;left:50vw;top:0;width:50vw;height:50vh;background:#0f0"></div>
    <div style="position:fixed;left:0;top:50vh;width:50vw;height:50vh;background:#00f"></div>
    <div style="position:fixed;left:50vw;top:50vh;width:50vw;height:50vh;background:#fff"></div>
    <!-- a small ticking corner so the screen keeps changing -->
    <div id="tick" style="position:fixed;left:0;top:0;width:8px;height:8px;background:#000"></div>
    <script>let n = 0; setInterval(() => { tick.style.background = (n++ % 2) ? '#000' : '#888'; }, 100);</script>
  </body></html>`,
  '/form': `<!doctype html><html><body style="margin:0;font:16px sans-serif;background:#eee">
    <button id="btn" style="position:absolute;left:40px;top:40px;width:160px;height:50px">Click</button>
    <input id="text" autocomplete="off" style="position:absolute;left:40px;top:120px;width:400px;height:30px">
    <script>
      window.clicks = [];
      btn.addEventListener('click', (e) => clicks.push({ trusted: e.isTrusted, x: e.clientX, y: e.clientY }));
    </script>
  </body></html>`,
};

let rtc: RtcSession;
let viewers: ViewerBrowser;
const open: Viewer[] = [];

async function openViewer(opts: { username?: string; password?: string; codecs?: string[] } = {}, path = '/webrtc'): Promise<Viewer> {
  const v = await viewers.open(rtc.viewerUrl, rtc.wsUrl(path), opts);
  open.push(v);
  return v;
}

async function closeAll(): Promise<void> {
  await Promise.all(open.splice(0).map((v) => v.close()));
}

async function expectColours(v: Viewer): Promise<void> {
  // Frames keep arriving; the picture must settle on the page's colours (allowing for the
  // first frames and for lossy coding), checked at every point at once.
  const samples = await waitFor(
    'the decoded picture to show the page colours',
    async () => {
      const s = await v.sample(COLOURS.map((c) => c.at));
      return s && COLOURS.every((c, i) => near(s[i], c.rgb)) ? s : null;
    },
    30_000,
    250,
  );
  COLOURS.forEach((c, i) => expect(near(samples[i], c.rgb), `${JSON.stringify(samples[i])} near ${c.rgb}`).toBe(true));
}

beforeAll(async () => {
  rtc = await RtcSession.start(
    {
      width: W,
      height: H,
      hubs: { '/webrtc-locked': { credentials: { username: 'alice', password: 'right-password' } } },
    },
    PAGES,
  );
  await rtc.page.goto(`${rtc.origin}/colors`);
  viewers = await ViewerBrowser.launch();
}, 90_000);

afterAll(async () => {
  const pids = rtc ? rtc.encoderEvents.map((e) => e.pid).filter((p): p is number => p !== null) : [];
  const viewerPid = viewers?.browser.process()?.pid;
  await closeAll();
  await viewers?.close();
  await rtc?.close();
  // Everything this file started is gone (judged by our own pids only).
  for (const pid of pids) expect(isAlive(pid), `ffmpeg ${pid} still runs`).toBe(false);
  if (rtc) for (const pid of [rtc.xvfb.pid, rtc.chromium.pid]) expect(isAlive(pid), `pid ${pid} still runs`).toBe(false);
  if (viewerPid) expect(isAlive(viewerPid), 'the viewer browser still runs').toBe(false);
}, 60_000);

describe('video', () => {
  it('H.264: framesDecoded grows and the picture shows the page', async () => {
    const v = await openViewer({ codecs: ['H264', 'VP8'] });
    const first = await v.waitDecodedOver(5);
    await v.waitDecodedOver(first + 10);
    const offer = (await v.messages()).find((m) => m.type === 'offer');
    expect(offer.codec).toBe('H264');
    expect(offer.sdp).toMatch(/a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 /);
    // Host candidates on the configured address only.
    expect(offer.sdp.match(/a=candidate:.*/g)!.every((c: string) => c.includes(' 127.0.0.1 '))).toBe(true);
    await expectColours(v);
    expect((await v.lastState())?.phase).toBe('live');
    await closeAll();
  });

  it('VP8 when the viewer cannot decode H.264: framesDecoded grows and the picture shows the page', async () => {
    const v = await openViewer({ codecs: ['VP8'] });
    const first = await v.waitDecodedOver(5);
    await v.waitDecodedOver(first + 10);
    expect((await v.messages()).find((m) => m.type === 'offer').codec).toBe('VP8');
    await expectColours(v);
    await closeAll();
  });
});

describe('input over the DataChannel', () => {
  it('a click and typed text reach the page; a view-only viewer changes nothing', async () => {
    await rtc.page.goto(`${rtc.origin}/form`);
    const v = await openViewer();
    await v.waitDecodedOver(3);
    await waitFor('the input channel', () => v.send('sendPointer', 1, 1, 0));
    const btn = await rtc.page.$eval('#btn', (el) => {
      const r = el.getBoundingClientRect();
      return { x: Math.round(r.left + r.width / 2), y: Math.round(r.top + r.height / 2) };
    });
    await v.send('sendPointer', btn.x, btn.y, 0);
    await v.send('sendPointer', btn.x, btn.y, 1);
    await v.send('sendPointer', btn.x, btn.y, 0);
    const clicks = await waitFor('the click', () => rtc.page.evaluate(() => ((window as any).clicks.length ? (window as any).clicks : null)), 10_000);
    expect(clicks).toEqual([{ trusted: true, x: btn.x, y: btn.y }]);

    // Focus the field by clicking it, then type and paste.
    await v.send('sendPointer', 100, 135, 0);
    await v.send('sendPointer', 100, 135, 1);
    await v.send('sendPointer', 100, 135, 0);
    await waitFor('focus', () => rtc.page.evaluate(() => document.activeElement?.id === 'text'), 10_000);
    for (const ch of 'Hi there') {
      await v.send('sendKey', ch.codePointAt(0), true);
      await v.send('sendKey', ch.codePointAt(0), false);
    }
    await v.send('sendKey', XK_RETURN, true);
    await v.send('sendKey', XK_RETURN, false);
    await v.send('sendPaste', ' + päste ✓');
    const value = await waitFor('the typed text', async () => {
      const val = await rtc.page.$eval('#text', (el) => (el as HTMLInputElement).value);
      return val === 'Hi there + päste ✓' ? val : null;
    }, 10_000);
    expect(value).toBe('Hi there + päste ✓');

    // View-only: the same messages go nowhere.
    rtc.session.setControl(false);
    await waitFor('view-only state', async () => (await v.lastState())?.phase === 'view-only', 10_000);
    await v.send('sendPointer', btn.x, btn.y, 1);
    await v.send('sendPointer', btn.x, btn.y, 0);
    await v.send('sendKey', 0x78, true);
    await v.send('sendKey', 0x78, false);
    await sleep(500);
    expect(await rtc.page.evaluate(() => (window as any).clicks.length)).toBe(1);
    expect(await rtc.page.$eval('#text', (el) => (el as HTMLInputElement).value)).toBe('Hi there + päste ✓');
    rtc.session.setControl(true);

    // Handoff buttons travel on the signalling socket.
    await v.send('sendHandoff', 'done');
    await waitFor('the handoff outcome', () => rtc.session.handoffs.length > 0, 10_000);
    expect(rtc.session.handoffs).toEqual([{ outcome: 'done', by: 'webrtc' }]);
    await closeAll();
    await rtc.page.goto(`${rtc.origin}/colors`);
  });
});

describe('viewers', () => {
  it('ten viewers at once all decode; the eleventh gets too_many_viewers', async () => {
    const ten = await Promise.all(Array.from({ length: 10 }, () => openViewer()));
    const firsts = await Promise.all(ten.map((v) => v.waitDecodedOver(3, 60_000)));
    await Promise.all(ten.map((v, i) => v.waitDecodedOver(firsts[i]! + 10, 60_000)));
    expect(rtc.hub.viewerCount).toBe(10);
    expect(rtc.session.viewers.webrtc).toBe(10);
    // One encoder for all of them.
    expect(ffmpegPids(rtc.xvfb.name)).toHaveLength(1);

    const eleventh = await openViewer();
    const refused = await waitFor('the refusal', async () => {
      const s = await eleventh.lastState();
      return s?.closeCode ? s : null;
    }, 20_000);
    expect(refused.error?.code).toBe('too_many_viewers');
    expect(refused.closeCode).toBe(4029);
    expect((await eleventh.messages()).some((m) => m.type === 'offer')).toBe(false);
    expect(rtc.session.viewers.webrtc).toBe(10);
    await closeAll();
  });

  it('the encoder stops when the last viewer leaves and starts again for the next', async () => {
    const a = await openViewer();
    const b = await openViewer();
    await Promise.all([a.waitDecodedOver(3), b.waitDecodedOver(3)]);
    const [pid] = ffmpegPids(rtc.xvfb.name);
    expect(pid).toBeGreaterThan(0);
    await a.close();
    await sleep(1000);
    expect(isAlive(pid!), 'one viewer still watches').toBe(true);
    await b.close();
    await waitFor('ffmpeg to be reaped', () => !isAlive(pid!) && ffmpegPids(rtc.xvfb.name).length === 0, 10_000);
    expect(rtc.hub.encoderPid('H264')).toBeNull();
    expect(rtc.session.viewers.webrtc).toBe(0);

    const c = await openViewer();
    await c.waitDecodedOver(5);
    const [again] = ffmpegPids(rtc.xvfb.name);
    expect(again).toBeGreaterThan(0);
    expect(again).not.toBe(pid);
    await closeAll();
  });

  it('viewers recover when ffmpeg is killed mid-stream', async () => {
    const a = await openViewer();
    const b = await openViewer({ codecs: ['VP8'] });
    await Promise.all([a.waitDecodedOver(5), b.waitDecodedOver(5)]);
    const pids = ffmpegPids(rtc.xvfb.name);
    expect(pids).toHaveLength(2);
    const before = await Promise.all([a.decoded(), b.decoded()]);
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    await waitFor('new encoders', () => {
      const now = ffmpegPids(rtc.xvfb.name);
      return now.length === 2 && now.every((p) => !pids.includes(p));
    }, 20_000);
    // Decoding goes on well past where it was, on the same peer connections.
    await Promise.all([a.waitDecodedOver(before[0]! + 30, 30_000), b.waitDecodedOver(before[1]! + 30, 30_000)]);
    await expectColours(a);
    await expectColours(b);
    expect((await a.lastState())?.phase).toBe('live');
    await closeAll();
  });

  it('the session ending sends ended and closes with 4000', async () => {
    const v = await openViewer();
    await v.waitDecodedOver(3);
    rtc.session.end('session stopped');
    const s = await waitFor('the end', async () => {
      const st = await v.lastState();
      return st?.closeCode ? st : null;
    }, 10_000);
    expect(s.phase).toBe('ended');
    expect(s.closeCode).toBe(4000);
    expect((await v.messages()).some((m) => m.type === 'ended' && m.reason === 'session stopped')).toBe(true);
    await closeAll();
  });
});

describe('credentials', () => {
  it('a wrong rtc_password gets unauthorized and no media, and is reported', async () => {
    const hub = rtc.hubs.get('/webrtc-locked')!;
    const before = rtc.session.joins.length;
    const v = await openViewer({ username: 'alice', password: 'wrong-password' }, '/webrtc-locked');
    const s = await waitFor('the refusal', async () => {
      const st = await v.lastState();
      return st?.closeCode ? st : null;
    }, 10_000);
    expect(s.error?.code).toBe('unauthorized');
    expect(s.closeCode).toBe(4001);
    expect((await v.messages()).some((m) => m.type === 'offer' || m.type === 'state')).toBe(false);
    expect(rtc.authFailures).toEqual([{ path: '/webrtc-locked', ip: '127.0.0.1' }]);
    expect(rtc.session.joins.length).toBe(before);
    expect(rtc.encoderEvents.filter((e) => e.path === '/webrtc-locked')).toEqual([]);
    expect(hub.viewerCount).toBe(0);

    // The right ones get video.
    const ok = await openViewer({ username: 'alice', password: 'right-password' }, '/webrtc-locked');
    await ok.waitDecodedOver(5);
    await closeAll();
  });
});
