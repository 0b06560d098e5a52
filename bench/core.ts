/**
 * Issue 2 figures: the CDP proxy against a direct connection, session creation against a
 * plain Chromium launch, and memory. The session's Chromium has no DevTools port (only its
 * pipe, issue 8.3), so "direct" is a second headful Chromium launched here with the same
 * flags and a TCP port, on its own Xvfb of the same size, measured in the same run.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { startDaemon } from '../test/helpers/daemon.js';
import { launchProcess } from '../src/util/process.js';
import { chromiumArgs } from '../src/browser/chromium.js';
import { XvfbDisplay } from '../src/display/xvfb.js';
import { RawCdp, stats, fmt, pss, rss, groupPids } from './lib.js';

export interface Row {
  figure: string;
  handoff: string;
  reference: string;
  ratio: string;
  target: string;
  ok: boolean | null;
}

async function attachPage(cdp: RawCdp): Promise<string> {
  const { targetInfos } = await cdp.send('Target.getTargets');
  const page = targetInfos.find((t: any) => t.type === 'page');
  const { sessionId } = await cdp.send('Target.attachToTarget', { targetId: page.targetId, flatten: true });
  return sessionId;
}

async function roundTrips(cdp: RawCdp, n: number): Promise<number[]> {
  const sessionId = await attachPage(cdp);
  for (let i = 0; i < 200; i++) await cdp.send('Runtime.evaluate', { expression: '1' }, sessionId); // warm up
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await cdp.send('Runtime.evaluate', { expression: '1' }, sessionId);
    out.push(performance.now() - t);
  }
  return out;
}

async function screenshots(cdp: RawCdp, n: number): Promise<{ ms: number[]; bytes: number }> {
  const sessionId = await attachPage(cdp);
  const ms: number[] = [];
  let bytes = 0;
  for (let i = 0; i < n + 1; i++) {
    const t = performance.now();
    const { data } = await cdp.send('Page.captureScreenshot', { format: 'png' }, sessionId);
    if (i > 0) ms.push(performance.now() - t); // the first one warms up
    bytes = data.length;
  }
  return { ms, bytes };
}

function chromiumPid(stateDir: string, sessionId: string): number {
  const db = new Database(join(stateDir, 'handoff.db'), { readonly: true });
  const row = db.prepare(`SELECT pid FROM owned WHERE kind = 'chromium' AND session_id = ?`).get(sessionId) as { pid: number };
  db.close();
  return row.pid;
}

/** The reference: the session's flags with a TCP DevTools port, headful on an Xvfb of its own. */
async function directChromium(width: number, height: number): Promise<{ ws: string; close(): Promise<void> }> {
  const xvfb = await XvfbDisplay.start({ width, height, tmpRoot: '/dev/shm' });
  const profileDir = mkdtempSync(join(tmpdir(), 'bench-direct-'));
  const args = chromiumArgs({ width, height, profileDir, asRoot: process.getuid?.() === 0, devtools: 'port' });
  const proc = launchProcess('/usr/lib/chromium/chromium', args, { env: { ...process.env, ...xvfb.env(), TMPDIR: profileDir } });
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await proc.close();
      await xvfb.close();
      rmSync(profileDir, { recursive: true, force: true });
    })());
  try {
    return { ws: await devtoolsUrl(proc), close };
  } catch (e) {
    await close();
    throw e;
  }
}

function devtoolsUrl(proc: ReturnType<typeof launchProcess>): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let seen = '';
    proc.child.stderr!.on('data', (s) => {
      seen += s;
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(seen);
      if (m) resolve(m[1]!);
    });
    proc.exited.then(() => reject(new Error(seen)));
  });
}

function xvfbPid(stateDir: string, sessionId: string): number {
  const db = new Database(join(stateDir, 'handoff.db'), { readonly: true });
  const row = db.prepare(`SELECT pid FROM owned WHERE kind = 'xvfb' AND session_id = ?`).get(sessionId) as { pid: number };
  db.close();
  return row.pid;
}

