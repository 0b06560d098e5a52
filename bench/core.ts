/**
 * Issue 2 figures: the CDP proxy against a direct connection, session creation against a
 * plain Chromium launch, and memory. The session's Chromium has no DevTools port (only its
 * pipe, issue 8.3), so "direct" is a second headful Chromium launched here with the same
 * flags and a TCP port, on its own Xvfb of the same size, measured in the same run.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
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
  const args = chromiumArgs({ width: 1280, height: 720, profileDir, asRoot: process.getuid?.() === 0, devtools: 'port' });
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

// ---------------------------------------------------------------------------------------
// Issue 14: idle memory per process, the cold start by phase, profile resume.

/** What a process of a session is, from its command line. */
function processKind(pid: number): string {
  try {
    // Chromium rewrites its children's titles: arguments may be split by spaces, not NULs.
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split(/[\0 ]/);
    const exe = argv[0] ?? '';
    if (exe.endsWith('bwrap')) return 'bwrap (sandbox)';
    if (exe.includes('Xvfb')) return 'Xvfb';
    const type = argv.find((a) => a.startsWith('--type='))?.slice(7);
    if (!type) return 'browser';
    const sub = argv.find((a) => a.startsWith('--utility-sub-type='))?.slice(19);
    return sub ? `utility ${sub.split('.')[0]}` : type;
  } catch {
    return 'gone';
  }
}

/** Private (unshared) bytes: what one more such process costs at the margin. */
function uss(pid: number): number {
  try {
    const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    let n = 0;
    for (const m of t.matchAll(/^Private_(?:Clean|Dirty):\s+(\d+) kB/gm)) n += Number(m[1]) * 1024;
    return n;
  } catch {
    return 0;
  }
}

interface MemSample {
  /** kind -> summed PSS, USS and process count over the sessions measured. */
  byKind: Map<string, { pss: number; uss: number; n: number }>;
  pss: number;
  uss: number;
}

function measureGroups(pgids: number[]): MemSample {
  const byKind = new Map<string, { pss: number; uss: number; n: number }>();
  let total = 0;
  let totalUss = 0;
  for (const g of pgids) {
    for (const pid of groupPids(g)) {
      const k = processKind(pid);
      const e = byKind.get(k) ?? { pss: 0, uss: 0, n: 0 };
      const p = pss(pid);
      const u = uss(pid);
      e.pss += p;
      e.uss += u;
      e.n++;
      total += p;
      totalUss += u;
      byKind.set(k, e);
    }
  }
  return { byKind, pss: total, uss: totalUss };
}

function ownedPids(stateDir: string): { chromium: number[]; xvfb: number[] } {
  const db = new Database(join(stateDir, 'handoff.db'), { readonly: true });
  const rows = db.prepare(`SELECT kind, pid FROM owned WHERE kind IN ('chromium', 'xvfb')`).all() as { kind: string; pid: number }[];
  db.close();
  return { chromium: rows.filter((r) => r.kind === 'chromium').map((r) => r.pid), xvfb: rows.filter((r) => r.kind === 'xvfb').map((r) => r.pid) };
}

async function createIdle(url: string): Promise<string> {
  const r = await fetch(`${url}/devtools/browser?keep_alive=1800000`, { method: 'POST' });
  if (!r.ok) throw new Error(`create: ${r.status} ${await r.text()}`);
  const { sessionId } = (await r.json()) as { sessionId: string };
  const w = await fetch(`${url}/session/${sessionId}/wait?state=ready&timeout_ms=60000`);
  if (!w.ok) throw new Error(`session ${sessionId} not ready: ${await w.text()}`);
  return sessionId;
}

/**
 * PSS and USS of every process of idle 1280x720 sessions (the daemon's own sandboxed
 * Xvfb + Chromium), with 1 session and with `n`. Marginal = (total at n - total at 1) / (n - 1).
 */
