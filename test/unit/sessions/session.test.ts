import { afterEach, describe, expect, it } from 'vitest';
import { deferred, FakeParts, makeSession, type Harness } from './fakes.js';
import { HandoffError } from '../../../src/util/errors.js';

let h: Harness | undefined;
afterEach(() => h?.cleanup());

const types = (x: Harness) => x.audit.map((e) => e.type);
async function until(fn: () => boolean): Promise<void> {
  while (!fn()) await new Promise((r) => setTimeout(r, 2));
}

describe('Session with fake parts', () => {
  it('start: display, then the browser; ready; every process journaled', async () => {
    h = makeSession();
    expect(h.session.state).toBe('starting');
    await h.session.ready;
    expect(h.session.state).toBe('ready');
    expect(h.parts.log).toEqual(['display:start', 'browser:start']);
    expect([...h.journal.owned.values()]).toEqual(['xvfb:101', 'chromium:102']);
    expect(h.session.info('127.0.0.1')).toMatchObject({ state: 'ready', attachment: 'none', handoff: null });
    expect(h.session.targets().map((t) => t.targetId)).toEqual(['T1']);
    expect(h.session.findTarget('T1')).toBe(true);
    expect(h.session.findTarget('nope')).toBe(false);
    expect(types(h)).toEqual(['session_created']);
  });

  it("stop: closes attached sockets with 4000, starts the browser's exit, then the parts in reverse (live views first), releases the journal; idempotent", async () => {
    h = makeSession({ params: { debug: true } });
    await h.session.ready;
    const closed: [number, string][] = [];
    h.session.attach({ close: (code, reason) => closed.push([code, reason]) });
    h.session.openScreencast({ close() {} } as never, { sourceIp: '127.0.0.1', link: 'control' });
    const first = h.session.stop('session stopped');
    expect(h.session.stop('again')).toBe(first);
    await first;
    expect(h.session.state).toBe('stopped');
    expect(closed).toEqual([[4000, 'session stopped']]);
    expect(h.parts.log.filter((l) => l.includes('close'))).toEqual(['browser:close', 'screencast:close:4000', 'recorder:close', 'display:close']);
    expect(h.journal.released.sort()).toEqual([...h.journal.owned.keys()].sort());
    expect(types(h)).toEqual(['session_created', 'session_stopped']);
    // Ended: nothing attaches any more, and the state stays.
    const late: number[] = [];
    h.session.attach({ close: (code) => late.push(code) });
    expect(late).toEqual([4000]);
    expect(() => h!.session.requestHandoff({ reason: 'x', holdAgentInput: true }, 'rest')).toThrow(HandoffError);
  });

  it('crash: the browser exiting on its own ends the session as crashed', async () => {
    h = makeSession();
    await h.session.ready;
    const ended = new Promise<string>((r) => h!.session.once('ended', r));
    h.parts.browserExit.resolve(1);
    expect(await ended).toBe('browser crashed');
    await h.session.stop(); // the same ending
    expect(h.session.state).toBe('crashed');
    expect(h.parts.log.filter((l) => l.includes('close'))).toEqual(['browser:close', 'display:close']);
    expect(types(h)).toEqual(['session_created', 'session_crashed']);
  });

  it('the last page closing is a stop, not a crash', async () => {
    h = makeSession();
    await h.session.ready;
    h.parts.pages = [];
    h.parts.browserExit.resolve(0);
    await new Promise<string>((r) => h!.session.once('ended', r));
    expect(h.session.state).toBe('stopped');
    expect(h.session.endReason).toBe('last page closed');
  });

  it('half-started unwind: the browser fails, what started (display, recorder) closes in reverse; ready rejects with browser_failed', async () => {
    const parts = new FakeParts();
    parts.failBrowser = new Error('no DevTools');
    h = makeSession({ parts, params: { debug: true } });
    const err = await h.session.ready.catch((e) => e);
    expect(err).toBeInstanceOf(HandoffError);
    expect(err.code).toBe('browser_failed');
    expect(err.detail).toContain('no DevTools');
    await h.session.stop(); // the ending already under way
    expect(h.session.state).toBe('crashed');
    expect(parts.log.filter((l) => l.includes('close'))).toEqual(['recorder:close', 'display:close']);
    expect(h.journal.released.sort()).toEqual([...h.journal.owned.keys()].sort());
    expect(types(h)).toEqual(['session_created', 'session_crashed']);
  });

  it('half-started unwind: the display fails, nothing else starts', async () => {
    const parts = new FakeParts();
    parts.failDisplay = new Error('no X');
    h = makeSession({ parts });
    await expect(h.session.ready).rejects.toMatchObject({ code: 'browser_failed' });
    expect(parts.log).toEqual(['display:start']);
  });

  it('stopped while starting: a part that arrives late is closed, and stop() waits for it', async () => {
    const parts = new FakeParts();
    const gate = deferred();
    parts.browserGate = gate.promise;
    h = makeSession({ parts });
    await until(() => parts.log.includes('browser:start'));
    let stopped = false;
    const stop = h.session.stop('session stopped').then(() => (stopped = true));
    await until(() => parts.log.includes('display:close'));
    expect(stopped).toBe(false);
    gate.resolve();
    await stop;
    expect(parts.log.slice(-1)).toEqual(['browser:close']);
    expect(h.session.state).toBe('stopped');
    await expect(h.session.ready).rejects.toBeInstanceOf(HandoffError);
  });
});

