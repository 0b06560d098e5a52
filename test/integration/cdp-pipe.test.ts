import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import puppeteer from 'puppeteer-core';
import type WebSocket from 'ws';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { startPageServer, type PageServer } from '../helpers/pages.js';
import { api, cdpCall, closed, ownedRows, tryWs, waitFor } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';

/**
 * Issue 8.3 and 15.2: Chromium is reachable only through the daemon (DevTools on a pipe, no
 * TCP port); each agent gets a DevTools session of its own on that pipe, so what one agent
 * set up never reaches the next and nobody reaches another's sessions; Browser.close and the
 * last page closing are stops, not crashes.
 */
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

async function rawAgent(query: string): Promise<WebSocket> {
  const o = await tryWs(`${d.wsUrl}/?${query}`);
  if (o.kind !== 'open') throw new Error(`connect failed: ${JSON.stringify(o)}`);
  return o.ws;
}

/** Every message the socket receives from now on, parsed. */
function collect(ws: WebSocket): any[] {
  const got: any[] = [];
  ws.on('message', (data) => got.push(JSON.parse(data.toString())));
  return got;
}

function procStat(pid: number): { ppid: number; pgrp: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), pgrp: Number(f[2]) };
  } catch {
    return null;
  }
}

/** `root`, every process of its process group, and all their descendants. */
function processTree(root: number): number[] {
  const all = readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);
  const stats = new Map(all.map((pid) => [pid, procStat(pid)] as const));
  const out = new Set<number>([root]);
  for (const [pid, st] of stats) if (st?.pgrp === root) out.add(pid);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, st] of stats) {
      if (st && out.has(st.ppid) && !out.has(pid)) {
        out.add(pid);
        grew = true;
      }
    }
  }
  return [...out].filter((pid) => stats.get(pid));
}

/** TCP sockets in LISTEN (state 0A) held open by `pid`, as "tcp:port" strings. */
function listeningSockets(pid: number): string[] {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]!);
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    return []; // exited
  }
  const out: string[] = [];
  for (const table of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue;
      if (inodes.has(f[9]!)) out.push(`${table}:${parseInt(f[1]!.split(':')[1]!, 16)}`);
    }
  }
  return out;
}

describe('Chromium has no DevTools port', () => {
  it('no process of the session listens on any TCP port (while the daemon itself does)', async () => {
    const ws = await rawAgent('session=noport&auto_close=false');
    await cdpCall(ws, 1, 'Browser.getVersion');
    const rows = leaks.note(d.stateDir, 'noport');
    const chromium = rows.find((r) => r.kind === 'chromium')!;
    const tree = processTree(chromium.pid!);
    // The browser process, its zygotes, renderer, GPU and network service at least.
    expect(tree.length).toBeGreaterThan(3);
    const listening = tree.flatMap((pid) => listeningSockets(pid).map((s) => `pid ${pid} ${s}`));
    expect(listening).toEqual([]);
    const xvfb = rows.find((r) => r.kind === 'xvfb')!;
    expect(processTree(xvfb.pid!).flatMap(listeningSockets)).toEqual([]);
    // The check sees a listening socket where there is one: the daemon's own HTTP port.
    expect(listeningSockets(d.proc.pid!)).toContain(`tcp:${d.port}`);
    expect(readFileSync(`/proc/${chromium.pid}/cmdline`, 'utf8')).toContain('--remote-debugging-pipe');
    expect(readFileSync(`/proc/${chromium.pid}/cmdline`, 'utf8')).not.toContain('--remote-debugging-port');
    ws.close();
    await api(d.url, '/session/noport/stop', { method: 'POST' });
  });
});