export async function benchIdleMemory(log: (s: string) => void, n: number): Promise<Row[]> {
  const rows: Row[] = [];
  const daemon = await startDaemon({ args: ['--max-sessions', String(n + 2), '--warm', '0'] });
  try {
    const settle = () => new Promise((r) => setTimeout(r, 20_000));
    await createIdle(daemon.url);
    await settle();
    const groups = () => {
      const o = ownedPids(daemon.stateDir);
      return [...o.chromium, ...o.xvfb];
    };
    const one = measureGroups(groups());
    log(`memory: 1 session ${fmt(one.pss / 1e6, 0)} MB PSS; starting ${n - 1} more...`);
    for (let i = 1; i < n; i++) {
      await createIdle(daemon.url);
      if (i % 10 === 0) log(`  ${i + 1} sessions`);
    }
    await settle();
    const many = measureGroups(groups());
    const kinds = [...new Set([...one.byKind.keys(), ...many.byKind.keys()])].sort();
    for (const k of kinds) {
      const a = one.byKind.get(k) ?? { pss: 0, uss: 0, n: 0 };
      const b = many.byKind.get(k) ?? { pss: 0, uss: 0, n: 0 };
      rows.push({
        figure: `idle session, ${k} (${a.n} process${a.n === 1 ? '' : 'es'}): PSS at 1 / per session at ${n} (MB); USS`,
        handoff: `${fmt(a.pss / 1e6, 1)} / ${fmt(b.pss / n / 1e6, 1)}`,
        reference: `USS ${fmt(a.uss / 1e6, 1)}`,
        ratio: '',
        target: 'report',
        ok: null,
      });
    }
    const marginal = (many.pss - one.pss) / (n - 1);
    rows.push({ figure: 'PSS per idle 1280x720 session, alone (MB)', handoff: fmt(one.pss / 1e6, 0), reference: '', ratio: '', target: 'report', ok: null });
    rows.push({ figure: `PSS per idle session at ${n} sessions (total / ${n}) (MB)`, handoff: fmt(many.pss / n / 1e6, 0), reference: '', ratio: '', target: 'report', ok: null });
    rows.push({ figure: `marginal PSS per idle session at ${n} sessions (MB)`, handoff: fmt(marginal / 1e6, 0), reference: '171 (before issue 14)', ratio: fmt(marginal / 171e6), target: '<= 130 MB', ok: marginal <= 130e6 });
  } finally {
    await daemon.cleanup();
  }
  return rows;
}

/**
 * Each memory change of issue 14 alone, on bare (unsandboxed) Xvfb + Chromium launches with
 * the session's flags: the flags before the change, then after it, USS and PSS of all
 * processes after the same settle time, measured one after another in this run.
 */
