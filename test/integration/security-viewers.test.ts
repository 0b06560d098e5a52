import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import WebSocket from 'ws';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';
import { dcQuantFor, jpegInfo } from '../helpers/jpeg.js';

/**
 * Issue 8 items 6 and 9, against a real daemon with real WebSocket viewers: a session has at
 * most 10 screencast viewers (the 11th is told too_many_viewers and closed with 4029, like
 * WebRTC, and never joins the session), of which view links fill at most 8 and one link at
 * most 3 (M4: a view link cannot lock the control link out), a view-only viewer's quality
 * request changes its own pictures only, and WebRTC credentials are throttled per source like
 * VNC passwords.
 */
let d: RunningDaemon;
let browser: Browser;
let page: Page;
const leaks = new LeakTracker();
const viewers: Viewer[] = [];

/** A screencast viewer that acks every frame and remembers the luminance DC quantiser of each. */
class Viewer {
  readonly texts: any[] = [];
  /** First DQT value of each full or partial picture, in arrival order. */
  readonly dcQuant: number[] = [];
  /** Full-screen pictures received. */
  fullFrames = 0;
  closed: Promise<{ code: number; reason: string }>;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) return void this.texts.push(JSON.parse(data.toString()));
      this.dcQuant.push(jpegInfo(data.subarray(14)).dcQuant);
      if (data.readUInt16BE(5) === 0 && data.readUInt16BE(7) === 0 && data.readUInt16BE(9) === 1280 && data.readUInt16BE(11) === 720) this.fullFrames++;
      if (data[0] === 2) ws.send(JSON.stringify({ type: 'ack', seq: data.readUInt32BE(1) }));
    });
    this.closed = new Promise((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString() })));
  }
}

async function connectViewer(url: string): Promise<Viewer> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const v = new Viewer(ws);
  viewers.push(v);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return v;
}

let screencastUrl: string;

