import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import WebSocket from 'ws';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';
import { startHtmlSite, type PageServer } from '../helpers/pages.js';
import { waitState } from '../helpers/viewer.js';
import { dcQuantFor, jpegInfo } from '../helpers/jpeg.js';

/**
 * The screencast live view's security review (M2, L2, L4) against a real daemon, real
 * Chromium and raw WebSocket viewers:
 * - M2: view-link viewers asking 8 different JPEG qualities (tiles and atlas frames) cost at
 *   most 3 encode settings per session, every one a rung of the adaptive ladder, and the viewer
 *   in control keeps its own picture.
 * - L2: no atlas is larger than the screen. Four changes that once packed (shelves, tallest
 *   first) into 1280x896 now pack (skyline) into 1216x640; the full-frame fallback for a packing
 *   taller than the screen is a unit test (adapt.test.ts), as a page can hardly cause one now.
 * - L4: a view link's tab list has titles only: no url, and no title that is Chromium's url
 *   fallback of an untitled page; the viewer page still shows the tabs.
 */
const SID = 'seclive';
const SECRET = 'SECRET-TOKEN-42';
/** L2: four changes that packed as whole rects (shelves, tallest first) into 1280x896 on a 1280x720 screen. */
const BLOCKS = [
  { id: 'a', x: 0, y: 0, w: 768, h: 320 },
  { id: 'c', x: 832, y: 0, w: 448, h: 256 },
  { id: 'b', x: 512, y: 384, w: 768, h: 320 },
  { id: 'd', x: 0, y: 448, w: 448, h: 256 },
  // Outside the four: fills the held viewer's ack window first.
  { id: 'z', x: 0, y: 320, w: 64, h: 64 },
];
const PAGE = `<!doctype html><html><body style="margin:0;background:rgb(40,80,120)">${BLOCKS.map(
  (b) => `<div id="${b.id}" style="position:absolute;left:${b.x}px;top:${b.y}px;width:${b.w}px;height:${b.h}px;background:rgb(200,200,200)"></div>`,
).join('')}</body></html>`;

let d: RunningDaemon;
let site: PageServer;
let agent: Browser;
let page: Page;
const leaks = new LeakTracker();
const sockets: RawViewer[] = [];

interface Picture {
  kind: number;
  seq: number;
  /** Where a tile goes (0, 0 for an atlas). */
  x: number;
  y: number;
  /** The JPEG's own size (SOF). */
  width: number;
  height: number;
  /** The first value of the luminance quantisation table: tells the JPEG quality. */
  dcQuant: number;
  at: number;
}

/** A screencast viewer speaking the protocol: acks each frame (unless held), reads each JPEG's size and quality. */
class RawViewer {
  readonly texts: any[] = [];
  readonly pictures: Picture[] = [];
  hold = false;
  lastSeq = 0;
  constructor(readonly ws: WebSocket, atlas: boolean) {
    ws.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) {
        const m = JSON.parse(data.toString());
        this.texts.push(m);
        if (m.type === 'hello' && atlas) ws.send(JSON.stringify({ type: 'format', atlas: true }));
        return;
      }
      const kind = data[0]!;
      const jpeg = kind === 3 ? data.subarray(8 + data.readUInt16BE(5) * 16) : data.subarray(14);
      const { width, height, dcQuant } = jpegInfo(jpeg);
      const seq = data.readUInt32BE(1);
      const [x, y] = kind === 3 ? [0, 0] : [data.readUInt16BE(5), data.readUInt16BE(7)];
      this.pictures.push({ kind, seq, x, y, width, height, dcQuant, at: performance.now() });
      if (kind === 1) return;
      this.lastSeq = seq;
      if (!this.hold) this.ack();
    });
  }
  ack(): void {
    this.ws.send(JSON.stringify({ type: 'ack', seq: this.lastSeq }));
  }
  static async open(url: string, atlas: boolean): Promise<RawViewer> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const v = new RawViewer(ws, atlas);
    sockets.push(v);
    await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
    await waitFor('the first picture', () => v.pictures.length > 0).catch((e) => {
      throw new Error(`${e.message}; got ${JSON.stringify(v.texts)}; daemon: ${d.logs().slice(-3000)}`);
    });
    return v;
  }
}