describe('each agent has a DevTools session of its own', () => {
  it('what a first agent set up (discovery, auto-attach waiting for the debugger) does not reach the next; Puppeteer reconnects see the same pages', async () => {
    const id = 'mux-iso';
    const first = await rawAgent(`session=${id}&auto_close=false`);
    leaks.note(d.stateDir, id);
    const firstGot = collect(first);
    await cdpCall(first, 1, 'Target.setDiscoverTargets', { discover: true });
    await cdpCall(first, 2, 'Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: true, flatten: true });
    const attached = await waitFor('an auto-attached page', () => firstGot.find((m) => m.method === 'Target.attachedToTarget' && m.params.targetInfo.type === 'page'));
    const childSession: string = attached.params.sessionId;
    // Its own messages come without the session the daemon gave it; children's carry theirs.
    const children = new Set(firstGot.filter((m) => m.method === 'Target.attachedToTarget').map((m) => m.params.sessionId));
    expect(firstGot.filter((m) => m.sessionId !== undefined && !children.has(m.sessionId))).toEqual([]);
    expect(await cdpCall(first, 3, 'Runtime.evaluate', { expression: '6 * 7', returnByValue: true }, childSession)).toMatchObject({ result: { value: 42 } });
    const leaving = closed(first);
    first.close();
    await leaving;
    await waitFor('the first agent detached', async () => (await api(d.url, `/session/${id}`)).body.attachment === 'none');

    // A second agent: its new pages load (nobody holds them waiting for a debugger), it gets
    // no events it did not ask for, and the first agent's child session is not its to use.
    const second = await rawAgent(`session=${id}&auto_close=false`);
    const secondGot = collect(second);
    const { targetId } = await cdpCall(second, 1, 'Target.createTarget', { url: `${pages.url}/form` });
    const { sessionId: mine } = await cdpCall(second, 2, 'Target.attachToTarget', { targetId, flatten: true });
    await waitFor('the new page to load', async () => {
      const r = await cdpCall(second, 3 + Math.floor(Math.random() * 1e6), 'Runtime.evaluate', { expression: 'document.readyState', returnByValue: true }, mine);
      return r.result.value === 'complete';
    });
    // Nothing of the daemon's target discovery or the first agent's auto-attach.
    expect(secondGot.filter((m) => m.method && m.method !== 'Target.attachedToTarget')).toEqual([]);
    await expect(cdpCall(second, 10, 'Runtime.evaluate', { expression: '1' }, childSession)).rejects.toThrow(/Session with given id not found/);
    await expect(cdpCall(second, 11, 'Runtime.evaluate', { expression: '1' }, 'F'.repeat(32))).rejects.toThrow(/-32001/);
    await cdpCall(second, 12, 'Target.closeTarget', { targetId });
    const leaving2 = closed(second);
    second.close();
    await leaving2;
    await waitFor('the second agent detached', async () => (await api(d.url, `/session/${id}`)).body.attachment === 'none');

    let browser = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=${id}&auto_close=false`, defaultViewport: null });
    const page = await browser.newPage();
    await page.goto(`${pages.url}/other`);
    const before = (await browser.pages()).map((p) => p.url()).sort();
    expect(before).toContain(`${pages.url}/other`);
    await browser.disconnect();
    await waitFor('detached', async () => (await api(d.url, `/session/${id}`)).body.attachment === 'none');
    browser = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=${id}&auto_close=false`, defaultViewport: null });
    try {
      expect((await browser.pages()).map((p) => p.url()).sort()).toEqual(before);
      const again = (await browser.pages()).find((p) => p.url() === `${pages.url}/other`)!;
      expect(await again.evaluate(() => document.location.pathname)).toBe('/other');
    } finally {
      await browser.disconnect();
    }
    await api(d.url, `/session/${id}/stop`, { method: 'POST' });
  });

  it('a 6 MB screenshot and a 20 MB evaluate result arrive whole through the pipe', async () => {
    const id = 'mux-big';
    const browser = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=${id}&width=1600&height=1000`, defaultViewport: null });
    try {
      leaks.note(d.stateDir, id);
      const [page] = await browser.pages();
      await page!.goto(
        `data:text/html,<body style=margin:0><canvas id=c width=1600 height=1000></canvas><script>const c=document.getElementById('c').getContext('2d');const d=c.createImageData(1600,1000);for(let i=0;i<d.data.length;i++)d.data[i]=Math.random()*256;c.putImageData(d,0,0)</script>`,
      );
      const png = Buffer.from(await page!.screenshot({ type: 'png' }));
      expect(png.length).toBeGreaterThan(4_000_000);
      expect(png.subarray(1, 4).toString()).toBe('PNG');
      const s = await page!.evaluate(() => 'é'.repeat(10_000_000) + 'end');
      expect(s.length).toBe(10_000_003);
      expect(s.endsWith('éend')).toBe(true);
    } finally {
      await browser.disconnect();
    }
    await api(d.url, `/session/${id}/wait?state=stopped&timeout_ms=20000`);
  });

  it('a page-level socket drives its page on a session of its own', async () => {
    const id = 'mux-page';
    const ws = await rawAgent(`session=${id}&auto_close=false`);
    leaks.note(d.stateDir, id);
    ws.close();
    await waitFor('detached', async () => (await api(d.url, `/session/${id}`)).body.attachment === 'none');
    const [target] = (await api(d.url, `/json/list?session=${id}`)).body;
    const o = await tryWs(target.webSocketDebuggerUrl);
    if (o.kind !== 'open') throw new Error(JSON.stringify(o));
    expect(await cdpCall(o.ws, 1, 'Runtime.evaluate', { expression: '1 + 1', returnByValue: true })).toMatchObject({ result: { value: 2 } });
    o.ws.close();
    await api(d.url, `/session/${id}/stop`, { method: 'POST' });
  });
});

describe('an agent ending the browser stops the session (issue 15.2)', () => {
  async function stopReason(id: string): Promise<{ state: string; reason: string; crashed: number }> {
    const info = (await api(d.url, `/session/${id}/wait?state=stopped&timeout_ms=20000`)).body;
    const stops = await waitFor('the session_stopped row', async () => {
      const e = (await api(d.url, `/audit?session_id=${id}&type=session_stopped`)).body.events;
      return e.length ? e : null;
    });
    const crashed = (await api(d.url, `/audit?session_id=${id}&type=session_crashed`)).body.events.length;
    return { state: info.state, reason: stops[0].detail.reason, crashed };
  }

  it('Puppeteer browser.close(): stopped, "browser closed"', async () => {
    const browser = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=pptr-close&auto_close=false`, defaultViewport: null });
    leaks.note(d.stateDir, 'pptr-close');
    await browser.close();
    expect(await stopReason('pptr-close')).toEqual({ state: 'stopped', reason: 'browser closed', crashed: 0 });
  });

  it('closing the last page: stopped, "last page closed"', async () => {
    const ws = await rawAgent('session=last-page&auto_close=false');
    leaks.note(d.stateDir, 'last-page');
    const ending = closed(ws);
    const { targetInfos } = await cdpCall(ws, 1, 'Target.getTargets');
    const pagesNow = targetInfos.filter((t: { type: string }) => t.type === 'page');
    expect(pagesNow).toHaveLength(1);
    await cdpCall(ws, 2, 'Target.closeTarget', { targetId: pagesNow[0].targetId });
    expect(await stopReason('last-page')).toEqual({ state: 'stopped', reason: 'last page closed', crashed: 0 });
    expect(await ending).toEqual({ code: 4000, reason: 'last page closed' });
    expect(ownedRows(d.stateDir, 'last-page')).toEqual([]);
  });
});
