import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import puppeteer, { type Browser } from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';

/** API.md 3.3: /json/version carries every field Chrome's own does, with Chromium's values. */
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