describe('Session handoffs with fake parts', () => {
  it('a control link opened while an agent is attached starts a handoff; the session end cancels it', async () => {
    h = makeSession();
    await h.session.ready;
    const slot = h.lease.tryAttachAgent()!;
    slot.connected({ actor: 'agent', transport: 'cdp', sourceIp: '127.0.0.1' });
    const viewer = h.session.join({ transport: 'screencast', sourceIp: '127.0.0.1', link: 'control' });
    expect(viewer.canControl).toBe(true);
    expect(h.session.handoff).toMatchObject({ reason: 'live link opened' });
    expect(h.session.handoffState).toBe('active');
    expect(h.session.attachment).toBe('human');
    await h.session.stop();
    expect(h.session.handoff).toBeNull();
    const done = h.audit.filter((e) => e.type === 'handoff_completed');
    expect(done.map((e) => (e.detail as { outcome: string }).outcome)).toEqual(['cancelled']);
    // The attach rows come from the lease's one listener, with actor and transport.
    expect(h.audit.filter((e) => e.type === 'cloud_browser_agent_attach').map((e) => [e.actor, e.transport])).toEqual([
      ['agent', 'cdp'],
      ['human', 'screencast'],
    ]);
    expect(h.audit.filter((e) => e.type === 'cloud_browser_agent_detach').map((e) => [e.actor, e.transport])).toEqual([['human', 'screencast']]);
  });

  it('a link-started handoff survives its human leaving for the grace period and a comeback; it ends as done when nobody comes back', async () => {
    h = makeSession({ graceMs: 80 });
    await h.session.ready;
    h.lease.tryAttachAgent()!.connected({ actor: 'agent', transport: 'cdp', sourceIp: '127.0.0.1' });
    const first = h.session.join({ transport: 'screencast', sourceIp: '127.0.0.1', link: 'control' });
    const id = h.session.handoff!.id;
    first.leave();
    expect(h.parts.inputReleased).toBe(1);
    expect(h.session.handoffState).toBe('requested');
    await new Promise((r) => setTimeout(r, 40));
    const again = h.session.join({ transport: 'screencast', sourceIp: '127.0.0.1', link: 'control' });
    expect(again.canControl).toBe(true);
    await new Promise((r) => setTimeout(r, 120));
    expect(h.session.handoff?.id).toBe(id);
    const completed = new Promise((r) => h!.session.once('handoffCompleted', r));
    again.leave();
    expect(await completed).toMatchObject({ handoffId: id, outcome: 'done', by: 'screencast' });
    await h.session.stop();
  });

  it('a second request while one is pending keeps the id and shows the new reason', async () => {
    h = makeSession();
    await h.session.ready;
    const a = h.session.requestHandoff({ reason: 'log in', holdAgentInput: true }, 'rest', { liveUrl: 'http://x/live/1' });
    const b = h.session.requestHandoff({ reason: 'enter the MFA code', holdAgentInput: true }, 'cdp', { liveUrl: 'http://x/live/2' });
    expect(b.id).toBe(a.id);
    expect(h.session.handoff).toMatchObject({ id: a.id, reason: 'enter the MFA code' });
    expect(h.session.viewerState().handoff?.reason).toBe('enter the MFA code');
    expect(h.notified.map((n) => n.reason)).toEqual(['log in', 'enter the MFA code']);
    expect(h.session.completeHandoff('done', 'rest')).toBe(true);
    expect(h.session.completeHandoff('done', 'rest')).toBe(false);
    await h.session.stop();
  });
});
