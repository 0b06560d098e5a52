// NOT YET RUN (issue 10 item 4): written at the end of a session whose machine ran at load 30-58,
// where daemons did not start within the helper's 20 s. Rename to child-faults.test.ts once it passes.
import { afterEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';
import { WebSocket } from 'ws';
import { BIN, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { alive, api, ownedRows, waitFor } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';
import { RfbViewer, freePort } from '../helpers/vnc.js';
import { Enc, RawRfb } from '../helpers/vnc-raw.js';

/**
 * Issue 10 item 4, the cases beside the audit faults (audit-faults.test.ts): a child process
 * killed mid-use (Chromium's browser process, a renderer, Xvfb, ffmpeg), the daemon SIGKILLed
 * during a handoff and started again, 1000 sockets dropped mid-handshake, a viewer that never
 * reads. Each runs a real daemon with two sessions: `agent` driven by Puppeteer, and `ho` in a
 * handoff (debug=true, so ffmpeg records it) with a screencast viewer and a VNC viewer. After
 * each: the other session is unaffected, the daemon serves, no process it started is left,
 * and the audit chain verifies and holds every event.
 */

const VNC_PASSWORD = 'childpw1';
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  const errors: unknown[] = [];
  for (const c of cleanups.splice(0).reverse()) {
    try {
      await c();
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length) throw errors[0];
});

function auditVerify(stateDir: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'audit', 'verify', '--state-dir', stateDir], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, out: stdout + stderr });
    });
  });
}

/** The processes below `root`, with their command names and lines. */
function descendants(root: number): { pid: number; comm: string; cmd: string }[] {
  const kids = new Map<number, number[]>();
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(p)]);
    } catch {
      // gone
    }
  }
  const out: { pid: number; comm: string; cmd: string }[] = [];
  const todo = [root, ...(kids.get(root) ?? [])];
  for (let pid = todo.pop(); pid !== undefined; pid = todo.pop()) {
    try {
      out.push({ pid, comm: readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), cmd: readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ') });
    } catch {
      continue;
    }
    if (pid !== root) todo.push(...(kids.get(pid) ?? []));
  }
  return out;
}

/** The real process of an owned row (the row may name its sandbox), found by its command name. */
function realPid(stateDir: string, session: string, kind: 'xvfb' | 'chromium' | 'ffmpeg', match: (p: { comm: string; cmd: string }) => boolean): number {
  for (const r of ownedRows(stateDir, session).filter((x) => x.kind === kind && x.pid && alive(x.pid))) {
    const all = [r.pid!, ...descendants(r.pid!).map((p) => p.pid)];
    const found = descendants(r.pid!).find((p) => match(p)) ?? (all.length === 1 ? { pid: r.pid! } : undefined);
    if (found) return found.pid;
  }
  throw new Error(`no ${kind} process of session ${session}`);
}