const liveLink = async (kind: 'view' | 'control') => (await api(d.url, `/session/${SID}/live?kind=${kind}`)).body.url as string;
const screencastOf = (url: string) => `${url.replace(/^http/, 'ws')}/screencast`;
const viewerCount = async () => (await api(d.url, `/session/${SID}`)).body.viewers.screencast as number;
async function closeAll(): Promise<void> {
  for (const v of sockets.splice(0)) v.ws.close();
  await waitFor('no screencast viewers', async () => (await viewerCount()) === 0);
}
const quiet = () => new Promise((r) => setTimeout(r, 700));

beforeAll(async () => {
  site = await startHtmlSite((path) => (path.startsWith('/titled') ? '<!doctype html><title>Quarterly report</title><body>report</body>' : PAGE));
  d = await startDaemon({ args: ['--handoff-grace', '1'] });
  // The agent holds the session: view-link viewers are view-only (API.md 3.4).
  agent = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=${SID}&auto_close=false`, defaultViewport: null });
  page = (await agent.pages())[0]!;
  // No <title>: Chromium titles the tab with its url, token and all.
  await page.goto(`${site.url}/private/area?token=${SECRET}`);
  leaks.note(d.stateDir);
}, 60_000);

afterAll(async () => {
  for (const v of sockets) v.ws.terminate();
  if (agent?.connected) await agent.disconnect();
  await d?.cleanup();
  await site?.close();
  expect(leaks.leftovers()).toEqual([]);
});

afterEach(closeAll);

describe('screencast security review', () => {
  it('L4: a view link gets tab titles only (no url, no url-as-title); the viewer page shows the titles', async () => {
    const second = await agent.newPage();
    await second.goto(`${site.url}/titled?token=${SECRET}`);
    try {
      const view = await RawViewer.open(screencastOf(await liveLink('view')), true);
      const tabsOf = (v: RawViewer) => [...v.texts].reverse().find((m) => m.type === 'state')?.tabs ?? [];
      await waitFor('both tabs listed, titled', () => tabsOf(view).length === 2 && tabsOf(view).some((t: any) => t.title === 'Quarterly report'));
      const tabs = tabsOf(view);
      expect(tabs.map((t: any) => Object.keys(t).sort())).toEqual([
        ['agent', 'id', 'title', 'visible'],
        ['agent', 'id', 'title', 'visible'],
      ]);
      expect(tabs.map((t: any) => t.title).sort()).toEqual(['', 'Quarterly report']);
      const everything = JSON.stringify(view.texts);
      for (const leak of [SECRET, '/private', '127.0.0.1']) expect(everything).not.toContain(leak);

      // The kit in a real browser, on a view link: both tabs in the strip, titles only.
      const browser = await puppeteer.launch({ executablePath: '/usr/lib/chromium/chromium', headless: true, args: ['--no-sandbox'] });
      try {
        const vp = await browser.newPage();
        await vp.goto(await liveLink('view'));
        await waitState(vp, ['view-only']);
        await waitFor('the tab strip', async () => (await vp.$$('.hk-page-title')).length === 2);
        const shown = await vp.$$eval('.hk-page-title', (els) => els.map((el) => [el.textContent, el.getAttribute('title')]));
        expect(shown.map(([text]) => text).sort()).toEqual(['New tab', 'Quarterly report']);
        expect(shown.every(([, title]) => title === null)).toBe(true);
        expect(await vp.$eval('.hk-pagebar', (el) => el.outerHTML)).not.toContain(SECRET);
      } finally {
        await browser.close();
      }
    } finally {
      // The agent's first tab in front again for the other tests.
      await second.close();
      await page.bringToFront();
    }
  });

  it('M2: 8 view-link viewers asking 8 qualities cost at most 3 encode settings, all ladder rungs; the control link viewer keeps quality 75', async () => {
    const views = [await liveLink('view'), await liveLink('view'), await liveLink('view')];
    const asked = [10, 20, 30, 45, 60, 70, 85, 95];
    const viewers: RawViewer[] = [];
    for (const [i, q] of asked.entries()) {
      const v = await RawViewer.open(screencastOf(views[i % 3]!), i % 2 === 0);
      v.ws.send(JSON.stringify({ type: 'quality', value: q }));
      viewers.push(v);
    }
    // Joins last (view links may fill only 8 of the 10 places), and still chooses first. On
    // tiles, which never adapt: its frames are exactly the quality it has (the default, 75).
    const control = await RawViewer.open(screencastOf(await liveLink('control')), false);
    await waitFor('control in control', () => control.texts.some((m) => m.type === 'state' && m.canControl));
    await quiet();
    const all = [control, ...viewers];
    const marks = all.map((v) => v.pictures.length);
    await page.evaluate(() => void (document.body.style.background = 'rgb(160,60,40)'));
    await waitFor('a new picture for every viewer', () => all.every((v, i) => v.pictures.length > marks[i]!));
    await quiet();
    const after = all.map((v, i) => v.pictures.slice(marks[i]));
    // Every quality sent is a rung of the ladder.
    const qualities = new Set(after.flat().map((p) => p.dcQuant));
    const rungs = [75, 55, 40, 25, 50, 30].map(dcQuantFor);
    expect([...qualities].every((q) => rungs.includes(q)), `quantisers ${[...qualities]}`).toBe(true);
    // The frame of the change (every viewer idle and ready: one tick) used at most 3 encode
    // settings: quality and format (one atlas JPEG a frame, or tiles). Later frames may differ
    // (a viewer adapting to its link), each tick again within the cap.
    const first = after.map((a) => a.filter((p) => p.seq === a[0]!.seq));
    const settings = new Set(first.flat().map((p) => `${p.dcQuant}|${p.kind === 3 ? 'atlas' : 'tiles'}`));
    expect(settings.size, [...settings].join(' ')).toBeLessThanOrEqual(3);
    expect(after[0]!.map((p) => p.dcQuant), JSON.stringify({ before: control.pictures.slice(0, marks[0]).map((p) => [p.kind, p.seq, p.dcQuant]), after: after.map((a) => a.map((p) => [p.kind, p.seq, p.dcQuant, p.width, p.height])) })).toEqual(after[0]!.map(() => dcQuantFor(75)));
    await closeAll();
    await waitFor('the link-started handoff ended', async () => (await api(d.url, `/session/${SID}`)).body.handoff === null || null);
  });

  it('L2: changes that once packed taller than the screen come in a picture smaller than the screen', async () => {
    const v = await RawViewer.open(screencastOf(await liveLink('view')), true);
    await quiet();
    // Hold acks: two frames of the z block fill the ack window (2).
    v.hold = true;
    for (const colour of ['rgb(255,0,0)', 'rgb(0,0,255)']) {
      const n = v.pictures.length;
      await page.evaluate((c) => void (document.getElementById('z')!.style.background = c), colour);
      await waitFor('a z frame', () => v.pictures.length > n);
    }
    expect(v.pictures.at(-1)!.kind).toBe(3);
    // Four changes, each its own damage, pile up in the held viewer's pending region.
    for (const id of ['a', 'c', 'b', 'd']) {
      await page.evaluate((i) => void (document.getElementById(i)!.style.background = 'rgb(20,160,60)'), id);
      await new Promise((r) => setTimeout(r, 150));
    }
    const m = v.pictures.length;
    v.hold = false;
    v.ack();
    await waitFor('the frame of the four changes', () => v.pictures.length > m);
    await quiet();
    const sent = v.pictures.slice(m);
    expect(sent.every((p) => p.kind === 3)).toBe(true);
    for (const p of sent) expect([p.width, p.height], 'no atlas larger than the screen').toEqual([Math.min(p.width, 1280), Math.min(p.height, 720)]);
    // The two 768-wide rects one above the other, the two 448-wide ones beside them.
    expect(sent[0]).toMatchObject({ width: 1216, height: 640 });
    await closeAll();
  });
});