beforeAll(async () => {
  d = await startDaemon({ args: ['--handoff-grace', '1'] }); // link-started handoffs end 1 s after their last viewer
  // An agent holds the session, so every viewer of a view link is view-only (API.md 3.4).
  browser = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=caps&auto_close=false&enable_rtc=true&rtc_username=bob&rtc_password=rtc-secret`, defaultViewport: null });
  page = (await browser.pages())[0]!;
  await page.setContent('<body style="margin:0;background:#3060a0"></body>');
  leaks.note(d.stateDir);
  const link = await api(d.url, '/session/caps/live?kind=view');
  expect(link.status).toBe(200);
  screencastUrl = `${link.body.url.replace(/^http/, 'ws')}/screencast`;
});

afterAll(async () => {
  for (const v of viewers) v.ws.terminate();
  if (browser?.connected) await browser.disconnect();
  await d?.cleanup();
  expect(leaks.leftovers()).toEqual([]);
});

const viewerCount = async () => (await api(d.url, '/session/caps')).body.viewers.screencast as number;

describe('screencast caps (issue 8 item 9)', () => {
  it('a view-only viewer that asks for another quality changes only its own pictures', async () => {
    const a = await connectViewer(screencastUrl);
    const b = await connectViewer(screencastUrl);
    await waitFor('both first frames', () => a.dcQuant.length > 0 && b.dcQuant.length > 0);
    expect(a.texts.find((m) => m.type === 'state')).toMatchObject({ canControl: false });
    expect([a.dcQuant[0], b.dcQuant[0]]).toEqual([dcQuantFor(75), dcQuantFor(75)]);

    // 10 snaps to the ladder's lowest full-size rung, 25 (review M2).
    a.ws.send(JSON.stringify({ type: 'quality', value: 10 }));
    await waitFor('a full frame at quality 25', () => a.dcQuant.includes(dcQuantFor(25)));
    // The page changes: both get new pictures, each at its own quality.
    const [na, nb] = [a.dcQuant.length, b.dcQuant.length];
    await page.evaluate(() => (document.body.style.background = '#a06030'));
    await waitFor('new pictures for both', () => a.dcQuant.length > na && b.dcQuant.length > nb);
    expect(b.dcQuant.every((q) => q === dcQuantFor(75))).toBe(true);
    expect(a.dcQuant.slice(na).every((q) => q === dcQuantFor(25))).toBe(true);

    // Flapping its quality cannot make the encoder (whose ticks every viewer waits on)
    // re-encode the whole screen for it at frame rate: at most one change a second.
    const before = a.fullFrames;
    for (let i = 0; i < 40; i++) {
      a.ws.send(JSON.stringify({ type: 'quality', value: i % 2 ? 90 : 20 }));
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 500));
    expect(a.fullFrames - before).toBeLessThanOrEqual(4);
    expect(b.dcQuant.every((q) => q === dcQuantFor(75))).toBe(true);
    for (const v of [a, b]) v.ws.close();
    await waitFor('no viewers', async () => (await viewerCount()) === 0);
  });

  /** Link's screencast socket URL (kind view or control). */
  const newLink = async (kind: 'view' | 'control') => `${(await api(d.url, `/session/caps/live?kind=${kind}`)).body.url.replace(/^http/, 'ws')}/screencast`;
  /** Connects and waits until the viewer is served (hello) or refused (closed): true when served. */
  const served = async (v: Viewer) => {
    const closed = v.closed.then(() => false);
    const hello = waitFor('hello or close', () => v.texts.some((m) => m.type === 'hello') || null, 20_000).then(
      () => true,
      () => false,
    );
    return Promise.race([hello, closed]);
  };
  const attachRows = async () =>
    ((await api(d.url, '/audit?session_id=caps&type=cloud_browser_agent_attach&limit=1000')).body.events as Array<{ transport: string }>).filter(
      (e) => e.transport === 'screencast',
    ).length;

  it('M4: one view link holds at most 3 viewer sockets (screencast and WebRTC together), so 10 sockets on it cannot lock the control link out', async () => {
    const view = await newLink('view');
    const ten = [];
    for (let i = 0; i < 10; i++) {
      const v = await connectViewer(view);
      ten.push({ v, ok: await served(v) });
    }
    expect(ten.map((t) => t.ok)).toEqual([true, true, true, false, false, false, false, false, false, false]);
    const refused = ten[3]!.v;
    expect(await refused.closed).toEqual({ code: 4029, reason: 'too_many_viewers' });
    expect(refused.texts).toEqual([{ type: 'error', code: 'too_many_viewers', message: expect.stringMatching(/this live link already has 3 viewers open/) }]);
    await waitFor('3 viewers', async () => (await viewerCount()) === 3);
    // The count is per link across transports: a WebRTC socket of the same link is refused too.
    const rtc = await connectViewer(view.replace(/\/screencast$/, '/webrtc'));
    expect(await rtc.closed).toEqual({ code: 4029, reason: 'too_many_viewers' });

    // The control link gets in (and, the agent holding the session, starts a handoff).
    const control = await connectViewer(await newLink('control'));
    expect(await served(control)).toBe(true);
    await waitFor('control viewer in control', () => control.texts.find((m) => m.type === 'state' && m.canControl));
    for (const t of [...ten, { v: control }]) t.v.ws.close();
    await waitFor('no viewers', async () => (await viewerCount()) === 0);
    await waitFor('the link-started handoff ended', async () => (await api(d.url, '/session/caps')).body.handoff === null || null);
  });

  it('M4: view links fill at most 8 of the 10 places; control links get the last 2; the 11th gets too_many_viewers and never joins; a place frees when one leaves', async () => {
    const attachedBefore = await attachRows();
    const views = [await newLink('view'), await newLink('view'), await newLink('view')];
    const viewViewers: Viewer[] = [];
    for (let i = 0; i < 8; i++) {
      const v = await connectViewer(views[i % 3]!);
      expect(await served(v)).toBe(true);
      viewViewers.push(v);
    }
    // A ninth view-link viewer (its link has room) finds only places kept for control links.
    const ninth = await connectViewer(views[2]!);
    expect(await served(ninth)).toBe(false);
    expect(await ninth.closed).toEqual({ code: 4029, reason: 'too_many_viewers' });
    expect(ninth.texts).toEqual([
      { type: 'error', code: 'too_many_viewers', message: 'this session already has 8 screencast viewers (the last 2 of 10 places are kept for control links)' },
    ]);
    const control = await newLink('control');
    const c1 = await connectViewer(control);
    const c2 = await connectViewer(control);
    expect([await served(c1), await served(c2)]).toEqual([true, true]);
    await waitFor('10 viewers', async () => (await viewerCount()) === 10);

    const eleventh = await connectViewer(await newLink('control'));
    expect(await eleventh.closed).toEqual({ code: 4029, reason: 'too_many_viewers' });
    expect(eleventh.texts).toEqual([{ type: 'error', code: 'too_many_viewers', message: 'this session already has 10 screencast viewers' }]);
    expect(await viewerCount()).toBe(10);
    expect((await attachRows()) - attachedBefore).toBe(10);

    c1.ws.close();
    await waitFor('9 viewers', async () => (await viewerCount()) === 9);
    const again = await connectViewer(control);
    await waitFor('the new viewer gets a picture', () => again.dcQuant.length > 0);
    expect(await viewerCount()).toBe(10);
    for (const v of [...viewViewers, c2, again]) v.ws.close();
    await waitFor('no viewers', async () => (await viewerCount()) === 0);
    await waitFor('the link-started handoff ended', async () => (await api(d.url, '/session/caps')).body.handoff === null || null);
  });
});

describe('WebRTC credential guessing (issue 8 item 6)', () => {
  /** One hello on a fresh signalling socket; resolves with the first message and the close. */
  async function hello(password: string): Promise<{ first: any; close?: { code: number; reason: string } }> {
    const ws = new WebSocket(screencastUrl.replace(/\/screencast$/, '/webrtc'), { perMessageDeflate: false });
    const v = new Viewer(ws);
    viewers.push(v);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.send(JSON.stringify({ type: 'hello', username: 'bob', password, codecs: ['H264', 'VP8'] }));
    await waitFor('an answer', () => v.texts.length > 0);
    const first = v.texts[0];
    if (first.type !== 'error') {
      ws.close();
      return { first };
    }
    return { first, close: await v.closed };
  }

  it('after 3 free failures the address is locked out: the right credentials are refused (4029) before any compare, and work after', async () => {
    const rows = async () => ((await api(d.url, '/audit?type=auth_failed&limit=1000')).body.events as Array<any>).filter((e) => e.transport === 'webrtc');
    for (let i = 0; i < 4; i++) {
      const r = await hello(`guess-${i}`);
      expect(r.close?.code).toBe(4001);
      expect(r.first.code).toBe('unauthorized');
    }
    expect((await rows()).map((e) => e.detail)).toEqual([
      { failures: 1, locked_ms: 0, refused_unchecked: 0 },
      { failures: 2, locked_ms: 0, refused_unchecked: 0 },
      { failures: 3, locked_ms: 0, refused_unchecked: 0 },
      { failures: 4, locked_ms: 1000, refused_unchecked: 0 },
    ]);
    const locked = await hello('rtc-secret');
    expect(locked.close?.code).toBe(4029);
    expect(locked.first).toMatchObject({ type: 'error', code: 'too_many_requests', message: expect.stringMatching(/too many failed attempts from your address/) });
    expect(await rows()).toHaveLength(4);
    await new Promise((r) => setTimeout(r, 1200));
    const ok = await hello('rtc-secret');
    expect(ok.first.type).toBe('state');
    await waitFor('no webrtc viewer left', async () => (await api(d.url, '/session/caps')).body.viewers.webrtc === 0);
  });
});