export async function benchCore(log: (s: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  const daemon = await startDaemon();
  const cleanups: Array<() => Promise<void>> = [];
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const daemonRss = rss(daemon.proc.pid!);

    // Noise does not compress: a 1600x1000 screen of it is a PNG of about 5 MB (base64).
    const noise = `data:text/html,<body style=margin:0><canvas id=c width=1600 height=1000></canvas><script>const c=document.getElementById('c').getContext('2d');const d=c.createImageData(1600,1000);for(let i=0;i<d.data.length;i++)d.data[i]=Math.random()*256;c.putImageData(d,0,0)</script>`;
    const viaProxy = await RawCdp.open(`${daemon.wsUrl}/?session=bench&auto_close=false&width=1600&height=1000`);
    const direct = await directChromium(1600, 1000);
    cleanups.push(() => direct.close());
    const viaDirect = await RawCdp.open(direct.ws);
    for (const cdp of [viaProxy, viaDirect]) {
      const sid = await attachPage(cdp);
      await cdp.send('Page.navigate', { url: noise }, sid);
    }
    await new Promise((r) => setTimeout(r, 1500));

    // The floor of any proxy: a plain TCP forwarder (socket.pipe, no WebSocket work at all),
    // in its own process, in front of the same Chromium, measured in the same run.
    const floor = await tcpForwarder(direct.ws);
    const viaPipe = await RawCdp.open(floor.url);

    log('CDP round trips (2000 each, interleaved in blocks of 250)...');
    const p: number[] = [];
    const d: number[] = [];
    const f: number[] = [];
    for (let block = 0; block < 8; block++) {
      p.push(...(await roundTrips(viaProxy, 250)));
      d.push(...(await roundTrips(viaDirect, 250)));
      f.push(...(await roundTrips(viaPipe, 250)));
    }
    const ps = stats(p);
    const ds = stats(d);
    const fs = stats(f);
    rows.push({ figure: 'CDP round trip p50 (ms)', handoff: fmt(ps.p50, 3), reference: fmt(ds.p50, 3), ratio: fmt(ps.p50 / ds.p50), target: '<= 1.10', ok: ps.p50 / ds.p50 <= 1.1 });
    rows.push({ figure: 'CDP round trip p99 (ms)', handoff: fmt(ps.p99, 3), reference: fmt(ds.p99, 3), ratio: fmt(ps.p99 / ds.p99), target: '<= 1.25', ok: ps.p99 / ds.p99 <= 1.25 });
    rows.push({ figure: 'same, plain TCP forwarder p50 / p99 (ms): the floor of any proxy', handoff: `${fmt(fs.p50, 3)} / ${fmt(fs.p99, 3)}`, reference: fmt(ds.p50, 3), ratio: `${fmt(fs.p50 / ds.p50)} / ${fmt(fs.p99 / ds.p99)}`, target: 'report', ok: null });
    await viaPipe.close();
    floor.close();

    log('screenshots...');
    const sp: number[] = [];
    const sd: number[] = [];
    let bytes = 0;
    for (let i = 0; i < 5; i++) {
      const a = await screenshots(viaProxy, 2);
      const b = await screenshots(viaDirect, 2);
      sp.push(...a.ms);
      sd.push(...b.ms);
      bytes = a.bytes;
    }
    const sps = stats(sp);
    const sds = stats(sd);
    rows.push({
      figure: `screenshot ${fmt(bytes / 1e6, 1)} MB p50 (ms)`,
      handoff: fmt(sps.p50, 1),
      reference: fmt(sds.p50, 1),
      ratio: fmt(sps.p50 / sds.p50),
      target: '<= 1.10',
      ok: sps.p50 / sds.p50 <= 1.1,
    });
    await viaDirect.close();
    await viaProxy.close();
    await direct.close();

    // Memory of an idle session: every process of Chromium's group plus Xvfb.
    await new Promise((r) => setTimeout(r, 2000));
    const idle = await RawCdp.open(`${daemon.wsUrl}/?session=idle&auto_close=false`);
    await idle.close();
    await new Promise((r) => setTimeout(r, 3000));
    const idleChromium = chromiumPid(daemon.stateDir, 'idle');
    const sessionPss = groupPids(idleChromium).reduce((n, pid) => n + pss(pid), 0) + pss(xvfbPid(daemon.stateDir, 'idle'));
    rows.push({ figure: 'daemon RSS, no session (MB)', handoff: fmt(daemonRss / 1e6, 0), reference: '', ratio: '', target: 'report', ok: null });
    rows.push({ figure: 'PSS per idle 1280x720 session (MB)', handoff: fmt(sessionPss / 1e6, 0), reference: '', ratio: '', target: 'report', ok: null });
    await fetch(`${daemon.url}/session/bench/stop`, { method: 'POST' });
    await fetch(`${daemon.url}/session/idle/stop`, { method: 'POST' });

    log('session creation (cold, 15 each)...');
    const create: number[] = [];
    const plain: number[] = [];
    for (let i = 0; i < 15; i++) {
      let t = performance.now();
      const c = await RawCdp.open(`${daemon.wsUrl}/?session=cold${i}`);
      await c.send('Browser.getVersion');
      create.push(performance.now() - t);
      await c.close();
      await waitStopped(daemon.url, `cold${i}`);

      t = performance.now();
      const ref = await plainLaunch();
      plain.push(performance.now() - t);
      await ref.close();
    }
    const cs = stats(create);
    const pl = stats(plain);
    rows.push({ figure: 'session creation p50 (ms)', handoff: fmt(cs.p50, 0), reference: fmt(pl.p50, 0), ratio: fmt(cs.p50 / pl.p50), target: '<= 600 ms', ok: cs.p50 <= 600 });
    rows.push({ figure: 'session creation p95 (ms)', handoff: fmt(cs.p95, 0), reference: fmt(pl.p95, 0), ratio: fmt(cs.p95 / pl.p95), target: '<= 900 ms', ok: cs.p95 <= 900 });
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    await daemon.cleanup();
  }
  return rows;
}

