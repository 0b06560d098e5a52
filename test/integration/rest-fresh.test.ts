import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, tryWs } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';

/**
 * GET /sessions and /session/ID reuse each session's JSON until it changes (Session.infoJson):
 * a change is in the very next answer. Each step reads first (so a cached answer exists), then
 * changes the session, then reads once.
 */
let d: RunningDaemon;
const leaks = new LeakTracker();
const ID = 'fresh';

beforeAll(async () => {
  d = await startDaemon();
});

afterAll(async () => {
  await d?.cleanup();
  expect(leaks.leftovers()).toEqual([]);
});

async function listed(): Promise<any> {
  const r = await api(d.url, '/sessions');
  expect(r.status).toBe(200);
  const s = r.body.sessions.find((x: { session_id: string }) => x.session_id === ID);
  // Both answers are the same projection.
  expect((await api(d.url, `/session/${ID}`)).body).toEqual(s);
  return s;
}

describe('REST answers after a change', () => {
  it('attach, handoff, detach and stop show in the very next GET /sessions and /session/ID', async () => {
    expect((await api(d.url, `/devtools/browser?session=${ID}`, { method: 'POST' })).status).toBe(200);
    leaks.note(d.stateDir);
    expect((await api(d.url, `/session/${ID}/wait?state=ready&timeout_ms=60000`)).status).toBe(200);
    const idle = await listed();
    expect(idle).toMatchObject({ state: 'ready', attachment: 'none', attached_by: '', handoff: null });
    expect(idle.expires_at).not.toBeNull();

    // Attach: the upgrade has completed, so the next read shows the agent.
    await listed();
    const o = await tryWs(`${d.wsUrl}/devtools/browser/${ID}`);
    expect(o.kind).toBe('open');
    const ws = (o as { ws: WebSocket }).ws;
    const attached = await listed();
    expect(attached).toMatchObject({ attachment: 'agent', attached_by: 'agent', expires_at: null });

    // A handoff requested and cancelled over REST.
    const h = await api(d.url, `/session/${ID}/handoff`, { method: 'POST', body: JSON.stringify({ reason: 'captcha' }) });
    expect(h.status).toBe(200);
    expect((await listed()).handoff).toMatchObject({ id: h.body.handoffId, reason: 'captcha' });
    expect((await api(d.url, `/session/${ID}/handoff`, { method: 'DELETE' })).status).toBe(200);
    expect((await listed()).handoff).toBeNull();

    // Detach: once the daemon says none (long poll), so does the next plain read.
    await listed();
    ws.close();
    expect((await api(d.url, `/session/${ID}/wait?attachment=none&timeout_ms=10000`)).status).toBe(200);
    expect(await listed()).toMatchObject({ attachment: 'none', attached_by: '' });

    // Stop: answered, then listed as stopped.
    await listed();
    expect((await api(d.url, `/session/${ID}/stop`, { method: 'POST' })).body).toEqual({ stopped: true });
    expect(await listed()).toMatchObject({ state: 'stopped', attachment: 'none', expires_at: null });
  });
});
