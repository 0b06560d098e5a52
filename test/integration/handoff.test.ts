import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import puppeteer, { type Browser, type CDPSession } from 'puppeteer-core';
import WebSocket from 'ws';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';

/** API.md 7: an agent asks a human for help over CDP or REST, and hears how it ended. */
describe('structured handoff', () => {
  let daemon: RunningDaemon;
  let hook: Server;
  const hooks: any[] = [];
  let browser: Browser;
  let cdp: CDPSession;

  beforeAll(async () => {
    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        hooks.push(JSON.parse(body));
        res.end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    daemon = await startDaemon({ args: ['--webhook', `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`] });
    browser = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=ho&auto_close=false`, defaultViewport: null });
    cdp = await browser.target().createCDPSession();
  });

  afterAll(async () => {
    await browser?.disconnect();
    await daemon?.cleanup();
    hook?.close();
  });

  it('Handoff.request gives control to a human until the REST complete, then tells the agent', async () => {
    const completed = new Promise<any>((r) => cdp.once('Handoff.completed' as any, r));
    const req: any = await cdp.send('Handoff.request' as any, { reason: 'enter the MFA code' });
    expect(req.handoffId).toMatch(/^[0-9a-f-]{36}$/);
    expect(req.liveUrl).toMatch(new RegExp(`^${daemon.url}/live/[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$`));
    expect(Date.parse(req.expiresAt)).toBeGreaterThan(Date.now());

    const state: any = await cdp.send('Handoff.getState' as any);
    expect(state).toMatchObject({ active: true, handoffId: req.handoffId, reason: 'enter the MFA code' });
    const session = (await api(daemon.url, '/session/ho')).body;
    expect(session.handoff).toMatchObject({ id: req.handoffId, reason: 'enter the MFA code' });
    // The agent is still connected and still drives the page meanwhile.
    const page = (await browser.pages())[0]!;
    expect(await page.evaluate(() => 6 * 7)).toBe(42);
    await waitFor('webhook for the request', () => hooks.find((h) => h.type === 'handoff_requested'));
    expect(hooks.find((h) => h.type === 'handoff_requested')).toMatchObject({ session_id: 'ho', reason: 'enter the MFA code', live_url: req.liveUrl });

    const done = await api(daemon.url, '/session/ho/handoff/complete', { method: 'POST', body: JSON.stringify({ outcome: 'done' }) });
    expect(done.status).toBe(200);
    const event = await completed;
    expect(event).toMatchObject({ handoffId: req.handoffId, outcome: 'done', by: 'rest', changes: { urls: [], downloads: [] } });
    expect(typeof event.durationMs).toBe('number');
    expect(await cdp.send('Handoff.getState' as any)).toMatchObject({ active: false });
    await waitFor('webhook for the completion', () => hooks.find((h) => h.type === 'handoff_completed'));

    const audit = (await api(daemon.url, '/audit?session_id=ho')).body.events.map((e: any) => e.type);
    expect(audit).toContain('handoff_requested');
    expect(audit).toContain('handoff_completed');
  });

  it('cancel, timeout and unknown methods answer like CDP', async () => {
    await cdp.send('Handoff.request' as any, { reason: 'approve the payment' });
    const cancelled = new Promise<any>((r) => cdp.once('Handoff.completed' as any, r));
    await cdp.send('Handoff.cancel' as any);
    expect((await cancelled).outcome).toBe('cancelled');

    const timedOut = new Promise<any>((r) => cdp.once('Handoff.completed' as any, r));
    await cdp.send('Handoff.request' as any, { reason: 'quick one', timeoutMs: 1000 });
    expect((await timedOut).outcome).toBe('timeout');

    await expect(cdp.send('Handoff.nonsense' as any)).rejects.toThrow(/wasn't found/);
    await expect(cdp.send('Handoff.request' as any, {})).rejects.toThrow(/reason/);
    // A timer past 2^31 ms would fire at once: refused like REST's timeout_ms.
    await expect(cdp.send('Handoff.request' as any, { reason: 'forever', timeoutMs: 2 ** 31 })).rejects.toThrow(/timeoutMs/);
    expect((await api(daemon.url, '/session/ho')).body.handoff).toBeNull();
    const live: any = await cdp.send('Handoff.liveUrl' as any);
    expect(live.liveUrl).toContain('/live/');
  });

  it('a handoff still open when its session stops ends with it, before session_stopped; its timer never fires after', async () => {
    expect((await api(daemon.url, '/devtools/browser?session=ho-end', { method: 'POST' })).status).toBe(200);
    expect((await api(daemon.url, '/session/ho-end/handoff', { method: 'POST', body: JSON.stringify({ reason: 'log in', timeout_ms: 1500 }) })).status).toBe(200);
    expect((await api(daemon.url, '/session/ho-end/stop', { method: 'POST' })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 2500)); // past the handoff's own timeout
    const types = (await api(daemon.url, '/audit?session_id=ho-end&limit=100')).body.events.map((e: any) => `${e.type}${e.detail?.outcome ? ':' + e.detail.outcome : ''}`);
    const stopped = types.indexOf('session_stopped');
    expect(stopped).toBeGreaterThan(-1);
    expect(types.filter((t: string) => t.startsWith('handoff_completed'))).toEqual(['handoff_completed:cancelled']);
    expect(types.indexOf('handoff_completed:cancelled')).toBeLessThan(stopped);
    await waitFor('the webhook', () => hooks.some((h) => h.session_id === 'ho-end' && h.type === 'handoff_completed'));
    expect(hooks.filter((h) => h.session_id === 'ho-end' && h.type === 'handoff_completed').map((h) => h.outcome)).toEqual(['cancelled']);
  });

  it('REST: POST /session/ID/handoff, DELETE cancels, bad bodies are 400', async () => {
    const started = await api(daemon.url, '/session/ho/handoff', { method: 'POST', body: JSON.stringify({ reason: 'solve the captcha', timeout_ms: 60000 }) });
    expect(started.status).toBe(200);
    expect(started.body).toMatchObject({ handoffId: expect.any(String), liveUrl: expect.stringContaining('/live/'), expiresAt: expect.any(String) });
    const cancelled = await api(daemon.url, '/session/ho/handoff', { method: 'DELETE' });
    expect(cancelled.body).toMatchObject({ outcome: 'cancelled' });
    expect((await api(daemon.url, '/session/ho/handoff', { method: 'DELETE' })).status).toBe(404);
    for (const body of ['not json', '[]', '{}', JSON.stringify({ reason: 'x', timeout_ms: -5 })]) {
      const r = await api(daemon.url, '/session/ho/handoff', { method: 'POST', body });
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('bad_request');
    }
  });

  it('a control link opened by a viewer while the agent is connected starts a handoff that ends when the viewer leaves', async () => {
    const { url } = (await api(daemon.url, '/session/ho/live')).body;
    const token = new URL(url).pathname.split('/')[2];
    const viewer = new WebSocket(`${daemon.wsUrl}/live/${token}/screencast`);
    await new Promise((r, j) => (viewer.once('open', r), viewer.once('error', j)));
    await waitFor('attachment human', async () => (await api(daemon.url, '/session/ho')).body.attachment === 'human');
    const s = (await api(daemon.url, '/session/ho')).body;
    expect(s.handoff).toMatchObject({ reason: 'live link opened' });
    expect(s.viewers.screencast).toBe(1);
    const completed = new Promise<any>((r) => cdp.once('Handoff.completed' as any, r));
    viewer.close();
    expect((await completed).outcome).toBe('done');
    await waitFor('attachment back to agent', async () => (await api(daemon.url, '/session/ho')).body.attachment === 'agent');
  });
});
