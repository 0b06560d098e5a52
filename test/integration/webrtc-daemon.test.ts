/**
 * The WebRTC transport through the daemon (`/live/TOKEN/webrtc`, wired in sessions/ and
 * http/): credentials of an enable_rtc session with its auth_failed audit row, video and input
 * from a headless Chromium viewer, the viewer counted in Session and audited as a webrtc
 * attach, the encoder journaled as the session's process and gone when the viewer leaves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import puppeteer from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { startPageServer, type PageServer } from '../helpers/pages.js';
import { api, ownedRows } from '../helpers/client.js';
import { ViewerBrowser, isAlive, serveViewerPage, waitFor, type Viewer } from '../helpers/webrtc-harness.js';

const ID = 'rtc-daemon';

let daemon: RunningDaemon;
let pages: PageServer;
let viewerPage: { url: string; close(): Promise<void> };
let vb: ViewerBrowser;
const encoderPids = new Set<number>();
let btn: { x: number; y: number };

const session = async () => (await api(daemon.url, `/session/${ID}`)).body;

/** A fresh live URL's signalling socket. */
async function webrtcUrl(): Promise<string> {
  const live = await api(daemon.url, `/session/${ID}/live`);
  expect(live.status).toBe(200);
  return `${live.body.url.replace('http://', 'ws://')}/webrtc`;
}

beforeAll(async () => {
  pages = await startPageServer();
  viewerPage = await serveViewerPage();
  daemon = await startDaemon();
  const agent = await puppeteer.connect({
    browserWSEndpoint: `${daemon.wsUrl}/?session=${ID}&auto_close=false&width=800&height=600&enable_rtc=true&rtc_username=bob&rtc_password=sekret-pw`,
    defaultViewport: null,
  });
  const page = (await agent.pages())[0]!;
  await page.goto(`${pages.url}/form`);
  btn = await page.$eval('#btn', (el) => {
    const r = el.getBoundingClientRect();
    return { x: Math.round(r.left + r.width / 2), y: Math.round(r.top + r.height / 2) };
  });
  await agent.disconnect();
  await waitFor('attachment none', async () => (await session()).attachment === 'none');
  vb = await ViewerBrowser.launch();
}, 90_000);

afterAll(async () => {
  await vb?.close();
  await daemon?.cleanup();
  await viewerPage?.close();
  await pages?.close();
  for (const pid of encoderPids) expect(isAlive(pid), `ffmpeg ${pid} still runs`).toBe(false);
}, 60_000);

describe('WebRTC through the daemon', () => {
  it('a wrong rtc_password is refused before any media and audited', async () => {
    const v = await vb.open(viewerPage.url, await webrtcUrl(), { username: 'bob', password: 'wrong-pw' });
    const s = await waitFor('the refusal', async () => {
      const st = await v.lastState();
      return st?.closeCode ? st : null;
    }, 20_000);
    expect(s.error?.code).toBe('unauthorized');
    expect(s.closeCode).toBe(4001);
    expect((await v.messages()).some((m) => m.type === 'offer')).toBe(false);
    const events = (await api(daemon.url, `/audit?session_id=${ID}&type=auth_failed`)).body.events;
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ transport: 'webrtc', source_ip: '127.0.0.1' });
    expect(ownedRows(daemon.stateDir, ID).filter((r) => r.kind === 'ffmpeg')).toEqual([]);
    await v.close();
  });

  it('the right credentials get video and control; the viewer is counted, audited, and its encoder journaled and reaped', async () => {
    const v: Viewer = await vb.open(viewerPage.url, await webrtcUrl(), { username: 'bob', password: 'sekret-pw' });
    const first = await v.waitDecodedOver(5);
    await v.waitDecodedOver(first + 10);
    expect((await v.messages()).find((m) => m.type === 'offer')).toMatchObject({ codec: 'H264', width: 800, height: 600, sessionId: ID });
    await waitFor('live', async () => (await v.lastState())?.phase === 'live', 10_000);
    const s = await session();
    expect(s.viewers.webrtc).toBe(1);
    expect(s.attachment).toBe('human');
    const owned = ownedRows(daemon.stateDir, ID).filter((r) => r.kind === 'ffmpeg');
    expect(owned).toHaveLength(1);
    const pid = owned[0]!.pid!;
    encoderPids.add(pid);
    expect(isAlive(pid)).toBe(true);

    // A click on the page's button over the DataChannel (the page fills the 800x600 screen).
    await waitFor('the input channel', () => v.send('sendPointer', 1, 1, 0));
    await v.send('sendPointer', btn.x, btn.y, 0);
    await v.send('sendPointer', btn.x, btn.y, 1);
    await v.send('sendPointer', btn.x, btn.y, 0);

    await v.close();
    await waitFor('the viewer gone', async () => (await session()).viewers.webrtc === 0, 20_000);
    await waitFor('ffmpeg reaped', () => !isAlive(pid), 20_000);
    await waitFor('attachment none', async () => (await session()).attachment === 'none', 20_000);
    const human = (await api(daemon.url, `/audit?session_id=${ID}`)).body.events.filter((e: any) => e.transport === 'webrtc' && e.actor === 'human');
    expect(human.map((e: any) => e.type)).toEqual(['auth_failed', 'cloud_browser_agent_attach', 'cloud_browser_agent_detach']);

    // The agent sees what the click did.
    const agent = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=${ID}&auto_close=false`, defaultViewport: null });
    const page = (await agent.pages())[0]!;
    expect(await page.$eval('#out', (el) => el.textContent)).toBe('clicked 1');
    await agent.disconnect();
  });
});
