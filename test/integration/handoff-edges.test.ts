import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import puppeteer, { type Browser, type CDPSession } from 'puppeteer-core';
import WebSocket from 'ws';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';

/** Issue 11.6: a reloading human keeps the handoff; a second request renews it; a bad link says so. */
describe('handoff edges', () => {
  let daemon: RunningDaemon;
  let browser: Browser;
  let cdp: CDPSession;
  const completions: any[] = [];

  beforeAll(async () => {
    daemon = await startDaemon({ args: ['--handoff-grace', '4'] });
    browser = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=edges&auto_close=false`, defaultViewport: null });
    cdp = await browser.target().createCDPSession();
    cdp.on('Handoff.completed' as any, (e: any) => completions.push(e));
  });

  afterAll(async () => {
    await browser?.disconnect();
    await daemon?.cleanup();
  });

  const session = async () => (await api(daemon.url, '/session/edges')).body;
  /** A screencast viewer socket on `url`; resolves once it is open, with the JSON it receives. */
  async function viewer(url: string) {
    const token = new URL(url).pathname.split('/')[2];
    const ws = new WebSocket(`${daemon.wsUrl}/live/${token}/screencast`);
    const texts: any[] = [];
    ws.on('message', (d, binary) => !binary && texts.push(JSON.parse(String(d))));
    await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
    return { ws, texts };
  }

  it('a viewer that reloads within the grace period comes back to the same handoff; it ends as done only when nobody comes back', async () => {
    const { url } = (await api(daemon.url, '/session/edges/live')).body;
    const first = await viewer(url);
    await waitFor('attachment human', async () => (await session()).attachment === 'human');
    const { id } = (await session()).handoff;
    first.ws.close(1001); // a reload: the page goes away...
    await waitFor('nobody in control', async () => (await session()).attachment === 'agent');
    const again = await viewer(url); // ...and the same link opens again
    await waitFor('control again', () => again.texts.find((m) => m.type === 'state' && m.canControl));
    expect((await session()).handoff).toMatchObject({ id, reason: 'live link opened' });
    await new Promise((r) => setTimeout(r, 5000)); // past the grace period: still the same handoff
    expect((await session()).handoff?.id).toBe(id);
    const completed = async () => (await api(daemon.url, '/audit?session_id=edges&type=handoff_completed')).body.events.filter((e: any) => e.detail.handoff_id === id);
    expect(await completed()).toEqual([]);
    again.ws.close();
    await waitFor('the handoff ended after the grace period', async () => (await session()).handoff === null, 30_000);
    expect((await completed()).map((e: any) => e.detail.outcome)).toEqual(['done']);
  });

  it('a second Handoff.request while one is pending keeps its id and shows the new reason to the human', async () => {
    const a: any = await cdp.send('Handoff.request' as any, { reason: 'log in' });
    const human = await viewer(a.liveUrl);
    await waitFor('the first reason shown', () => human.texts.find((m) => m.type === 'state' && m.handoff?.reason === 'log in'));
    const b: any = await cdp.send('Handoff.request' as any, { reason: 'now enter the MFA code' });
    expect(b.handoffId).toBe(a.handoffId);
    await waitFor('the new reason shown', () => human.texts.find((m) => m.type === 'state' && m.handoff?.reason === 'now enter the MFA code'));
    expect((await session()).handoff).toMatchObject({ id: a.handoffId, reason: 'now enter the MFA code' });
    // REST answers the same way.
    const c = await api(daemon.url, '/session/edges/handoff', { method: 'POST', body: JSON.stringify({ reason: 'and accept the terms' }) });
    expect(c.status).toBe(200);
    expect(c.body.handoffId).toBe(a.handoffId);
    const rows = (await api(daemon.url, '/audit?session_id=edges&type=handoff_requested')).body.events.filter((e: any) => e.detail.handoff_id === a.handoffId);
    expect(rows.map((e: any) => e.detail.reason)).toEqual(['log in', 'now enter the MFA code', 'and accept the terms']);
    human.ws.send(JSON.stringify({ type: 'handoff', outcome: 'done' }));
    await waitFor('done', () => completions.find((e) => e.handoffId === a.handoffId));
    human.ws.close();
  });

  it('a made-up live link says it is not valid, not that the session ended', async () => {
    const r = await api(daemon.url, '/live/made-up.token/info');
    expect(r.status).toBe(404);
    expect(r.body.error).toMatchObject({ code: 'not_found', message: expect.stringMatching(/not valid/) });
  });
});
