import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import WebSocket from 'ws';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { startPageServer, type PageServer } from '../helpers/pages.js';
import { api, closed, tryWs, waitFor } from '../helpers/client.js';
import { canvasPixel, clickSurface, near, openViewer, waitState } from '../helpers/viewer.js';
import { freePort } from '../helpers/vnc.js';
import { LiveLinkSigner } from '../../src/liveview/tokens.js';

/** Issue 4's seed flows: a person in a browser takes over a live session and hands it back. */
describe('live view in the browser', () => {
  let daemon: RunningDaemon;
  let pages: PageServer;
  let viewers: Browser;

  beforeAll(async () => {
    pages = await startPageServer();
    daemon = await startDaemon({ args: ['--vnc-port', String(await freePort())] });
    viewers = await puppeteer.launch({ executablePath: '/usr/lib/chromium/chromium', headless: true, args: ['--no-sandbox'] });
  });

  afterAll(async () => {
    await viewers?.close();
    await daemon?.cleanup();
    await pages?.close();
  });

  const session = async (id: string) => (await api(daemon.url, `/session/${id}`)).body;

  it('Cloudflare flow: the agent waits for navigation while a human logs in through the control link', async () => {
    const created = await api(daemon.url, '/devtools/browser?keep_alive=600000&targets=true', { method: 'POST' });
    expect(created.status).toBe(200);
    const { sessionId, webSocketDebuggerUrl, targets } = created.body;
    const agent = await puppeteer.connect({ browserWSEndpoint: webSocketDebuggerUrl, defaultViewport: null });
    const page = (await agent.pages())[0]!;
    await page.goto(`${pages.url}/login`);
    const box = (await (await page.$('#user'))!.boundingBox())!;
    const navigation = page.waitForNavigation({ timeout: 60_000 });

    const vp = await openViewer(viewers, targets[0].devtoolsFrontendUrl, ['live']);
    expect(await vp.$eval('[data-handoff-state]', (el) => el.getAttribute('data-transport'))).toBe('screencast');
    await waitFor('attachment human with the agent connected', async () => (await session(sessionId)).attachment === 'human');
    expect((await session(sessionId)).handoff).toMatchObject({ reason: 'live link opened' });

    await clickSurface(vp, box.x + 20, box.y + box.height / 2);
    await vp.keyboard.type('Alice.B', { delay: 30 });
    await vp.keyboard.press('Enter');
    await navigation;
    expect(await page.$eval('#hello', (el) => el.textContent)).toBe('Welcome Alice.B');

    await vp.close();
    await waitFor('attachment back to agent', async () => (await session(sessionId)).attachment === 'agent');
    const events = (await api(daemon.url, `/audit?session_id=${sessionId}`)).body.events;
    const human = events.filter((e: any) => e.actor === 'human' && e.transport === 'screencast');
    expect(human.map((e: any) => e.type)).toEqual(['cloud_browser_agent_attach', 'cloud_browser_agent_detach']);
    expect(human[0].detail.control).toBe(true);
    expect(typeof human[1].detail.duration_ms).toBe('number');
    await agent.close();
  });

  it('Scrapfly flow: agent leaves, a human ticks the box from the dashboard, the agent comes back', async () => {
    const id = 'scrapfly-flow';
    let agent = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=${id}&auto_close=false`, defaultViewport: null });
    let page = (await agent.pages())[0]!;
    await page.goto(`${pages.url}/captcha`);
    const box = (await (await page.$('#robot'))!.boundingBox())!;
    await agent.disconnect();
    await waitFor('agent gone', async () => (await session(id)).attachment === 'none');

    // Human: the dashboard's Connect opens the viewer in a new tab.
    const dash = await viewers.newPage();
    await dash.goto(daemon.url + '/');
    const newTab = new Promise<Page>((resolve) => viewers.once('targetcreated', async (t) => resolve((await t.page())!)));
    const connect = await dash.waitForSelector(`button[aria-label="Connect for session ${id}"]`, { timeout: 15_000 });
    await connect!.click();
    const vp = await newTab;
    expect(await waitState(vp, ['live'])).toBe('live');
    await waitFor('attachment human', async () => (await session(id)).attachment === 'human');

    const waiting = api(daemon.url, `/session/${id}/wait?attachment=none&timeout_ms=60000`);
    const [cx, cy] = [Math.round(box.x + box.width / 2), Math.round(box.y + box.height / 2)];
    const before = await waitFor('the box drawn', async () => {
      const px = await canvasPixel(vp, cx, cy);
      return px.join() !== '0,0,0' ? px : null;
    });
    await clickSurface(vp, cx, cy);
    // The human sees the tick in the viewer before leaving.
    await waitFor('the box ticks in the viewer', async () => !near(await canvasPixel(vp, cx, cy), before, 10));
    await vp.close();
    await dash.close();
    const released = await waiting;
    expect(released.status).toBe(200);
    expect(released.body.attachment).toBe('none');

    agent = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=${id}&auto_close=false`, defaultViewport: null });
    page = (await agent.pages())[0]!;
    expect(await page.$eval('#robot', (el) => (el as HTMLInputElement).checked)).toBe(true);
    expect(await page.evaluate(() => (window as any).trusted)).toBe(1);
    await agent.disconnect();
  });

  it('the viewer shows the page: known colours at known points', async () => {
    const id = 'colours';
    const agent = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=${id}&auto_close=false`, defaultViewport: null });
    const page = (await agent.pages())[0]!;
    await page.goto('data:text/html,<body style="margin:0"><div style="display:flex;height:100vh"><div style="flex:1;background:rgb(255,0,0)"></div><div style="flex:1;background:rgb(0,0,255)"></div></div><div style="position:fixed;left:600px;top:300px;width:80px;height:80px;background:rgb(0,200,0)"></div>');
    await agent.disconnect();
    const { url } = (await api(daemon.url, `/session/${id}/live?kind=view`)).body;
    const vp = await openViewer(viewers, url);
    await waitFor('frame drawn', async () => near(await canvasPixel(vp, 100, 100), [255, 0, 0]));
    expect(near(await canvasPixel(vp, 1100, 600), [0, 0, 255])).toBe(true);
    expect(near(await canvasPixel(vp, 640, 340), [0, 200, 0])).toBe(true);
    await vp.close();
  });

  it('a dashboard viewer while an agent is attached is view-only and its clicks do not reach the page', async () => {
    const id = 'view-only';
    const agent = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=${id}&auto_close=false`, defaultViewport: null });
    const page = (await agent.pages())[0]!;
    await page.goto(`${pages.url}/captcha`);
    const { url } = (await api(daemon.url, `/session/${id}/live?kind=view`)).body;
    const vp = await openViewer(viewers, url, ['view-only']);
    expect((await session(id)).attachment).toBe('agent');
    for (let i = 0; i < 3; i++) await clickSurface(vp, 300, 300);
    await new Promise((r) => setTimeout(r, 500));
    expect(await page.evaluate(() => (window as any).trusted)).toBe(0);

    // The agent leaves: the watcher takes control (API.md 3.4) and its clicks land.
    await agent.disconnect();
    await waitState(vp, ['live']);
    await clickSurface(vp, 300, 300);
    const again = await tryWs(`${daemon.wsUrl}/?session=${id}&auto_close=false`);
    expect(again).toMatchObject({ kind: 'refused', status: 409, body: { error: { code: 'session_attached', attachment: 'human' } } });
    await vp.close();
    await waitFor('human gone', async () => (await session(id)).attachment === 'none');
    const back = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=${id}&auto_close=false`, defaultViewport: null });
    expect(await (await back.pages())[0]!.evaluate(() => (window as any).trusted)).toBe(1);
    await back.disconnect();
  });

  it('a link opened after its deadline shows the expired state and the API answers 410', async () => {
    const { url } = (await api(daemon.url, '/session/colours/live')).body;
    const [sessionId, runId] = JSON.parse(Buffer.from(new URL(url).pathname.split('/')[2]!.split('.')[0]!, 'base64url').toString());
    const signer = new LiveLinkSigner(readFileSync(join(daemon.stateDir, 'live-link.key')));
    const old = signer.sign({ sessionId, runId, kind: 'control', issuedAt: Date.now() - 6 * 60_000, id: 'old', generation: 0, singleUse: false });
    const info = await api(daemon.url, `/live/${old}/info`);
    expect(info.status).toBe(410);
    expect(info.body.error.code).toBe('link_expired');
    const vp = await viewers.newPage();
    const res = await vp.goto(`${daemon.url}/live/${old}`);
    expect(res!.status()).toBe(410);
    expect(await waitState(vp, ['expired'])).toBe('expired');
    await vp.close();
    // A forged or mangled token is not a link at all.
    expect((await api(daemon.url, `/live/${old.slice(0, -2)}xx/info`)).status).toBe(404);
  });

  it('the noVNC tab connects, authenticates and renders', async () => {
    const id = 'novnc';
    const agent = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=${id}&auto_close=false&enable_vnc=true&vnc_password=novncpass`, defaultViewport: null });
    await (await agent.pages())[0]!.goto('data:text/html,<body style="margin:0;background:rgb(255,0,0)">');
    await agent.disconnect();
    const { url } = (await api(daemon.url, `/session/${id}/live?kind=view`)).body;
    const vp = await viewers.newPage();
    await vp.setViewport({ width: 1000, height: 700 });
    await vp.goto(`${url}?transport=vnc`);
    const password = await vp.waitForSelector('input[type=password]', { timeout: 20_000 });
    await password!.type('novncpass');
    await password!.press('Enter');
    await waitState(vp, ['live']);
    await waitFor('noVNC drew the red page', async () => {
      const px = await vp.$eval('canvas[data-handoff-surface]', (el) => {
        const c = el as HTMLCanvasElement;
        // Away from the centre, where X draws its pointer.
        return Array.from(c.getContext('2d')!.getImageData(Math.floor(c.width / 4), Math.floor(c.height / 4), 1, 1).data.slice(0, 3));
      });
      return near(px as [number, number, number], [255, 0, 0]);
    });
    await waitFor('vnc viewer counted', async () => (await session(id)).viewers.vnc === 1);
    await vp.close();
    await waitFor('the viewer gone when its tab closes', async () => {
      const s = await session(id);
      return s.viewers.vnc === 0 && s.attachment === 'none';
    });
  });

  it('garbage on a screencast socket closes only that socket', async () => {
    const { url } = (await api(daemon.url, '/session/colours/live?kind=view')).body;
    const token = new URL(url).pathname.split('/')[2];
    const good = await openViewer(viewers, url);
    for (const bad of ['{not json', JSON.stringify({ type: 'warp', x: 1 }), 'x'.repeat(2 * 1024 * 1024)]) {
      const ws = new WebSocket(`${daemon.wsUrl}/live/${token}/screencast`, { maxPayload: 64 * 1024 * 1024 });
      await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
      const shut = closed(ws);
      ws.send(bad);
      expect([1008, 1009]).toContain((await shut).code);
    }
    expect(await good.$eval('[data-handoff-state]', (el) => el.getAttribute('data-handoff-state'))).toMatch(/live|view-only/);
    expect((await api(daemon.url, '/session/colours')).body.state).toBe('ready');
    await good.close();
  });
});
