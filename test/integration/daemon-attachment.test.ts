import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import puppeteer from 'puppeteer-core';
import WebSocket from 'ws';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { startPageServer, type PageServer } from '../helpers/pages.js';
import { api, cdpCall, closed, tryWs, type WsOutcome } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';

/** API.md 3.2 (Cloudflare style) and 3.4 (one attachment; of N simultaneous connects one wins). */
let d: RunningDaemon;
let pages: PageServer;
const leaks = new LeakTracker();

beforeAll(async () => {
  [d, pages] = await Promise.all([startDaemon(), startPageServer()]);
});

afterAll(async () => {
  await d?.cleanup();
  await pages?.close();
  expect(leaks.leftovers()).toEqual([]);
});

/** 20 connects at once: exactly one opens, the 19 others get 409 session_attached (agent). */
async function race(url: string): Promise<WebSocket> {
  const outcomes: WsOutcome[] = await Promise.all(Array.from({ length: 20 }, () => tryWs(url)));
  const opened = outcomes.filter((o) => o.kind === 'open');
  const refused = outcomes.filter((o) => o.kind === 'refused');
  expect(outcomes.filter((o) => o.kind === 'error')).toEqual([]);
  expect(opened).toHaveLength(1);
  expect(refused).toHaveLength(19);
  for (const r of refused) {
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ error: { code: 'session_attached', attachment: 'agent' } });
    expect(typeof r.body.error.message).toBe('string');
  }
  return opened[0]!.ws;
}

async function leave(ws: WebSocket, id: string): Promise<void> {
  ws.close();
  const r = await api(d.url, `/session/${id}/wait?attachment=none&timeout_ms=10000`);
  expect(r.status).toBe(200);
}

