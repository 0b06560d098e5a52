import { describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { CdpPipeMux, type AgentChannel } from '../../../src/cdp/pipe-mux.js';
import { NulSplitter, PipeMessage } from '../../../src/cdp/pipe-message.js';

/** Chromium's end of the pipe: what the mux wrote, and a way to write back as Chromium does. */
function fakePipe() {
  const toBrowser = new PassThrough();
  const fromBrowser = new PassThrough();
  const written: any[] = [];
  let buf = '';
  toBrowser.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\0')) !== -1) {
      written.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
  });
  const mux = new CdpPipeMux(toBrowser, fromBrowser);
  /** Writes `text` NUL-terminated, in chunks of `chunk` bytes when given. */
  const chromium = (text: string, chunk = 0) => {
    const b = Buffer.from(text + '\0');
    if (!chunk) return void fromBrowser.write(b);
    for (let i = 0; i < b.length; i += chunk) fromBrowser.write(b.subarray(i, i + chunk));
  };
  const tick = () => new Promise((r) => setImmediate(r));
  return { mux, written, chromium, tick, fromBrowser };
}

/** What Chromium writes for an answer on a flat session: id first, sessionId last. */
const answer = (id: number, result: object, sessionId?: string) => JSON.stringify({ id, result, ...(sessionId ? { sessionId } : {}) });
const event = (method: string, params: object, sessionId?: string) => JSON.stringify({ method, params, ...(sessionId ? { sessionId } : {}) });

async function agentOn(p: ReturnType<typeof fakePipe>, sessionId: string, targetId?: string): Promise<{ channel: AgentChannel; got: any[] }> {
  const opening = p.mux.openAgent(targetId);
  await p.tick();
  const cmd = p.written.at(-1);
  expect(cmd.method).toBe(targetId ? 'Target.attachToTarget' : 'Target.attachToBrowserTarget');
  if (targetId) expect(cmd.params).toEqual({ targetId, flatten: true });
  expect(cmd.sessionId).toBeUndefined();
  p.chromium(answer(cmd.id, { sessionId }));
  const channel = await opening;
  const got: any[] = [];
  channel.onMessage = (d) => got.push(JSON.parse(d.toString()));
  return { channel, got };
}

describe('PipeMessage', () => {
  const msg = (text: string, chunk = 0) => {
    const b = Buffer.from(text);
    const parts = chunk ? Array.from({ length: Math.ceil(b.length / chunk) }, (_, i) => b.subarray(i * chunk, (i + 1) * chunk)) : [b];
    return new PipeMessage(parts, b.length);
  };

  it('reads id and sessionId from the head and tail of a response, and method of an event', () => {
    const r = msg(answer(12, { data: 'x'.repeat(1000) }, 'AB12CD'));
    expect(r.route).toMatchObject({ id: 12, sessionId: 'AB12CD' });
    expect(r.route.sessionAt).toBe(r.length - ',"sessionId":"AB12CD"}'.length);
    expect(msg(event('Page.loadEventFired', { timestamp: 1 }, 'S1')).route).toMatchObject({ method: 'Page.loadEventFired', sessionId: 'S1' });
  });

  it('parses what is not that shape: root messages, a sessionId not last, a string that looks like one', () => {
    expect(msg(answer(3, { a: 1 })).route).toEqual({ id: 3, method: undefined, sessionId: undefined });
    expect(msg('{"sessionId":"S2","id":4,"result":{}}').route).toEqual({ id: 4, method: undefined, sessionId: 'S2' });
    // The tail looks like a session but is inside params: no top-level sessionId.
    expect(msg(event('X.y', { v: ',"sessionId":"EVIL"}' })).route.sessionId).toBeUndefined();
    expect(msg(event('X.y', { nested: { sessionId: 'CHILD' } })).route.sessionId).toBeUndefined();
  });

  it('swaps the id and drops the session in one copy, across chunk boundaries', () => {
    const text = answer(123456, { data: 'é'.repeat(300), n: [1, 2] }, 'S0');
    for (const chunk of [0, 1, 3, 7, 64]) {
      const m = msg(text, chunk);
      expect(JSON.parse(m.rewrite({ id: 7, dropSession: true }).toString())).toEqual({ id: 7, result: { data: 'é'.repeat(300), n: [1, 2] } });
      expect(JSON.parse(m.rewrite({ id: 7 }).toString())).toEqual({ id: 7, result: { data: 'é'.repeat(300), n: [1, 2] }, sessionId: 'S0' });
      expect(JSON.parse(m.rewrite({ dropSession: true }).toString())).toEqual({ id: 123456, result: { data: 'é'.repeat(300), n: [1, 2] } });
    }
    const ev = msg(event('A.b', { q: 1 }, 'S9'), 5);
    expect(JSON.parse(ev.rewrite({ dropSession: true }).toString())).toEqual({ method: 'A.b', params: { q: 1 } });
  });

  it('hands over a one-chunk message unchanged without copying it', () => {
    const b = Buffer.from(event('A.b', { q: 1 }, 'S9'));
    const m = new PipeMessage([b], b.length);
    expect(m.rewrite({})).toBe(b);
  });
});

