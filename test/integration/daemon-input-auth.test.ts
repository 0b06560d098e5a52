import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import WebSocket from 'ws';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { startPageServer, type PageServer } from '../helpers/pages.js';
import { api, rawRequest, tryWs } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';

/**
 * API.md 2 and 3.5: the API key, refusals of bad input on REST and on the WebSocket upgrade,
 * unknown sessions, path traversal, VNC password rules; and none of it disturbs a live session.
 */
const KEY = 'test-key-0123456789';
const auth = { authorization: `Bearer ${KEY}` };
let d: RunningDaemon;
let pages: PageServer;
let browser: Browser;
let page: Page;
const leaks = new LeakTracker();

const get = (path: string, init: RequestInit = {}) => api(d.url, path, { ...init, headers: { ...auth, ...(init.headers as object) } });
const ws = (query: string) => tryWs(`${d.wsUrl}/?${query}${query ? '&' : ''}api_key=${KEY}`);

beforeAll(async () => {
  [d, pages] = await Promise.all([startDaemon({ args: ['--api-key', KEY, '--max-sessions', '3'] }), startPageServer()]);
  // The session every test below must leave working.
  browser = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=keep&auto_close=false&api_key=${KEY}`, defaultViewport: null });
  page = (await browser.pages())[0]!;
  await page.goto(`${pages.url}/form`);
  leaks.note(d.stateDir);
});

afterAll(async () => {
  await browser?.disconnect();
  await d?.cleanup();
  await pages?.close();
  expect(leaks.leftovers()).toEqual([]);
});

function expectError(r: { status: number; body: any }, status: number, code: string): void {
  expect({ status: r.status, code: r.body?.error?.code }).toEqual({ status, code });
  expect(typeof r.body.error.message).toBe('string');
}

function expectRefused(o: Awaited<ReturnType<typeof tryWs>>, status: number, code: string): void {
  if (o.kind === 'open') o.ws.close();
  expect(o.kind).toBe('refused');
  expectError(o as { status: number; body: any }, status, code);
}

describe('API key', () => {
  it('missing or wrong key: 401 unauthorized on REST and on the upgrade, each audited as auth_failed; /health is open', async () => {
    const failedBefore = (await get('/audit?type=auth_failed&limit=10000')).body.events.length;

    expectError(await api(d.url, '/sessions'), 401, 'unauthorized');
    expectError(await api(d.url, '/sessions?api_key=wrong'), 401, 'unauthorized');
    expectError(await api(d.url, '/sessions', { headers: { authorization: 'Bearer wrong' } }), 401, 'unauthorized');
    expectError(await api(d.url, '/session/keep'), 401, 'unauthorized');
    expectError(await api(d.url, '/json/version'), 401, 'unauthorized');
    expectRefused(await tryWs(`${d.wsUrl}/?session=keep`), 401, 'unauthorized');
    expectRefused(await tryWs(`${d.wsUrl}/?session=intruder&api_key=wrong`), 401, 'unauthorized');

    const failed = (await get('/audit?type=auth_failed&limit=10000')).body.events;
    expect(failed.length - failedBefore).toBe(7);
    expect(failed.at(-1)).toMatchObject({ type: 'auth_failed', source_ip: '127.0.0.1' });
    // No session was created by a refused connect.
    expect((await get('/session/intruder')).status).toBe(404);

    const health = await api(d.url, '/health');
    expect(health.status).toBe(200);
    expect(health.body.ok).toBe(true);
  });

  it('the right key works as ?api_key= and as Authorization: Bearer', async () => {
    const q = await api(d.url, `/sessions?api_key=${KEY}`);
    expect(q.status).toBe(200);
    expect(q.body.sessions.map((s: { session_id: string }) => s.session_id)).toContain('keep');
    const b = await api(d.url, '/session/keep', { headers: auth });
    expect(b.status).toBe(200);
    expect(b.body.state).toBe('ready');
    // URLs handed back carry the key on to the socket.
    const v = await api(d.url, `/json/version?api_key=${KEY}`);
    expect(v.body.webSocketDebuggerUrl).toBe(`ws://127.0.0.1:${d.port}/?api_key=${KEY}`);
  });
});

