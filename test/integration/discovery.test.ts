import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import puppeteer, { type Browser } from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { connect } from 'node:net';
import WebSocket from 'ws';
import { api, cdpCall, rawRequest, tryWs, waitFor } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';
import { LiveSocket } from '../helpers/live-socket.js';

/**
 * API.md 3.3: /json/version carries every field Chrome's own does, with Chromium's values.
 * API.md 3.1 debug_port: a session's own port speaks Chrome's discovery for that session only.
 */
let d: RunningDaemon;
let real: Browser;
const leaks = new LeakTracker();
const FIELDS = ['Browser', 'File-Path-Style', 'Protocol-Version', 'User-Agent', 'V8-Version', 'WebKit-Version', 'webSocketDebuggerUrl'];

beforeAll(async () => {
  [d, real] = await Promise.all([
    startDaemon(),
    puppeteer.launch({ executablePath: '/usr/lib/chromium/chromium', headless: true, args: ['--no-sandbox', '--remote-debugging-port=0'] }),
  ]);
});

afterAll(async () => {
  await real?.close();
  await d?.cleanup();
  expect(leaks.leftovers()).toEqual([]);
});

/** What a real Chromium of the same binary answers on its own DevTools port. */
async function chromesOwn(): Promise<Record<string, string>> {
  const port = new URL(real.wsEndpoint()).port;
  return (await fetch(`http://127.0.0.1:${port}/json/version`)).json() as Promise<Record<string, string>>;
}