export async function benchMemoryChanges(log: (s: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  const FEATURES_BEFORE = '--disable-features=Translate,MediaRouter,OptimizationHints,DialMediaRouteProvider';
  const now = chromiumArgs({ width: 1280, height: 720, profileDir: '/x', asRoot: true, devtools: 'port' });
  const disableNow = now.find((a) => a.startsWith('--disable-features='))!;
  const without = (args: string[], drop: string[]) => args.filter((a) => !drop.includes(a));
  const variants: { name: string; xvfb: string[]; flags: (a: string[]) => string[] }[] = [
    { name: 'before issue 14', xvfb: [], flags: (a) => without(a, ['--enable-features=NetworkServiceInProcess2']).map((x) => (x === disableNow ? FEATURES_BEFORE : x)) },
    { name: '+ Xvfb -extension GLX', xvfb: ['-extension', 'GLX'], flags: (a) => without(a, ['--enable-features=NetworkServiceInProcess2']).map((x) => (x === disableNow ? FEATURES_BEFORE : x)) },
    { name: '+ no omnibox WebUI preload', xvfb: ['-extension', 'GLX'], flags: (a) => without(a, ['--enable-features=NetworkServiceInProcess2']).map((x) => (x === disableNow ? `${FEATURES_BEFORE},PreloadTopChromeWebUI,WebUIOmniboxPopup,WebUIOmniboxAimPopup,WebUIOmniboxFullPopup` : x)) },
    { name: '+ no spare renderer', xvfb: ['-extension', 'GLX'], flags: (a) => without(a, ['--enable-features=NetworkServiceInProcess2']) },
    { name: '+ network service in process (= now)', xvfb: ['-extension', 'GLX'], flags: (a) => a },
  ];
  let prev: MemSample | null = null;
  for (const v of variants) {
    const samples: MemSample[] = [];
    for (let i = 0; i < 2; i++) samples.push(await bareSessionMemory(v.xvfb, v.flags));
    const s = samples.sort((a, b) => a.uss - b.uss)[0]!;
    const kinds = [...s.byKind.entries()].map(([k, e]) => `${k}${e.n > 1 ? ` x${e.n}` : ''} ${fmt(e.uss / 1e6, 0)}`).join(', ');
    log(`memory change "${v.name}": USS ${fmt(s.uss / 1e6, 1)} MB, PSS ${fmt(s.pss / 1e6, 1)} MB (${kinds})`);
    rows.push({
      figure: `bare idle session ${v.name}: USS / PSS (MB) [${kinds}]`,
      handoff: `${fmt(s.uss / 1e6, 1)} / ${fmt(s.pss / 1e6, 1)}`,
      reference: prev ? `${fmt(prev.uss / 1e6, 1)} / ${fmt(prev.pss / 1e6, 1)}` : '',
      ratio: prev ? `saves ${fmt((prev.uss - s.uss) / 1e6, 1)} USS` : '',
      target: 'report',
      ok: null,
    });
    prev = s;
  }
  return rows;
}

async function bareSessionMemory(xvfbExtra: string[], flags: (a: string[]) => string[]): Promise<MemSample> {
  const profileDir = mkdtempSync(join(tmpdir(), 'bench-mem-'));
  const xvfb = launchProcess('Xvfb', ['-displayfd', '3', '-screen', '0', '1280x720x24', '-nolisten', 'tcp', '-noreset', '-s', '0', '-dpms', ...xvfbExtra], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  let chrome: ReturnType<typeof launchProcess> | undefined;
  try {
    const display = await new Promise<number>((resolve, reject) => {
      let t = '';
      (xvfb.child.stdio[3] as NodeJS.ReadableStream).on('data', (c: Buffer) => {
        t += c.toString();
        if (t.includes('\n')) resolve(Number.parseInt(t, 10));
      });
      xvfb.exited.then(() => reject(new Error('Xvfb exited')));
    });
    const args = flags(chromiumArgs({ width: 1280, height: 720, profileDir, asRoot: process.getuid?.() === 0, devtools: 'port' }));
    chrome = launchProcess('/usr/lib/chromium/chromium', args, { env: { ...process.env, DISPLAY: `:${display}`, TMPDIR: profileDir } });
    await devtoolsUrl(chrome);
    await new Promise((r) => setTimeout(r, 20_000));
    return measureGroups([xvfb.pid, chrome.pid]);
  } finally {
    await chrome?.close();
    await xvfb.close();
    rmSync(profileDir, { recursive: true, force: true });
  }
}

/**
 * The cold start, phase by phase, of the parts a session starts (sandboxed as in a session):
 * Xvfb up, Chromium spawned to its first DevTools answer, its window mapped and filling
 * the screen. The sum of the first two is the bare launch the daemon's cold create is held to.
 */
export async function benchColdPhases(log: (s: string) => void, runs = 10): Promise<{ rows: Row[]; bare: number[] }> {
  const { WindowFitter } = await import('../src/display/window.js');
  const { ChromiumBrowser } = await import('../src/browser/chromium.js');
  const { connectPipe } = await import('../src/cdp/pipe-mux.js');
  const { silentLogger } = await import('../src/util/logger.js');
  const phases = { xvfb: [] as number[], chromium: [] as number[], window: [] as number[], bare: [] as number[] };
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const xvfb = await XvfbDisplay.start({ width: 1280, height: 720, tmpRoot: '/dev/shm' });
    const t1 = performance.now();
    const fitter = await WindowFitter.start(xvfb, silentLogger);
    const t2 = performance.now();
    const chromium = await ChromiumBrowser.launch({ binary: '/usr/lib/chromium/chromium', width: 1280, height: 720, displayEnv: xvfb.env(), connect: connectPipe });
    const t3 = performance.now();
    await fitter.whenFilled(10_000);
    const t4 = performance.now();
    phases.xvfb.push(t1 - t0);
    phases.chromium.push(t3 - t2);
    phases.window.push(t4 - t3);
    phases.bare.push(t1 - t0 + (t3 - t2));
    await chromium.close();
    await fitter.close();
    await xvfb.close();
  }
  log(`cold phases p50: xvfb ${fmt(stats(phases.xvfb).p50, 0)} ms, chromium ${fmt(stats(phases.chromium).p50, 0)} ms, window ${fmt(stats(phases.window).p50, 0)} ms`);
  const row = (figure: string, v: number[]): Row => ({ figure, handoff: `${fmt(stats(v).p50, 0)} / ${fmt(stats(v).p95, 0)}`, reference: '', ratio: '', target: 'report', ok: null });
  return {
    rows: [
      row('cold start phase: Xvfb up (sandboxed), p50 / p95 (ms)', phases.xvfb),
      row('cold start phase: Chromium spawn to first DevTools answer (sandboxed, pipe), p50 / p95 (ms)', phases.chromium),
      row('cold start phase: window mapped and filling, after DevTools answered, p50 / p95 (ms)', phases.window),
    ],
    bare: phases.bare,
  };
}

/**
 * Profile resume: a real Chromium profile (a cookie and localStorage set by a page), then
 * the time to open it for the next session, kept plain and kept sealed (AES-256-GCM), and
 * the time to seal it when its session stops.
 */
export async function benchProfileResume(log: (s: string) => void, runs = 8): Promise<Row[]> {
  const { ProfileStore } = await import('../src/profiles/store.js');
  const { silentLogger } = await import('../src/util/logger.js');
  const { randomBytes } = await import('node:crypto');
  const { createServer } = await import('node:http');
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html', 'set-cookie': 'sid=bench; Max-Age=86400' });
    res.end('<script>localStorage.setItem("k", "v".repeat(1000))</script>ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const root = mkdtempSync(join(tmpdir(), 'bench-profiles-'));
  const rows: Row[] = [];
  try {
    for (const sealed of [false, true]) {
      const store = await ProfileStore.open({ root: join(root, sealed ? 'sealed' : 'plain'), key: sealed ? randomBytes(32) : null, logger: silentLogger });
      // One real browser run fills the profile.
      const first = store.claim('bench', { sessionId: 'fill', runId: 'fill' });
      const { dir } = await first.open();
      const xvfb = await XvfbDisplay.start({ width: 1280, height: 720, tmpRoot: '/dev/shm' });
      const proc = launchProcess('/usr/lib/chromium/chromium', chromiumArgs({ width: 1280, height: 720, profileDir: dir, asRoot: process.getuid?.() === 0, devtools: 'port' }), { env: { ...process.env, ...xvfb.env(), TMPDIR: join(dir, 'tmp') } });
      const cdp = await RawCdp.open(await devtoolsUrl(proc));
      const sid = await attachPage(cdp);
      await cdp.send('Page.navigate', { url: `http://127.0.0.1:${port}/` }, sid);
      await new Promise((r) => setTimeout(r, 2000));
      await cdp.send('Browser.close').catch(() => {});
      await proc.exited;
      await cdp.close().catch(() => {});
      await xvfb.close();
      const t = performance.now();
      await first.release();
      const sealMs = performance.now() - t;
      const opens: number[] = [];
      const releases: number[] = [];
      for (let i = 0; i < runs; i++) {
        const c = store.claim('bench', { sessionId: `s${i}`, runId: `r${i}` });
        const a = performance.now();
        await c.open();
        opens.push(performance.now() - a);
        const b = performance.now();
        await c.release();
        releases.push(performance.now() - b);
      }
      const size = (await store.list())[0]!.size;
      log(`profile resume ${sealed ? 'sealed' : 'plain'}: open p50 ${fmt(stats(opens).p50, 1)} ms, release p50 ${fmt(stats(releases).p50, 1)} ms, ${fmt(size / 1e6, 2)} MB (first seal ${fmt(sealMs, 0)} ms)`);
      rows.push({
        figure: `profile resume, ${sealed ? 'sealed at rest (AES-256-GCM)' : 'plain'}: open p50 / p95 (ms); release (${sealed ? 'seal' : 'note'}) p50 (ms); size on disk (MB)`,
        handoff: `${fmt(stats(opens).p50, 1)} / ${fmt(stats(opens).p95, 1)}`,
        reference: `${fmt(stats(releases).p50, 1)}; ${fmt(size / 1e6, 2)} MB`,
        ratio: '',
        target: 'report',
        ok: null,
      });
    }
  } finally {
    server.close();
    rmSync(root, { recursive: true, force: true });
  }
  return rows;
}

/** Issue 14 figures: `npm run bench -- sessions`. BENCH_IDLE_SESSIONS sets the many-sessions count (default 40). */
export async function benchSessions(log: (s: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  const loadAtStart = loadavg()[0]!;
  rows.push(...(await benchMemoryChanges(log)));
  rows.push(...(await benchProfileResume(log)));
  const cold = await benchColdPhases(log);
  rows.push(...cold.rows);
  rows.push(...(await benchCreateLatency(log, stats(cold.bare).p50)));
  rows.push(...(await benchIdleMemory(log, Number(process.env.BENCH_IDLE_SESSIONS ?? 40))));
  // The machine may be shared: timings above are only comparable within this run.
  rows.push({ figure: 'machine load average (1 min) at the start / end of this suite', handoff: `${fmt(loadAtStart, 1)} / ${fmt(loadavg()[0]!, 1)}`, reference: `${cpus().length} cores`, ratio: '', target: 'report', ok: null });
  return rows;
}

/**
 * Connect to the first CDP answer (Browser.getVersion) through the daemon, one create per
 * second (each session stopped before the next): warm (--warm 1; each create waits, if it
 * must, until a spare is ready again: "with a warm spare"), and cold (--warm 0), held to 1.2x
 * the bare Xvfb + Chromium launch measured in this run.
 */
export async function benchCreateLatency(log: (s: string) => void, bareP50: number, runs = 15, modes: ('warm' | 'cold')[] = ['warm', 'cold']): Promise<Row[]> {
  const rows: Row[] = [];
  const measure = async (warm: boolean) => {
    const daemon = await startDaemon({ args: ['--warm', warm ? '1' : '0'] });
    const out: number[] = [];
    const again: number[] = [];
    let refillWaits = 0;
    try {
      await new Promise((r) => setTimeout(r, 3000));
      for (let i = 0; i < runs; i++) {
        if (warm && !(await spareWaiting(daemon.url))) {
          refillWaits++;
          for (let t = Date.now(); !(await spareWaiting(daemon.url)) && Date.now() - t < 60_000; ) await new Promise((r) => setTimeout(r, 50));
        }
        const t = performance.now();
        const c = await RawCdp.open(`${daemon.wsUrl}/?session=c${i}`);
        await c.send('Browser.getVersion');
        out.push(performance.now() - t);
        // The same command once more on the open session: what one round trip costs on this machine now.
        const t2 = performance.now();
        await c.send('Browser.getVersion');
        again.push(performance.now() - t2);
        await c.close();
        await waitStopped(daemon.url, `c${i}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    } finally {
      await daemon.cleanup();
    }
    return { ...stats(out), refillWaits, again: stats(again) };
  };
  if (modes.includes('warm')) {
    const warm = await measure(true);
    log(`create, warm: p50 ${fmt(warm.p50, 1)} ms, p99 ${fmt(warm.p99, 1)} ms (${warm.refillWaits} of ${runs} creates waited for the refill)`);
    rows.push({ figure: `connect to first CDP answer with a warm spare, one create per second: p50 / p99 (ms) [${warm.refillWaits} of ${runs} creates found the spare still refilling and waited for it first]`, handoff: `${fmt(warm.p50, 1)} / ${fmt(warm.p99, 1)}`, reference: `${fmt(warm.again.p50, 1)} / ${fmt(warm.again.p99, 1)} (one more round trip on the open session)`, ratio: '', target: '<= 30 / <= 100', ok: warm.p50 <= 30 && warm.p99 <= 100 });
  }
  if (!modes.includes('cold')) return rows;
  const cold = await measure(false);
  log(`create, cold: p50 ${fmt(cold.p50, 0)} ms (bare launch p50 ${fmt(bareP50, 0)} ms)`);
  rows.push({ figure: 'connect to first CDP answer, cold, one create per second: p50 / p99 (ms)', handoff: `${fmt(cold.p50, 0)} / ${fmt(cold.p99, 0)}`, reference: `${fmt(bareP50, 0)} (bare Xvfb + Chromium launch p50)`, ratio: fmt(cold.p50 / bareP50), target: '<= 1.2x', ok: cold.p50 / bareP50 <= 1.2 });
  return rows;
}

async function spareWaiting(url: string): Promise<boolean> {
  const h = (await (await fetch(`${url}/health`)).json()) as { warm?: { spares: number } };
  return (h.warm?.spares ?? 0) >= 1;
}
