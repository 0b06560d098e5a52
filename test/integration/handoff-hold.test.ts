import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import puppeteer, { type Browser, type CDPSession, type Page } from 'puppeteer-core';
import WebSocket from 'ws';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { startPageServer, type PageServer } from '../helpers/pages.js';
import { api, waitFor } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';

/**
 * API.md 7 (issue 15.5): while a human has control in a handoff, the agent's input and
 * navigation wait and run in order when it ends; reads and evaluates answer at once.
 */
const SID = 'hold';
let d: RunningDaemon;
let pages: PageServer;
let agent: Browser;
let page: Page;
let cdp: CDPSession;
const leaks = new LeakTracker();

beforeAll(async () => {
  [d, pages] = await Promise.all([startDaemon(), startPageServer()]);
  agent = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=${SID}&auto_close=false`, defaultViewport: null });
  page = (await agent.pages())[0]!;
  cdp = await agent.target().createCDPSession();
});

afterAll(async () => {
  await agent?.disconnect();
  await d?.cleanup();
  await pages?.close();
  expect(leaks.leftovers()).toEqual([]);
});

/** Asks for a human over CDP and opens the control link as a real screencast viewer: the human has control. */
async function handOff(params: object = {}): Promise<{ viewer: WebSocket; handoffId: string }> {
  const req: any = await cdp.send('Handoff.request' as any, { reason: 'solve the captcha', ...params });
  const token = new URL(req.liveUrl).pathname.split('/')[2];
  const viewer = new WebSocket(`${d.wsUrl}/live/${token}/screencast`);
  await new Promise((r, j) => (viewer.once('open', r), viewer.once('error', j)));
  await waitFor('the human has control', async () => (await api(d.url, `/session/${SID}`)).body.attachment === 'human');
  return { viewer, handoffId: req.handoffId };
}

async function complete(viewer: WebSocket): Promise<void> {
  const completed = new Promise<any>((r) => cdp.once('Handoff.completed' as any, r));
  expect((await api(d.url, `/session/${SID}/handoff/complete`, { method: 'POST', body: JSON.stringify({ outcome: 'done' }) })).status).toBe(200);
  await completed;
  viewer.close();
}

/** Tracks whether a promise settled yet. */
function track<T>(p: Promise<T>): { p: Promise<T>; settled: () => boolean } {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  return { p, settled: () => done };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const clicks = () => page.evaluate(() => (window as any).clicks as number);

async function buttonCentre(): Promise<{ x: number; y: number }> {
  const b = (await (await page.$('#btn'))!.boundingBox())!;
  return { x: b.x + b.width / 2, y: b.y + b.height / 2 };
}

async function heldCounts(): Promise<number[]> {
  const { body } = await api(d.url, `/audit?session_id=${SID}&type=handoff_completed`);
  return body.events.map((e: any) => (typeof e.detail === 'string' ? JSON.parse(e.detail) : e.detail).held_commands);
}

describe('agent input held during a handoff', () => {
  it('page.mouse.click waits for the human and runs when the handoff ends; evaluate answers at once', async () => {
    await page.goto(`${pages.url}/form`);
    const at = await buttonCentre();
    const { viewer } = await handOff();
    const click = track(page.mouse.click(at.x, at.y));
    await sleep(1500);
    // Runtime.evaluate passes at once while the click waits.
    expect(await clicks()).toBe(0);
    expect(click.settled()).toBe(false);
    await complete(viewer);
    await click.p;
    expect(await clicks()).toBe(1);
    expect(await page.$eval('#out', (e) => e.textContent)).toBe('clicked 1');
  });

  it('page.goto waits too, and the page stays where the human left it until then', async () => {
    const { viewer } = await handOff();
    const nav = track(page.goto(`${pages.url}/other`));
    await sleep(1500);
    expect(nav.settled()).toBe(false);
    expect(await page.evaluate(() => location.pathname)).toBe('/form');
    await complete(viewer);
    await nav.p;
    expect(await page.evaluate(() => location.pathname)).toBe('/other');
  });

  it('held commands of any CDP session are sent on in the order sent, and the audit counts them', async () => {
    await page.goto(`${pages.url}/form`);
    await page.focus('#text');
    const pageCdp = await page.createCDPSession();
    const { viewer } = await handOff();
    const answered: string[] = [];
    const sent = [
      ...['one ', 'two ', 'three'].map((text) => pageCdp.send('Input.insertText', { text }).then(() => answered.push(text))),
      pageCdp.send('Page.navigate', { url: `${pages.url}/form#second` }).then(() => answered.push('navigate')),
    ];
    await sleep(1000);
    expect(answered).toEqual([]);
    expect(await page.$eval('#text', (e) => (e as HTMLInputElement).value)).toBe('');
    await complete(viewer);
    await Promise.all(sent);
    // Typed in the order sent; the same-document navigation left the page (and the text) in place.
    expect(await page.$eval('#text', (e) => (e as HTMLInputElement).value)).toBe('one two three');
    expect(await page.evaluate(() => location.hash)).toBe('#second');
    await pageCdp.detach();
    // First test: the click's mouse events (Puppeteer sends them without waiting); second: the navigate; this: 4.
    const counts = await heldCounts();
    expect(counts[0]).toBeGreaterThanOrEqual(1);
    expect(counts.slice(1)).toEqual([1, 4]);
  });

  it('Handoff.request {holdAgentInput: false} lets the agent act while the human has control', async () => {
    await page.goto(`${pages.url}/form`);
    const at = await buttonCentre();
    await expect(cdp.send('Handoff.request' as any, { reason: 'x', holdAgentInput: 'no' })).rejects.toThrow(/holdAgentInput/);
    const { viewer } = await handOff({ holdAgentInput: false });
    await page.mouse.click(at.x, at.y);
    expect(await clicks()).toBe(1);
    await complete(viewer);
    expect((await heldCounts()).at(-1)).toBe(0);
  });

  it('REST hold_agent_input is validated', async () => {
    const r = await api(d.url, `/session/${SID}/handoff`, { method: 'POST', body: JSON.stringify({ reason: 'x', hold_agent_input: 'no' }) });
    expect(r.status).toBe(400);
    expect((await api(d.url, `/session/${SID}`)).body.handoff).toBeNull();
  });
});