describe('/json/version', () => {
  it('has every field of Chrome\'s before any session ran', async () => {
    const r = await api(d.url, '/json/version');
    expect(r.status).toBe(200);
    expect(Object.keys(r.body).sort()).toEqual([...FIELDS].sort());
    expect(r.body.Browser).toMatch(/^Chrome\/\d+\.\d+\.\d+\.\d+$/);
    expect(r.body['WebKit-Version']).toMatch(/^537\.36 \(@/);
  });

  it('carries Chromium\'s own values once a session ran', async () => {
    const created = await api(d.url, '/devtools/browser', { method: 'POST' });
    expect(created.status).toBe(200);
    try {
      const chrome = await chromesOwn();
      const r = await api(d.url, '/json/version');
      expect(Object.keys(r.body).sort()).toEqual(Object.keys(chrome).sort());
      for (const k of ['Browser', 'Protocol-Version', 'V8-Version', 'WebKit-Version']) expect(r.body[k], k).toBe(chrome[k]);
      // Headless says HeadlessChrome; the session's browser is headful.
      expect(r.body['User-Agent']).toBe(chrome['User-Agent']!.replace('HeadlessChrome', 'Chrome'));
      expect(r.body.webSocketDebuggerUrl).toBe(`ws://127.0.0.1:${d.port}/`);
    } finally {
      await api(d.url, `/devtools/browser/${created.body.sessionId}`, { method: 'DELETE' });
    }
  });
});

/** Whether anything accepts TCP connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => (c.destroy(), resolve(true)));
    c.once('error', () => resolve(false));
  });
}

describe('a session\'s debug port', () => {
  it('lists only its session\'s pages (chrome://inspect style), opens tabs with PUT /json/new, and points every URL at itself', async () => {
    const a = await api(d.url, '/devtools/browser?debug_port=true', { method: 'POST' });
    const b = await api(d.url, '/devtools/browser', { method: 'POST' });
    try {
      const info = (await api(d.url, `/session/${a.body.sessionId}`)).body;
      const port: number = info.debug_port;
      expect(port).toBeGreaterThan(0);
      expect(port).not.toBe(d.port);
      expect((await api(d.url, `/session/${b.body.sessionId}`)).body.debug_port).toBeNull();
      const base = `http://127.0.0.1:${port}`;

      const version = await api(base, '/json/version');
      expect(Object.keys(version.body).sort()).toEqual([...FIELDS].sort());
      expect(version.body.webSocketDebuggerUrl).toBe(`ws://127.0.0.1:${port}/devtools/browser/${a.body.sessionId}`);

      const list = (await api(base, '/json/list')).body;
      const mainList = (await api(d.url, `/json/list?session=${a.body.sessionId}`)).body;
      expect(list.map((t: any) => t.id).sort()).toEqual(mainList.map((t: any) => t.id).sort());
      const otherIds = (await api(d.url, `/json/list?session=${b.body.sessionId}`)).body.map((t: any) => t.id);
      for (const t of list) {
        expect(otherIds).not.toContain(t.id);
        expect(t.webSocketDebuggerUrl).toBe(`ws://127.0.0.1:${port}/devtools/page/${t.id}`);
        expect(t.devtoolsFrontendUrl).toBe(`devtools://devtools/bundled/inspector.html?ws=127.0.0.1:${port}/devtools/page/${t.id}`);
      }
      expect((await api(base, '/json')).body.length).toBe(list.length);

      // Chrome's form: the URL to open is the query, percent-encoded or not.
      const opened = await api(base, `/json/new?${encodeURIComponent('data:text/html,<title>opened</title>')}`, { method: 'PUT' });
      expect(opened.status).toBe(200);
      await waitFor('the new tab is listed', async () => (await api(base, '/json/list')).body.some((t: any) => t.id === opened.body.id));

      // A page of the session, over its page socket on this port.
      const ws = new WebSocket(opened.body.webSocketDebuggerUrl);
      await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
      let id = 0;
      const title = () =>
        new Promise<string>((r) => {
          const n = ++id;
          const on = (m: WebSocket.RawData) => {
            const msg = JSON.parse(String(m));
            if (msg.id === n) (ws.off('message', on), r(msg.result?.result?.value));
          };
          ws.on('message', on);
          ws.send(JSON.stringify({ id: n, method: 'Runtime.evaluate', params: { expression: 'document.title', returnByValue: true } }));
        });
      await waitFor('the new tab loaded', async () => (await title()) === 'opened');
      ws.close();
      await waitFor('detached', async () => (await api(d.url, `/session/${a.body.sessionId}`)).body.attachment === 'none');

      // While a human holds the session, the port opens no tab (it would bypass the lease).
      const human = await LiveSocket.open(d.url, a.body.sessionId);
      try {
        await waitFor('the human holds it', async () => (await api(d.url, `/session/${a.body.sessionId}`)).body.attachment === 'human');
        const refused = await api(base, `/json/new?about:blank`, { method: 'PUT' });
        expect(refused.status).toBe(409);
        expect(refused.body.error).toMatchObject({ code: 'session_attached', attachment: 'human' });
      } finally {
        human.ws.close();
      }
      await waitFor('the human left', async () => (await api(d.url, `/session/${a.body.sessionId}`)).body.attachment === 'none');

      // Another session's page is not reachable through this port.
      const foreign = await tryWs(`ws://127.0.0.1:${port}/devtools/page/${otherIds[0]}`);
      expect(foreign.kind === 'refused' && foreign.status).toBe(404);
      const foreignBrowser = await tryWs(`ws://127.0.0.1:${port}/devtools/browser/${b.body.sessionId}`);
      expect(foreignBrowser.kind === 'refused' && foreignBrowser.status).toBe(404);
    } finally {
      await api(d.url, `/devtools/browser/${a.body.sessionId}`, { method: 'DELETE' });
      await api(d.url, `/devtools/browser/${b.body.sessionId}`, { method: 'DELETE' });
    }
  });

  it('web pages cannot use it: foreign Origin and Host are refused, GET /json/new from a page is refused', async () => {
    const a = await api(d.url, '/devtools/browser?debug_port=true', { method: 'POST' });
    try {
      const port: number = (await api(d.url, `/session/${a.body.sessionId}`)).body.debug_port;
      const evil = await tryWs(`ws://127.0.0.1:${port}/devtools/browser/${a.body.sessionId}`, { origin: 'http://evil.example' });
      expect(evil.kind === 'refused' && evil.status).toBe(403);
      expect((await rawRequest(port, 'GET', '/json/list', { host: 'evil.example' })).status).toBe(421);
      expect((await rawRequest(port, 'PUT', '/json/new?about:blank', { origin: 'http://evil.example' })).status).toBe(403);
      const before = (await api(`http://127.0.0.1:${port}`, '/json/list')).body.length;
      expect((await rawRequest(port, 'GET', '/json/new?about:blank', { 'sec-fetch-site': 'cross-site' })).status).toBe(403);
      expect((await api(`http://127.0.0.1:${port}`, '/json/list')).body.length).toBe(before);
      expect((await api(d.url, `/session/${a.body.sessionId}`)).body.attachment).toBe('none');
    } finally {
      await api(d.url, `/devtools/browser/${a.body.sessionId}`, { method: 'DELETE' });
    }
  });

  it('POST /session/ID/port opens one for a running session (3.1 socket), and it closes when the session ends', async () => {
    const agent = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=dp&auto_close=false`, defaultViewport: null });
    await agent.disconnect();
    expect((await api(d.url, '/session/dp')).body.debug_port).toBeNull();
    const opened = await api(d.url, '/session/dp/port', { method: 'POST' });
    expect(opened.status).toBe(200);
    const port: number = opened.body.debug_port;
    expect((await api(d.url, '/session/dp')).body.debug_port).toBe(port);
    expect((await api(d.url, '/session/dp/port', { method: 'POST' })).body.debug_port).toBe(port);
    expect(await listening(port)).toBe(true);
    await api(d.url, '/session/dp/stop', { method: 'POST' });
    expect((await api(d.url, '/session/dp')).body.debug_port).toBeNull();
    await waitFor('the port is closed', async () => !(await listening(port)));
    expect((await api(d.url, '/session/nope/port', { method: 'POST' })).status).toBe(404);
  });

  it('a refused client changes nothing (auto_close), and links minted on a debug port point at the main port (security review)', async () => {
    const agent = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=dpsec&auto_close=false&debug_port=true`, defaultViewport: null });
    const port: number = await waitFor('a debug port', async () => (await api(d.url, '/session/dpsec')).body.debug_port);
    try {
      const refused = await tryWs(`ws://127.0.0.1:${port}/devtools/browser/dpsec?auto_close=true`);
      if (refused.kind === 'open') refused.ws.close();
      expect(refused.kind === 'refused' && refused.status).toBe(409);
      expect((await api(d.url, '/session/dpsec')).body.auto_close).toBe(false);
    } finally {
      await agent.disconnect();
    }
    await waitFor('detached', async () => (await api(d.url, '/session/dpsec')).body.attachment === 'none');
    const ws = new WebSocket(`ws://127.0.0.1:${port}/devtools/browser/dpsec`);
    await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
    try {
      const { liveUrl: url } = await cdpCall(ws, 1, 'Handoff.liveUrl');
      expect(url.startsWith(`${d.url}/live/`)).toBe(true);
      expect((await fetch(url)).status).toBe(200);
    } finally {
      ws.close();
      await api(d.url, '/devtools/browser/dpsec', { method: 'DELETE' });
    }
  });

  it('debug_port=true on the 3.1 socket gives the session a port at creation', async () => {
    const agent = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=dp31&debug_port=true`, defaultViewport: null });
    try {
      const port = await waitFor('a debug port', async () => (await api(d.url, '/session/dp31')).body.debug_port);
      expect((await api(`http://127.0.0.1:${port}`, '/json/list')).body.length).toBeGreaterThan(0);
    } finally {
      await agent.disconnect();
    }
    await waitFor('auto_close stopped it', async () => (await api(d.url, '/session/dp31')).body.state === 'stopped');
  });
});

describe('a debug port on a daemon with an API key', () => {
  const KEY = 'debug-port-test-key-0123456789';
  let keyed: RunningDaemon;
  beforeAll(async () => {
    keyed = await startDaemon({ args: ['--api-key', KEY] });
  });
  afterAll(async () => {
    await keyed?.cleanup();
  });

  it('is opened only with the key and takes the same key: another local user without it gets 401 (API.md 3.1)', async () => {
    const auth = { authorization: `Bearer ${KEY}` };
    const created = await api(keyed.url, '/devtools/browser', { method: 'POST', headers: auth });
    expect(created.status).toBe(200);
    const id = created.body.sessionId;
    expect((await api(keyed.url, `/session/${id}/port`, { method: 'POST' })).status).toBe(401);
    expect((await api(keyed.url, `/session/${id}`, { headers: auth })).body.debug_port).toBeNull();
    const port: number = (await api(keyed.url, `/session/${id}/port`, { method: 'POST', headers: auth })).body.debug_port;
    expect(port).toBeGreaterThan(0);
    const debugUrl = `http://127.0.0.1:${port}`;
    for (const path of ['/json/version', '/json/list']) {
      const refused = await api(debugUrl, path);
      expect(refused.status).toBe(401);
      expect(refused.body.error.code).toBe('unauthorized');
    }
    expect((await api(debugUrl, `/json/new?about:blank`, { method: 'PUT' })).status).toBe(401);
    const ws = await tryWs(`ws://127.0.0.1:${port}/devtools/browser/${id}`);
    if (ws.kind === 'open') ws.ws.close();
    expect(ws.kind === 'refused' && ws.status).toBe(401);
    const list = await api(debugUrl, '/json/list', { headers: auth });
    expect(list.status).toBe(200);
    expect(list.body.length).toBeGreaterThan(0);
    expect((await api(debugUrl, `/json/version?api_key=${KEY}`)).status).toBe(200);
    const rows = (await api(keyed.url, `/audit?type=auth_failed`, { headers: auth })).body;
    expect(JSON.stringify(rows)).toContain(`"debug_port":${port}`);
    // The main port still wants the key for the same session.
    expect((await api(keyed.url, `/json/list?session=${id}`)).status).toBe(401);
    await api(keyed.url, `/devtools/browser/${id}`, { method: 'DELETE', headers: auth });
    await waitFor('the port is closed', async () => !(await listening(port)));
  });
});