/**
 * A TCP forwarder that only copies bytes, in a process of its own like the daemon: the
 * cheapest possible extra hop, so the gap between it and the daemon is what the relay costs.
 */
async function tcpForwarder(target: string): Promise<{ url: string; close(): void }> {
  const t = new URL(target);
  const script = `
    const net = require('node:net');
    const server = net.createServer((s) => {
      const up = net.connect(${Number(t.port)}, '127.0.0.1');
      s.setNoDelay(true); up.setNoDelay(true);
      s.pipe(up).pipe(s);
      s.on('error', () => up.destroy()); up.on('error', () => s.destroy());
    });
    server.listen(0, '127.0.0.1', () => console.log(server.address().port));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d) => resolve(Number(String(d).trim())));
    child.once('exit', () => reject(new Error('forwarder exited')));
  });
  return { url: `ws://127.0.0.1:${port}${t.pathname}`, close: () => child.kill() };
}

async function waitStopped(url: string, id: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const s = (await (await fetch(`${url}/session/${id}`)).json()) as { state: string };
    if (s.state === 'stopped') return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The obvious alternative: spawn headless Chromium yourself and connect to it. */
async function plainLaunch(): Promise<{ close(): Promise<void> }> {
  const profileDir = mkdtempSync(join(tmpdir(), 'bench-profile-'));
  const args = chromiumArgs({ width: 1280, height: 720, profileDir, asRoot: process.getuid?.() === 0, devtools: 'port' }).filter((a) => a !== '--kiosk');
  // Its temp files inside the profile dir, so removing that leaves nothing behind.
  const proc = launchProcess('/usr/lib/chromium/chromium', ['--headless=new', ...args], { env: { ...process.env, TMPDIR: profileDir } });
  const ws = await devtoolsUrl(proc);
  const c = await RawCdp.open(ws);
  await c.send('Browser.getVersion');
  return {
    async close() {
      await c.close();
      await proc.close();
      rmSync(profileDir, { recursive: true, force: true });
    },
  };
}