const connect = (d: RunningDaemon, query: string) => puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?${query}`, defaultViewport: null, protocolTimeout: 20_000 });

async function cdpWorks(browser: Browser, n: number): Promise<void> {
  const [page] = await browser.pages();
  expect(await page!.evaluate((x) => x * 2, n)).toBe(n * 2);
}

interface World {
  d: RunningDaemon;
  vncPort: number;
  agent: Browser;
  leaks: LeakTracker;
  /** The screencast viewer of `ho` (its pictures are counted) and the VNC viewer. */
  pictures: () => number;
  screencast: WebSocket;
  vnc: RfbViewer;
}

/** A daemon, `agent` driven by Puppeteer, `ho` in a handoff with two viewers. */
async function world(stateDir?: string): Promise<World> {
  const vncPort = await freePort();
  const d = await startDaemon({ stateDir, args: ['--vnc-port', String(vncPort), '--max-sessions', '4'] });
  cleanups.push(() => d.cleanup());
  const leaks = new LeakTracker();
  cleanups.push(() => {
    const left = leaks.leftovers();
    if (left.length) console.error(`daemon log (end):\n${d.logs().slice(-4000)}`);
    expect(left).toEqual([]);
  });
  const agent = await connect(d, 'session=agent&auto_close=false');
  cleanups.push(() => agent.disconnect().catch(() => {}));
  await cdpWorks(agent, 1);
  const created = await api(d.url, `/devtools/browser?session=ho&debug=true&enable_vnc=true&vnc_password=${VNC_PASSWORD}`, { method: 'POST' });
  expect(created.status).toBe(200);
  await waitFor('ho ready', async () => (await api(d.url, '/session/ho')).body.state === 'ready');
  const h = await api(d.url, '/session/ho/handoff', { method: 'POST', body: JSON.stringify({ reason: 'faults' }) });
  expect(h.status).toBe(200);
  const token = new URL(h.body.liveUrl).pathname.split('/')[2];
  const screencast = new WebSocket(`${d.wsUrl}/live/${token}/screencast`);
  cleanups.push(() => screencast.terminate());
  let pictures = 0;
  screencast.on('message', (data: Buffer, isBinary) => {
    if (!isBinary) return;
    pictures++;
    // Ack what arrives so the stream goes on (screencast protocol: at most 2 unacked frames).
    screencast.send(JSON.stringify({ type: 'ack', seq: data.readUInt32BE(1) }));
  });
  await waitFor('a screencast picture', () => pictures > 0);
  const vnc = await RfbViewer.connect(vncPort, VNC_PASSWORD);
  cleanups.push(() => vnc.close());
  await vnc.fullFrame();
  leaks.note(d.stateDir);
  return { d, vncPort, agent, leaks, pictures: () => pictures, screencast, vnc };
}

/** What every case checks at the end (README "Fault policy"). */
async function afterFault(w: World, expected: string[]): Promise<void> {
  // The other session is unaffected, the daemon serves and starts new sessions.
  await cdpWorks(w.agent, 7);
  expect((await api(w.d.url, '/health')).body.ok).toBe(true);
  const fresh = await api(w.d.url, '/devtools/browser?session=after', { method: 'POST' });
  expect(fresh.status).toBe(200);
  await waitFor('the new session ready', async () => (await api(w.d.url, '/session/after')).body.state === 'ready');
  w.leaks.note(w.d.stateDir);
  expect((await api(w.d.url, '/metrics')).body).toMatch(/^handoff_uncaught_errors_total 0$/m);
  // The events are in the trail, which verifies after a clean stop.
  const types = ((await api(w.d.url, '/audit?limit=10000')).body.events as { type: string; session_id: string; detail: any }[]).map((e) => `${e.type}:${e.session_id ?? ''}${e.detail?.reason ? `:${e.detail.reason}` : ''}`);
  for (const e of expected) expect(types).toContain(e);
  await w.agent.disconnect();
  expect(await w.d.stop()).toBe(0);
  const v = await auditVerify(w.d.stateDir);
  expect(v.code, v.out).toBe(0);
}

describe('a child process killed mid-use', { timeout: 120_000 }, () => {
  it("kill -9 of Chromium's browser process: that session crashes, nothing else", async () => {
    const w = await world();
    const pid = realPid(w.d.stateDir, 'ho', 'chromium', (p) => /^chrom/.test(p.comm) && !p.cmd.includes('--type='));
    process.kill(pid, 'SIGKILL');
    await waitFor('ho crashed', async () => (await api(w.d.url, '/session/ho')).body.state === 'crashed');
    await waitFor('its viewers closed', () => w.screencast.readyState === WebSocket.CLOSED && w.vnc.closed);
    await afterFault(w, ['session_crashed:ho:browser crashed', 'handoff_completed:ho', 'cloud_browser_agent_attach:agent']);
  });

  it('kill -9 of a renderer: the page dies, the session and the other one go on', async () => {
    const w = await world();
    const pid = realPid(w.d.stateDir, 'ho', 'chromium', (p) => p.cmd.includes('--type=renderer') && !p.cmd.includes('--extension-process'));
    process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 1000));
    expect((await api(w.d.url, '/session/ho')).body.state).toBe('ready');
    // The session still hosts pages: the agent opens one there.
    const ho = await connect(w.d, 'session=ho');
    const page = await ho.newPage();
    expect(await page.evaluate(() => 40 + 2)).toBe(42);
    await ho.disconnect();
    await afterFault(w, ['handoff_requested:ho']);
  });

  it('kill -9 of Xvfb: that session crashes and its Chromium is reaped', async () => {
    const w = await world();
    const pid = realPid(w.d.stateDir, 'ho', 'xvfb', (p) => p.comm === 'Xvfb');
    process.kill(pid, 'SIGKILL');
    await waitFor('ho crashed', async () => (await api(w.d.url, '/session/ho')).body.state === 'crashed');
    await afterFault(w, ['session_crashed:ho']);
  });

  it('kill -9 of ffmpeg (the recorder): the session goes on, the recording stays playable', async () => {
    const w = await world();
    const pid = realPid(w.d.stateDir, 'ho', 'ffmpeg', (p) => p.comm === 'ffmpeg');
    process.kill(pid, 'SIGKILL');
    const before = w.pictures();
    await waitFor('screencast goes on', () => w.pictures() > before);
    expect((await api(w.d.url, '/session/ho')).body.state).toBe('ready');
    await afterFault(w, ['handoff_requested:ho']);
  });
});

describe('the daemon and its clients', { timeout: 120_000 }, () => {
  it('SIGKILL of the daemon during a handoff, then a restart: the orphans are reaped, the trail verifies', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'handoff-fault-kill9-'));
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const w = await world(stateDir);
    const before = (await api(w.d.url, '/audit?limit=10000')).body.events.length as number;
    const owned = ownedRows(stateDir).filter((r) => r.pid);
    expect(owned.length).toBeGreaterThanOrEqual(4);
    w.d.proc.kill('SIGKILL');
    await new Promise((r) => w.d.proc.once('exit', r));
    const d2 = await startDaemon({ stateDir, args: ['--vnc-port', String(await freePort())] });
    cleanups.push(() => d2.stop());
    // Every process of the killed daemon is gone, its sessions are recorded as stopped.
    await waitFor('orphans reaped', () => owned.every((r) => !alive(r.pid!)));
    const events = (await api(d2.url, '/audit?limit=10000')).body.events as { type: string; session_id: string; detail: any }[];
    expect(events.length).toBeGreaterThan(before);
    const restarted = events.filter((e) => e.type === 'session_stopped' && e.detail.reason === 'daemon restarted').map((e) => e.session_id);
    expect(restarted.sort()).toEqual(['agent', 'ho']);
    expect((await api(d2.url, '/health')).body.ok).toBe(true);
    const again = await connect(d2, 'session=agent&auto_close=false');
    await cdpWorks(again, 3);
    await again.disconnect();
    expect(await d2.stop()).toBe(0);
    const v = await auditVerify(stateDir);
    expect(v.code, v.out).toBe(0);
  });

  it('1000 sockets opened and dropped mid-handshake (HTTP, WebSocket upgrade, VNC)', async () => {
    const w = await world();
    const fds = () => readdirSync(`/proc/${w.d.proc.pid}/fd`).length;
    const baseline = fds();
    const partial = [
      'GET /sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n',
      'GET /devtools/browser/ho HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n',
      'RFB 003.008\n',
      'RFB 003.008\n\x02' + 'x'.repeat(8),
    ];
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(
        Array.from({ length: 100 }, (_, i) => {
          const vnc = i % 4 >= 2;
          return new Promise<void>((resolve) => {
            const s = net.connect(vnc ? w.vncPort : w.d.port, '127.0.0.1');
            s.on('error', () => resolve());
            s.once('connect', () => {
              s.write(partial[i % 4]!);
              setTimeout(() => (s.destroy(), resolve()), 20);
            });
          });
        }),
      );
    }
    await waitFor('fds back near the baseline', () => fds() <= baseline + 10, 20_000);
    // The viewers of `ho` were not disturbed.
    const before = w.pictures();
    await waitFor('screencast goes on', () => w.pictures() > before);
    expect(w.vnc.closed).toBe(false);
    await afterFault(w, ['handoff_requested:ho']);
  });

  it('a viewer that never reads: its socket is bounded, the others go on', async () => {
    const w = await world();
    const link = await api(w.d.url, '/session/ho/live?kind=view');
    const token = new URL(link.body.url).pathname.split('/')[2];
    // A screencast viewer that acks blindly (so the server keeps sending) but never reads.
    const stuck = net.connect(w.d.port, '127.0.0.1');
    cleanups.push(() => stuck.destroy());
    await new Promise((r) => stuck.once('connect', r));
    stuck.write(`GET /live/${token}/screencast HTTP/1.1\r\nHost: 127.0.0.1:${w.d.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    stuck.pause();
    // A VNC client that asks for full Raw frames (3.6 MB each) over and over and never reads.
    const vncStuck = await RawRfb.connect(w.vncPort, VNC_PASSWORD);
    cleanups.push(() => vncStuck.destroy());
    vncStuck.socket.pause();
    vncStuck.setEncodings([Enc.Raw]);
    const rssOf = () => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${w.d.proc.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    const rss0 = rssOf();
    // The reading VNC viewer moves the pointer: the screen changes, so there is always news to send.
    for (let i = 0; i < 40; i++) {
      vncStuck.request(false);
      w.vnc.client.pointerEvent(100 + (i % 10) * 50, 100 + (i % 7) * 40, 0);
      await new Promise((r) => setTimeout(r, 100));
    }
    const before = w.pictures();
    await waitFor('the reading viewer goes on', () => w.pictures() > before);
    expect(w.vnc.closed).toBe(false);
    expect(rssOf() - rss0).toBeLessThan(200 * 1024 * 1024);
    await afterFault(w, ['handoff_requested:ho']);
  });
});