describe('NulSplitter', () => {
  it('splits at each NUL across chunks and drops a message over the cap, keeping its head', () => {
    const got: string[] = [];
    const dropped: string[] = [];
    const s = new NulSplitter(20, (m) => got.push(m.bytes().toString()), (head) => dropped.push(head));
    s.push(Buffer.from('{"a":1}\0{"b"'));
    s.push(Buffer.from(':2}\0\0{"id":9,"result":"'));
    s.push(Buffer.from('far too long for the cap"}\0{"c":3}\0'));
    expect(got).toEqual(['{"a":1}', '{"b":2}', '{"c":3}']);
    expect(dropped).toEqual(['{"id":9,"result":"']);
  });
});

describe('CdpPipeMux', () => {
  it('the root session: commands get pipe-wide ids, answers resolve, root events go to the daemon only', async () => {
    const p = fakePipe();
    const events: unknown[] = [];
    p.mux.on('event', (method, params, sessionId) => events.push([method, params, sessionId]));
    const { got } = await agentOn(p, 'A');
    const v = p.mux.send('Browser.getVersion');
    await p.tick();
    const cmd = p.written.at(-1);
    expect(cmd).toEqual({ id: cmd.id, method: 'Browser.getVersion', params: {} });
    p.chromium(answer(cmd.id, { product: 'Chrome/1' }));
    expect(await v).toEqual({ product: 'Chrome/1' });
    p.chromium(event('Target.targetCreated', { targetInfo: { targetId: 'T' } }));
    await p.tick();
    expect(events).toEqual([['Target.targetCreated', { targetInfo: { targetId: 'T' } }, undefined]]);
    expect(got).toEqual([]);
  });

  it('an agent speaks on its own browser session: ids restored, its sessionId removed, two agents never mixed', async () => {
    const p = fakePipe();
    const a = await agentOn(p, 'SA');
    const b = await agentOn(p, 'SB');
    a.channel.send({ id: 1, method: 'Target.setDiscoverTargets', params: { discover: true } });
    b.channel.send({ id: 1, method: 'Target.getTargets' });
    await p.tick();
    const [ca, cb] = p.written.slice(-2);
    expect(ca).toMatchObject({ method: 'Target.setDiscoverTargets', params: { discover: true }, sessionId: 'SA' });
    expect(cb).toMatchObject({ method: 'Target.getTargets', sessionId: 'SB' });
    expect(ca.id).not.toBe(cb.id);
    p.chromium(answer(cb.id, { targetInfos: [] }, 'SB'));
    p.chromium(answer(ca.id, {}, 'SA'));
    p.chromium(event('Target.targetCreated', { targetInfo: { targetId: 'T' } }, 'SA'));
    await p.tick();
    expect(a.got).toEqual([{ id: 1, result: {} }, { method: 'Target.targetCreated', params: { targetInfo: { targetId: 'T' } } }]);
    expect(b.got).toEqual([{ id: 1, result: { targetInfos: [] } }]);
  });

  it('child sessions: owned through auto-attach events and attach answers, unknown ones refused, detach forgets', async () => {
    const p = fakePipe();
    const a = await agentOn(p, 'SA');
    const b = await agentOn(p, 'SB');
    p.chromium(event('Target.attachedToTarget', { sessionId: 'C1', targetInfo: { targetId: 'P1' }, waitingForDebugger: true }, 'SA'));
    p.chromium(event('Runtime.executionContextCreated', { context: { id: 1 } }, 'C1'), 3);
    await p.tick();
    expect(a.got).toEqual([
      { method: 'Target.attachedToTarget', params: { sessionId: 'C1', targetInfo: { targetId: 'P1' }, waitingForDebugger: true } },
      { method: 'Runtime.executionContextCreated', params: { context: { id: 1 } }, sessionId: 'C1' },
    ]);
    expect(b.got).toEqual([]);

    const before = p.written.length;
    a.channel.send({ id: 5, method: 'Runtime.runIfWaitingForDebugger', sessionId: 'C1' });
    b.channel.send({ id: 5, method: 'Runtime.evaluate', params: { expression: '1' }, sessionId: 'C1' });
    b.channel.send({ id: 6, method: 'Runtime.evaluate', params: { expression: '1' }, sessionId: 'SA' });
    await p.tick();
    expect(p.written.slice(before)).toHaveLength(1);
    expect(p.written.at(-1)).toMatchObject({ method: 'Runtime.runIfWaitingForDebugger', sessionId: 'C1' });
    const notFound = { code: -32001, message: 'Session with given id not found.' };
    expect(b.got).toEqual([
      { id: 5, error: notFound },
      { id: 6, error: notFound },
    ]);
    p.chromium(answer(p.written.at(-1).id, {}, 'C1'));
    await p.tick();
    expect(a.got.at(-1)).toEqual({ id: 5, result: {}, sessionId: 'C1' });

    // Its own Target.attachToTarget answer makes a session of its own.
    b.channel.send({ id: 7, method: 'Target.attachToTarget', params: { targetId: 'P1', flatten: true } });
    await p.tick();
    p.chromium(answer(p.written.at(-1).id, { sessionId: 'C2' }, 'SB'));
    await p.tick();
    expect(b.got.at(-1)).toEqual({ id: 7, result: { sessionId: 'C2' } });
    b.channel.send({ id: 8, method: 'Page.enable', sessionId: 'C2' });
    await p.tick();
    expect(p.written.at(-1)).toMatchObject({ method: 'Page.enable', sessionId: 'C2' });

    p.chromium(event('Target.detachedFromTarget', { sessionId: 'C1', targetId: 'P1' }, 'SA'));
    await p.tick();
    a.channel.send({ id: 9, method: 'Page.enable', sessionId: 'C1' });
    await p.tick();
    expect(a.got.at(-1)).toEqual({ id: 9, error: notFound });
  });

  it('bad commands are answered like Chromium would and never written', async () => {
    const p = fakePipe();
    const a = await agentOn(p, 'SA');
    const before = p.written.length;
    a.channel.send({ method: 'X.y' });
    a.channel.send({ id: 'x', method: 'X.y' });
    a.channel.send({ id: 2 });
    a.channel.send({ id: 3, method: 'X.y', params: [1] });
    a.channel.send({ id: 4, method: 'X.y', sessionId: 12 });
    await p.tick();
    expect(p.written.length).toBe(before);
    expect(a.got.map((m) => [m.id, m.error.code])).toEqual([
      [undefined, -32600],
      [undefined, -32600],
      [2, -32600],
      [3, -32602],
      [4, -32001],
    ]);
  });

  it('a page-level agent attaches to its target and loses it when the page goes', async () => {
    const p = fakePipe();
    const a = await agentOn(p, 'PS', 'TARGET1');
    let lost = 0;
    a.channel.onLost = () => lost++;
    a.channel.send({ id: 1, method: 'Page.navigate', params: { url: 'about:blank' } });
    await p.tick();
    expect(p.written.at(-1)).toMatchObject({ method: 'Page.navigate', sessionId: 'PS' });
    p.chromium(event('Target.detachedFromTarget', { sessionId: 'PS', targetId: 'TARGET1' }));
    await p.tick();
    expect(lost).toBe(1);
  });

  it('an agent that goes is detached, and nothing more reaches it; the pipe ending ends every agent', async () => {
    const p = fakePipe();
    const a = await agentOn(p, 'SA');
    const b = await agentOn(p, 'SB');
    a.channel.send({ id: 1, method: 'Runtime.evaluate' });
    await p.tick();
    const pendingId = p.written.at(-1).id;
    a.channel.close();
    await p.tick();
    expect(p.written.at(-1)).toMatchObject({ method: 'Target.detachFromTarget', params: { sessionId: 'SA' } });
    expect(p.written.at(-1).sessionId).toBeUndefined();
    p.chromium(answer(pendingId, {}, 'SA'));
    p.chromium(event('Page.x', {}, 'SA'));
    await p.tick();
    expect(a.got).toEqual([]);

    let lost = 0;
    b.channel.onLost = () => lost++;
    const waiting = p.mux.send('Browser.getVersion');
    p.fromBrowser.end();
    await p.mux.closed;
    expect(lost).toBe(1);
    await expect(waiting).rejects.toThrow(/gone/);
    await expect(p.mux.openAgent()).rejects.toThrow(/gone/);
  });

  it('stops reading the pipe while an agent is backed up', async () => {
    const p = fakePipe();
    const a = await agentOn(p, 'SA');
    a.channel.setBackedUp(true);
    expect(p.fromBrowser.isPaused()).toBe(true);
    a.channel.setBackedUp(false);
    expect(p.fromBrowser.isPaused()).toBe(false);
    a.channel.setBackedUp(true);
    a.channel.close();
    expect(p.fromBrowser.isPaused()).toBe(false);
  });

  it('the agent\'s page: the last page an agent acted on (not one it only set up), none once no agent is left', async () => {
    const p = fakePipe();
    const seen: (string | null)[] = [];
    p.mux.on('agentPage', (t) => seen.push(t));
    const a = await agentOn(p, 'SA');
    p.chromium(event('Target.attachedToTarget', { sessionId: 'C1', targetInfo: { targetId: 'P1', type: 'page' } }, 'SA'));
    p.chromium(event('Target.attachedToTarget', { sessionId: 'C2', targetInfo: { targetId: 'P2', type: 'page' } }, 'SA'));
    p.chromium(event('Target.attachedToTarget', { sessionId: 'W1', targetInfo: { targetId: 'SW', type: 'service_worker' } }, 'SA'));
    await p.tick();
    a.channel.send({ id: 1, method: 'Page.enable', sessionId: 'C2' });
    a.channel.send({ id: 2, method: 'Runtime.evaluate', sessionId: 'W1' });
    expect(seen).toEqual([]);
    a.channel.send({ id: 3, method: 'Page.navigate', params: { url: 'about:blank' }, sessionId: 'C1' });
    a.channel.send({ id: 4, method: 'Runtime.enable', sessionId: 'C2' });
    a.channel.send({ id: 5, method: 'Input.dispatchMouseEvent', sessionId: 'C1' });
    a.channel.send({ id: 6, method: 'Runtime.callFunctionOn', sessionId: 'C2' });
    expect(seen).toEqual(['P1', 'P2']);
    expect(p.mux.agentPage).toBe('P2');
    // A page-level socket's own session is its page.
    const b = await agentOn(p, 'SB', 'P3');
    b.channel.send({ id: 1, method: 'Input.insertText', params: { text: 'x' } });
    expect(p.mux.agentPage).toBe('P3');
    a.channel.close();
    expect(p.mux.agentPage).toBe('P3');
    b.channel.close();
    expect(seen).toEqual(['P1', 'P2', 'P3', null]);
  });
});
