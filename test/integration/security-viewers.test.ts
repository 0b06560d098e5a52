import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import WebSocket from 'ws';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';

/**
 * Issue 8 items 6 and 9, against a real daemon with real WebSocket viewers: a session has at
 * most 10 screencast viewers (the 11th is told too_many_viewers and closed with 4029, like
 * WebRTC, and never joins the session), a view-only viewer's quality request changes its own
 * pictures only, and WebRTC credentials are throttled per source like VNC passwords.
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
      this.dcQuant.push(lumaDcQuant(data.subarray(14)));
      if (data.readUInt16BE(5) === 0 && data.readUInt16BE(7) === 0 && data.readUInt16BE(9) === 1280 && data.readUInt16BE(11) === 720) this.fullFrames++;
      if (data[0] === 2) ws.send(JSON.stringify({ type: 'ack', seq: data.readUInt32BE(1) }));
    });
    this.closed = new Promise((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString() })));
  }
}

/** The first value of the first quantisation table (JPEG DQT, ITU T.81 B.2.4.1). */
function lumaDcQuant(jpeg: Buffer): number {
  for (let i = 2; i + 4 < jpeg.length; ) {
    if (jpeg[i] !== 0xff) throw new Error('not a JPEG marker');
    const marker = jpeg[i + 1]!;
    const len = jpeg.readUInt16BE(i + 2);
    if (marker === 0xdb) return jpeg[i + 5]!;
    i += 2 + len;
  }
  throw new Error('no DQT');
}

/** libjpeg's scaling of the standard luminance table's DC entry (16) for a quality. */
function expectedDcQuant(quality: number): number {
  const scale = quality < 50 ? Math.floor(5000 / quality) : 200 - quality * 2;
  return Math.max(1, Math.floor((16 * scale + 50) / 100));
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
  d = await startDaemon();
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
    expect([a.dcQuant[0], b.dcQuant[0]]).toEqual([expectedDcQuant(75), expectedDcQuant(75)]);

    a.ws.send(JSON.stringify({ type: 'quality', value: 10 }));
    await waitFor('a full frame at quality 10', () => a.dcQuant.includes(expectedDcQuant(10)));
    // The page changes: both get new pictures, each at its own quality.
    const [na, nb] = [a.dcQuant.length, b.dcQuant.length];
    await page.evaluate(() => (document.body.style.background = '#a06030'));
    await waitFor('new pictures for both', () => a.dcQuant.length > na && b.dcQuant.length > nb);
    expect(b.dcQuant.every((q) => q === expectedDcQuant(75))).toBe(true);
    expect(a.dcQuant.slice(na).every((q) => q === expectedDcQuant(10))).toBe(true);

    // Flapping its quality cannot make the encoder (whose ticks every viewer waits on)
    // re-encode the whole screen for it at frame rate: at most one change a second.
    const before = a.fullFrames;
    for (let i = 0; i < 40; i++) {
      a.ws.send(JSON.stringify({ type: 'quality', value: i % 2 ? 90 : 20 }));
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 500));
    expect(a.fullFrames - before).toBeLessThanOrEqual(4);
    expect(b.dcQuant.every((q) => q === expectedDcQuant(75))).toBe(true);
    for (const v of [a, b]) v.ws.close();
    await waitFor('no viewers', async () => (await viewerCount()) === 0);
  });

  it('at most 10 viewers: the 11th gets too_many_viewers and close 4029 and never joins; a place frees when one leaves', async () => {
    const attachRows = async () =>
      ((await api(d.url, '/audit?session_id=caps&type=cloud_browser_agent_attach&limit=1000')).body.events as Array<{ transport: string }>).filter(
        (e) => e.transport === 'screencast',
      ).length;
    const attachedBefore = await attachRows();
    const ten = await Promise.all(Array.from({ length: 10 }, () => connectViewer(screencastUrl)));
    await waitFor('10 viewers', async () => (await viewerCount()) === 10);

    const eleventh = await connectViewer(screencastUrl);
    expect(await eleventh.closed).toEqual({ code: 4029, reason: 'too_many_viewers' });
    expect(eleventh.texts).toEqual([{ type: 'error', code: 'too_many_viewers', message: 'this session already has 10 screencast viewers' }]);
    expect(await viewerCount()).toBe(10);
    expect((await attachRows()) - attachedBefore).toBe(10);

    ten[0]!.ws.close();
    await waitFor('9 viewers', async () => (await viewerCount()) === 9);
    const again = await connectViewer(screencastUrl);
    await waitFor('the new viewer gets a picture', () => again.dcQuant.length > 0);
    expect(await viewerCount()).toBe(10);
    for (const v of [...ten, again]) v.ws.close();
    await waitFor('no viewers', async () => (await viewerCount()) === 0);
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