describe('bad input', () => {
  const longId = 'x'.repeat(200);

  it('bad session ids: 400 bad_request on the upgrade and on REST', async () => {
    for (const id of ['a/b', longId, 'a b', 'a$b', '../keep']) {
      expectRefused(await ws(`session=${encodeURIComponent(id)}`), 400, 'bad_request');
      expectError(await get(`/session/${encodeURIComponent(id)}`), 400, 'bad_request');
      expectError(await get(`/session/${encodeURIComponent(id)}/stop`, { method: 'POST' }), 400, 'bad_request');
    }
    expectRefused(await tryWs(`${d.wsUrl}/devtools/browser/${longId}?api_key=${KEY}`), 400, 'bad_request');
    expectError(await get(`/devtools/browser?session=${encodeURIComponent('a/b')}`, { method: 'POST' }), 400, 'bad_request');
  });

  it('out of range, malformed and oversize values: 400 bad_request, and no session is created', async () => {
    const sessionsBefore = (await get('/sessions')).body.sessions.length;
    const bad = [
      'session=bad-1&width=99999',
      'session=bad-2&height=10',
      'session=bad-3&width=12.5',
      'session=bad-4&timeout=99999',
      'session=bad-5&auto_close=maybe',
      `session=bad-6&vnc_password=${'p'.repeat(2000)}`,
      `session=bad-7&hitl_allowed_networks=${'1'.repeat(1500)}`,
      'session=bad-8&hitl_allowed_networks=not-a-network',
      'session=bad-9&debug=yes',
    ];
    for (const q of bad) {
      expectRefused(await ws(q), 400, 'bad_request');
      // POST /devtools/browser sessions are auto_close=false by definition (API.md 3.2).
      if (!q.includes('auto_close')) expectError(await get(`/devtools/browser?${q}`, { method: 'POST' }), 400, 'bad_request');
    }
    expectError(await get('/devtools/browser?keep_alive=abc', { method: 'POST' }), 400, 'bad_request');
    expectError(await get('/session/keep/wait?attachment=nobody'), 400, 'bad_request');
    expectError(await get('/session/keep/wait?timeout_ms=-1'), 400, 'bad_request');
    expectError(await get('/audit?type=not_a_type'), 400, 'bad_request');
    expectError(await get('/audit?limit=0'), 400, 'bad_request');
    // A request URL past the limit.
    expectError(await get(`/sessions?pad=${'a'.repeat(10_000)}`), 400, 'bad_request');
    expectRefused(await ws(`session=huge&pad=${'a'.repeat(10_000)}`), 400, 'bad_request');
    expect((await get('/sessions')).body.sessions.length).toBe(sessionsBefore);
  });

  it('an unknown session is 404 session_not_found on every route', async () => {
    const routes: [string, string][] = [
      ['GET', '/session/nope'],
      ['POST', '/session/nope/stop'],
      ['GET', '/session/nope/wait?attachment=none&timeout_ms=100'],
      ['GET', '/session/nope/live'],
      ['GET', '/session/nope/downloads'],
      ['GET', '/session/nope/downloads/report.txt'],
      ['GET', '/session/nope/recording'],
      ['GET', '/devtools/browser/nope/json/list'],
      ['DELETE', '/devtools/browser/nope'],
      ['GET', '/json/list?session=nope'],
      ['GET', '/json?session=nope'],
    ];
    for (const [method, path] of routes) {
      const r = await get(path, { method });
      expect({ route: `${method} ${path}`, status: r.status, code: r.body?.error?.code }).toEqual({ route: `${method} ${path}`, status: 404, code: 'session_not_found' });
    }
    expectRefused(await tryWs(`${d.wsUrl}/devtools/browser/nope?api_key=${KEY}`), 404, 'session_not_found');
  });

  it('path traversal in downloads is 400 bad_request and never serves the file', async () => {
    const paths = [
      '/session/keep/downloads/..%2F..%2Fetc%2Fpasswd',
      '/session/keep/downloads/%2e%2e',
      '/session/keep/downloads/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd',
      '/session/keep/downloads/%2E%2E%2F%2E%2E%2Fhandoff.db',
      '/session/keep/downloads/..%5c..%5chandoff.db',
      '/session/keep/downloads/../../../../etc/passwd',
      '/session/keep/downloads/..',
      '/session/keep/downloads/a%00b',
    ];
    for (const path of paths) {
      const r = await rawRequest(d.port, 'GET', path, auth);
      expect({ path, status: r.status, code: r.body?.error?.code }).toEqual({ path, status: 400, code: 'bad_request' });
      expect(JSON.stringify(r.body)).not.toContain('root:');
    }
  });

  it('enable_vnc needs a vnc_password (400); a second live session whose vnc_password shares the first 8 characters is 409 vnc_password_conflict', async () => {
    expectError(await get('/devtools/browser?enable_vnc=true', { method: 'POST' }), 400, 'bad_request');
    expectError(await get('/devtools/browser?enable_vnc=true&vnc_password=short', { method: 'POST' }), 400, 'bad_request');
    expectRefused(await ws('session=vnc-nopass&enable_vnc=true'), 400, 'bad_request');

    const a = await get('/devtools/browser?session=vnc-a&enable_vnc=true&vnc_password=samepass-one', { method: 'POST' });
    expect(a.status).toBe(200);
    leaks.note(d.stateDir);
    expect((await get('/session/vnc-a')).body.transports.vnc).toBe(false); // --vnc-port 0: no listener
    expectError(await get('/devtools/browser?session=vnc-b&enable_vnc=true&vnc_password=samepass-two', { method: 'POST' }), 409, 'vnc_password_conflict');
    expectRefused(await ws('session=vnc-c&enable_vnc=true&vnc_password=samepass-three'), 409, 'vnc_password_conflict');
    expect((await get('/session/vnc-b')).status).toBe(404);

    // Resuming never re-checks creation parameters: re-sending its own password is fine.
    const resume = await ws('session=vnc-a&enable_vnc=true&vnc_password=samepass-one&auto_close=false');
    expect(resume.kind).toBe('open');
    const closedWs = new Promise((r) => (resume as { ws: WebSocket }).ws.once('close', r));
    expect((await get('/devtools/browser/vnc-a', { method: 'DELETE' })).status).toBe(200);
    await closedWs;

    // Once vnc-a has stopped its password prefix is free again.
    const b = await get('/devtools/browser?session=vnc-b&enable_vnc=true&vnc_password=samepass-two', { method: 'POST' });
    expect(b.status).toBe(200);
    leaks.note(d.stateDir);
    expect((await get('/devtools/browser/vnc-b', { method: 'DELETE' })).status).toBe(200);
  });

  it('after all of that the existing session still works', async () => {
    await page.click('#btn');
    await page.type('#text', 'still here');
    expect(await page.$eval('#out', (e) => e.textContent)).toBe('clicked 1');
    expect(await page.$eval('#text', (e) => (e as HTMLInputElement).value)).toBe('still here');
    expect((await get('/session/keep')).body).toMatchObject({ state: 'ready', attachment: 'agent' });
    const live = (await get('/sessions')).body.sessions.filter((s: { state: string }) => s.state === 'ready');
    expect(live.map((s: { session_id: string }) => s.session_id)).toEqual(['keep']);
  });
});