describe('attachment race', () => {
  it('20 simultaneous connects to an existing free session: one wins; after it leaves the next connect succeeds', async () => {
    const url = `${d.wsUrl}/?session=race-existing&auto_close=false`;
    const first = await tryWs(url);
    expect(first.kind).toBe('open');
    leaks.note(d.stateDir);
    await leave((first as { ws: WebSocket }).ws, 'race-existing');

    const winner = await race(url);
    expect((await api(d.url, '/session/race-existing')).body).toMatchObject({ attachment: 'agent', attached_by: 'agent' });
    // The winner really speaks CDP to the browser.
    expect((await cdpCall(winner, 1, 'Browser.getVersion')).product).toMatch(/Chrome\//);
    await leave(winner, 'race-existing');

    const next = await tryWs(url);
    expect(next.kind).toBe('open');
    await leave((next as { ws: WebSocket }).ws, 'race-existing');
    expect((await api(d.url, '/session/race-existing/stop', { method: 'POST' })).status).toBe(200);
  });

  it('20 simultaneous connects creating a brand new session id: one session, one winner', async () => {
    const url = `${d.wsUrl}/?session=race-new&auto_close=false`;
    const winner = await race(url);
    leaks.note(d.stateDir);
    const created = (await api(d.url, '/audit?session_id=race-new&type=session_created')).body.events;
    expect(created).toHaveLength(1);
    expect((await cdpCall(winner, 1, 'Target.getTargets')).targetInfos.some((t: { type: string }) => t.type === 'page')).toBe(true);
    await leave(winner, 'race-new');

    const next = await tryWs(url);
    expect(next.kind).toBe('open');
    await leave((next as { ws: WebSocket }).ws, 'race-new');
    expect((await api(d.url, '/session/race-new/stop', { method: 'POST' })).status).toBe(200);
  });
});

describe('Cloudflare style', () => {
  let sessionId: string;
  let created: any;

  it('POST /devtools/browser?keep_alive=600000&targets=true creates a free session and lists its targets', async () => {
    const r = await api(d.url, '/devtools/browser?keep_alive=600000&targets=true', { method: 'POST' });
    expect(r.status).toBe(200);
    leaks.note(d.stateDir);
    created = r.body;
    sessionId = created.sessionId;
    expect(typeof sessionId).toBe('string');
    expect(created.webSocketDebuggerUrl).toBe(`ws://127.0.0.1:${d.port}/devtools/browser/${sessionId}`);
    expect(created.targets.length).toBeGreaterThan(0);
    for (const t of created.targets) {
      expect(Object.keys(t).sort()).toEqual(['devtoolsFrontendUrl', 'id', 'title', 'type', 'url', 'webSocketDebuggerUrl']);
      expect(t.type).toBe('page');
      expect(t.webSocketDebuggerUrl).toBe(`ws://127.0.0.1:${d.port}/devtools/page/${t.id}`);
      expect(t.devtoolsFrontendUrl).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${d.port}/live/[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$`));
    }
    const info = (await api(d.url, `/session/${sessionId}`)).body;
    expect(info).toMatchObject({ state: 'ready', attachment: 'none', auto_close: false });
    // keep_alive is the idle timeout: about 600 s from now.
    const left = Date.parse(info.expires_at) - Date.now();
    expect(left).toBeGreaterThan(500_000);
    expect(left).toBeLessThanOrEqual(600_000);
  });

  it('GET /devtools/browser/ID/json/list and /json/list?session=ID list the same targets with fresh live view URLs', async () => {
    const a = await api(d.url, `/devtools/browser/${sessionId}/json/list`);
    const b = await api(d.url, `/json/list?session=${sessionId}`);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    const ids = (list: { id: string }[]) => list.map((t) => t.id).sort();
    expect(ids(a.body)).toEqual(ids(created.targets));
    expect(ids(b.body)).toEqual(ids(created.targets));
    expect(a.body[0].devtoolsFrontendUrl).toMatch(/\/live\//);
    const viewer = await fetch(a.body[0].devtoolsFrontendUrl);
    expect(viewer.status).toBe(200);
    await viewer.text();
  });

  it('a page-level socket /devtools/page/TARGET works while the session is free', async () => {
    const target = created.targets[0];
    const o = await tryWs(target.webSocketDebuggerUrl);
    expect(o.kind).toBe('open');
    const ws = (o as { ws: WebSocket }).ws;
    const r = await cdpCall(ws, 1, 'Runtime.evaluate', { expression: '1+1' });
    expect(r.result).toEqual({ type: 'number', value: 2, description: '2' });
    await leave(ws, sessionId);
    // The session outlives its page socket (created with auto_close=false).
    expect((await api(d.url, `/session/${sessionId}`)).body.state).toBe('ready');
  });

  it('Puppeteer connects to webSocketDebuggerUrl and drives the page; DELETE stops the session and closes a connected socket with 4000', async () => {
    const browser = await puppeteer.connect({ browserWSEndpoint: created.webSocketDebuggerUrl, defaultViewport: null });
    const page = (await browser.pages())[0]!;
    await page.goto(`${pages.url}/form`);
    await page.click('#btn');
    expect(await page.$eval('#out', (e) => e.textContent)).toBe('clicked 1');
    expect((await api(d.url, `/session/${sessionId}`)).body.attachment).toBe('agent');
    // A second agent is refused while Puppeteer holds it, on either URL style.
    const second = await tryWs(created.webSocketDebuggerUrl);
    expect(second).toMatchObject({ kind: 'refused', status: 409, body: { error: { code: 'session_attached', attachment: 'agent' } } });
    await browser.disconnect();
    await api(d.url, `/session/${sessionId}/wait?attachment=none&timeout_ms=10000`);
    expect((await api(d.url, `/session/${sessionId}`)).body.state).toBe('ready');

    const o = await tryWs(created.webSocketDebuggerUrl);
    expect(o.kind).toBe('open');
    const ws = (o as { ws: WebSocket }).ws;
    const closing = closed(ws);
    const del = await api(d.url, `/devtools/browser/${sessionId}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    const { code, reason } = await closing;
    expect(code).toBe(4000);
    expect(reason.length).toBeGreaterThan(0);
    expect((await api(d.url, `/session/${sessionId}`)).body.state).toBe('stopped');
    // Gone for attach purposes.
    const after = await tryWs(created.webSocketDebuggerUrl);
    expect(after).toMatchObject({ kind: 'refused', status: 404, body: { error: { code: 'session_not_found' } } });
  });
});
