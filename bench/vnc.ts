/**
 * Issue 3 figures: the daemon's VNC server against x11vnc on the same Xvfb display, read by the
 * same client (test/helpers/vnc-raw.ts) with the same encoding in the same run.
 */
import Database from 'better-sqlite3';
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { startDaemon } from '../test/helpers/daemon.js';
import { displayOfXvfb, freePort } from '../test/helpers/vnc.js';
import { Enc, RawRfb } from '../test/helpers/vnc-raw.js';
import { launchProcess, type LaunchedProcess } from '../src/util/process.js';
import type { Row } from './core.js';
import { RawCdp, fmt, stats } from './lib.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PASSWORD = 'benchvnc';
/** The latency probe: a fixed square whose colour the agent changes; sampled at its centre. */
const PROBE = { x: 1200, y: 140 };

/** A typical page: a header, navigation, three columns of text, two photo-like images, a sidebar. */
function typicalPage(): string {
  const words =
    'handoff keeps a real browser for agents and lets a human step in over VNC or the live view when a login, a captcha or a judgement call needs one while the audit log records who did what and when'.split(
      ' ',
    );
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const para = (n: number) => Array.from({ length: n }, () => words[Math.floor(rnd() * words.length)]).join(' ') + '.';
  const col = (title: string) =>
    `<div style="flex:1;padding:0 14px"><h2 style="font:bold 20px serif;color:#1a3d6d">${title}</h2>${[60, 45, 70, 50].map((n) => `<p>${para(n)}</p>`).join('')}</div>`;
  return `<!doctype html><html><head><meta charset="utf-8"><title>bench</title></head>
<body style="margin:0;font:14px/1.45 sans-serif;color:#222;background:#fafafa;overflow:hidden">
<div style="height:56px;background:#1a3d6d;color:#fff;font:bold 24px sans-serif;padding:12px 20px;box-sizing:border-box">The Daily Handoff</div>
<div style="height:32px;background:#e8eef6;padding:6px 20px;box-sizing:border-box;color:#1a3d6d">World · Technology · Science · Culture · Opinion · Sport</div>
<div style="display:flex">
  <div style="width:300px;padding:14px">
    <canvas id="a" width="280" height="180"></canvas>
    <p>${para(30)}</p>
    <canvas id="b" width="280" height="160"></canvas>
  </div>
  ${col('Markets steady')}${col('New browser host')}
  <div style="width:200px;background:#fff3d6;padding:10px;box-sizing:border-box;height:640px">${[20, 25, 15].map((n) => `<p style="color:#7a4a00">${para(n)}</p>`).join('')}</div>
</div>
<div id="probe" style="position:fixed;left:${PROBE.x - 60}px;top:${PROBE.y - 60}px;width:120px;height:120px;background:#000"></div>
<script>
  for (const [id, hue] of [['a', 20], ['b', 200]]) {
    const c = document.getElementById(id).getContext('2d');
    const g = c.createLinearGradient(0, 0, 0, c.canvas.height);
    g.addColorStop(0, 'hsl(' + (hue + 180) + ',60%,75%)');
    g.addColorStop(1, 'hsl(' + hue + ',55%,45%)');
    c.fillStyle = g;
    c.fillRect(0, 0, c.canvas.width, c.canvas.height);
    for (let i = 0; i < 40; i++) {
      const x = (i * 97) % c.canvas.width, y = (i * 53) % c.canvas.height, r = 10 + (i * 7) % 30;
      const rg = c.createRadialGradient(x, y, 1, x, y, r);
      rg.addColorStop(0, 'hsla(' + (hue + i * 9) + ',70%,60%,0.9)');
      rg.addColorStop(1, 'hsla(' + (hue + i * 9) + ',70%,60%,0)');
      c.fillStyle = rg;
      c.fillRect(x - r, y - r, 2 * r, 2 * r);
    }
  }
</script></body></html>`;
}

async function attachPage(cdp: RawCdp): Promise<string> {
  const { targetInfos } = await cdp.send('Target.getTargets');
  const page = targetInfos.find((t: any) => t.type === 'page');
  const { sessionId } = await cdp.send('Target.attachToTarget', { targetId: page.targetId, flatten: true });
  return sessionId;
}

function xvfbOf(stateDir: string, sessionId: string): { pid: number; dir: string } {
  const db = new Database(join(stateDir, 'handoff.db'), { readonly: true });
  const row = db.prepare(`SELECT pid, path FROM owned WHERE kind = 'xvfb' AND session_id = ?`).get(sessionId) as { pid: number; path: string };
  db.close();
  return { pid: row.pid, dir: row.path };
}

/**
 * The Xvfb server itself: the journaled pid is the sandbox launcher's (env, then bwrap), whose
 * child is Xvfb (no pid namespace for Xvfb: see util/sandbox.ts). Its X socket is the host's
 * (/tmp/.X11-unix is bound in and the network namespace, abstract sockets included, is shared),
 * so x11vnc outside the sandbox reaches the very display the daemon serves.
 */
function xvfbServerPid(launcherPid: number): number {
  const children = (pid: number) =>
    readdirSync('/proc')
      .filter((e) => /^\d+$/.test(e))
      .flatMap((e) => {
        try {
          const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
          const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          return Number(f[1]) === pid ? [{ pid: Number(e), comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) }] : [];
        } catch {
          return []; // gone meanwhile
        }
      });
  let pid = launcherPid;
  for (let depth = 0; depth < 3; depth++) {
    if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'Xvfb') return pid;
    const next = children(pid)[0];
    if (!next) break;
    pid = next.pid;
  }
  throw new Error(`no Xvfb process under pid ${launcherPid}`);
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ is 100 on Linux
}

async function waitForPort(port: number, proc: LaunchedProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (proc.hasExited) throw new Error(`x11vnc exited: ${proc.stderrTail()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        // Wait for the version so x11vnc is past its startup, then leave politely.
        s.once('data', () => {
          s.destroy();
          resolve(true);
        });
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`x11vnc did not listen: ${proc.stderrTail()}`);
}

/** Full-frame updates per second: non-incremental requests for the whole screen, one at a time. */
async function fullFrameRate(port: number, password: string | null, encoding: number, seconds: number): Promise<number> {
  const c = await RawRfb.connect(port, password);
  try {
    c.setEncodings([encoding]);
    for (let i = 0; i < 3; i++) {
      c.request(false);
      await c.readUpdate();
    }
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < seconds * 1000) {
      c.request(false);
      await c.readUpdate();
      n++;
    }
    return n / ((performance.now() - t0) / 1000);
  } finally {
    c.destroy();
  }
}

/** Bytes of the first full frame a fresh connection gets with Tight at JPEG quality level `q`. */
async function tightFrameBytes(port: number, password: string | null, q: number): Promise<number> {
  const c = await RawRfb.connect(port, password);
  try {
    c.setEncodings([Enc.Tight, Enc.QualityLevel0 + q]);
    c.request(false);
    return (await c.readUpdate()).bytes;
  } finally {
    c.destroy();
  }
}

/**
 * Incremental update latency: with an incremental request outstanding, the agent recolours the
 * probe over CDP; the time until this client has the new colour at the probe's centre.
 */
class LatencyProbe {
  private constructor(readonly c: RawRfb) {}
  static async open(port: number, password: string | null): Promise<LatencyProbe> {
    const c = await RawRfb.connect(port, password);
    c.setEncodings([Enc.Raw]);
    c.request(false);
    await c.readUpdate();
    return new LatencyProbe(c);
  }
  private shown(): number {
    return this.c.pixels[PROBE.y * this.c.width + PROBE.x]!;
  }
  /** Brings this client up to `colour` (changes made while the other client was measured). */
  async sync(colour: number): Promise<void> {
    const t0 = performance.now();
    while (this.shown() !== colour) {
      if (performance.now() - t0 > 30_000) throw new Error(`probe shows ${this.shown().toString(16)}, not ${colour.toString(16)}`);
      this.c.request(true);
      await this.c.readUpdate();
    }
  }
  async measure(change: () => void, colour: number): Promise<number> {
    this.c.request(true);
    await sleep(40); // the request has arrived and the server is idle
    const t0 = performance.now();
    change();
    for (;;) {
      await this.c.readUpdate();
      if (this.shown() === colour) return performance.now() - t0;
      this.c.request(true);
    }
  }
  close(): void {
    this.c.destroy();
  }
}

/** A TCP relay adding `oneWayMs` each way (a WAN's round trip on loopback). */
async function delayedRelay(target: number, oneWayMs: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((a) => {
    const b = net.connect(target, '127.0.0.1');
    for (const [from, to] of [[a, b], [b, a]] as const) {
      sockets.add(from);
      from.setNoDelay(true);
      from.on('data', (d) => void setTimeout(() => to.destroyed || to.write(d), oneWayMs));
      from.on('close', () => setTimeout(() => to.destroy(), oneWayMs));
      from.on('error', () => {});
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((r) => (sockets.forEach((s) => s.destroy()), server.close(() => r()))),
  };
}

/**
 * Updates per second and bytes per second on an animating page (ZRLE): request-per-frame (one
 * incremental request outstanding, as RFC 6143 clients do) against rfbproto ContinuousUpdates
 * (noVNC, TigerVNC), where the server sends as the socket drains and nobody waits a round trip.
 */
async function updateRate(port: number, continuous: boolean, seconds: number): Promise<{ fps: number; kbps: number }> {
  const c = await RawRfb.connect(port, PASSWORD);
  try {
    c.setEncodings([Enc.ZRLE, ...(continuous ? [Enc.ContinuousUpdates, Enc.Fence] : [])]);
    c.request(false);
    await c.readUpdate();
    if (continuous) c.continuousUpdates(true);
    let n = 0;
    let bytes = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < seconds * 1000) {
      if (!continuous) c.request(true);
      const u = await c.readUpdate();
      n++;
      bytes += u.bytes;
    }
    const secs = (performance.now() - t0) / 1000;
    return { fps: n / secs, kbps: (bytes * 8) / 1000 / secs };
  } finally {
    c.destroy();
  }
}

export async function benchVnc(log: (s: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  const loadAtStart = loadavg()[0]!;
  const vncPort = await freePort();
  const x11Port = await freePort();
  const daemon = await startDaemon({ args: ['--vnc-port', String(vncPort)] });
  let x11vnc: LaunchedProcess | null = null;
  let agent: RawCdp | null = null;
  try {
    // On a loaded machine Chromium can miss its 15 s start deadline (browser_failed): try again.
    for (let attempt = 1; !agent; attempt++) {
      try {
        agent = await RawCdp.open(`${daemon.wsUrl}/?session=vncbench&auto_close=false&enable_vnc=true&vnc_password=${PASSWORD}`);
      } catch (e) {
        if (attempt === 3 || !/browser_failed/.test(String(e))) throw e;
        log(`session start failed (${(e as Error).message}), again`);
      }
    }
    const sid = await attachPage(agent);
    await agent.send('Page.enable', {}, sid);
    await agent.send('Page.navigate', { url: `data:text/html;charset=utf-8,${encodeURIComponent(typicalPage())}` }, sid);
    await sleep(1500);

    log('VNC continuous updates vs request-per-frame on an animating page (3 s each, loopback and 60 ms RTT)...');
    await agent.send(
      'Runtime.evaluate',
      { expression: `window.__spin = true; (function f(t) { if (!window.__spin) return; document.getElementById('probe').style.background = 'hsl(' + Math.round(t / 4) % 360 + ',70%,50%)'; requestAnimationFrame(f); })(0)` },
      sid,
    );
    await sleep(300);
    const relay = await delayedRelay(vncPort, 30);
    try {
      for (const [where, port] of [['loopback', vncPort], ['60 ms RTT', relay.port]] as const) {
        const req = await updateRate(port, false, 3);
        const cu = await updateRate(port, true, 3);
        rows.push({ figure: `VNC updates/s, animating page, ${where}: continuous vs request-per-frame`, handoff: fmt(cu.fps, 1), reference: fmt(req.fps, 1), ratio: fmt(cu.fps / req.fps), target: where === 'loopback' ? 'report' : '> 1.00x', ok: where === 'loopback' ? null : cu.fps > req.fps });
        rows.push({ figure: `VNC kbit/s, animating page, ${where}: continuous vs request-per-frame`, handoff: fmt(cu.kbps, 0), reference: fmt(req.kbps, 0), ratio: fmt(cu.kbps / req.kbps), target: 'report', ok: null });
      }
    } finally {
      await relay.close();
      // The latency probe starts from black (it waits for the colour it expects).
      await agent.send('Runtime.evaluate', { expression: "window.__spin = false; document.getElementById('probe').style.background = '#000000'" }, sid);
    }

    try {
      const xvfb = xvfbOf(daemon.stateDir, 'vncbench');
      const display = displayOfXvfb(xvfbServerPid(xvfb.pid));
      x11vnc = launchProcess('x11vnc', [
        '-display', `:${display}`, '-auth', join(xvfb.dir, 'Xauthority'), '-rfbport', String(x11Port),
        '-shared', '-forever', '-nopw', '-localhost', '-quiet',
      ]);
      await waitForPort(x11Port, x11vnc);
      const servers = [
        { name: 'handoff', port: vncPort, password: PASSWORD as string | null },
        { name: 'x11vnc', port: x11Port, password: null },
      ];

      log('VNC full-frame rate (Raw, ZRLE; 3 rounds of 1.5 s each, interleaved)...');
      for (const [encName, enc] of [['Raw', Enc.Raw], ['ZRLE', Enc.ZRLE]] as const) {
        const rate: Record<string, number[]> = { handoff: [], x11vnc: [] };
        for (let round = 0; round < 3; round++)
          for (const s of servers) rate[s.name]!.push(await fullFrameRate(s.port, s.password, enc, 1.5));
        const h = rate.handoff!.reduce((a, b) => a + b) / rate.handoff!.length;
        const x = rate.x11vnc!.reduce((a, b) => a + b) / rate.x11vnc!.length;
        rows.push({ figure: `VNC full 1280x720 frames/s, ${encName}`, handoff: fmt(h, 1), reference: fmt(x, 1), ratio: fmt(h / x), target: '>= 1.00x', ok: h / x >= 1 });
      }

      log('VNC incremental update latency (Raw, 25 changes each, alternating)...');
      const probes = { handoff: await LatencyProbe.open(vncPort, PASSWORD), x11vnc: await LatencyProbe.open(x11Port, null) };
      const lat: Record<string, number[]> = { handoff: [], x11vnc: [] };
      let colour = 0x000000;
      for (let i = 0; i < 50; i++) {
        const name = i % 2 === 0 ? 'handoff' : 'x11vnc';
        const probe = probes[name];
        await probe.sync(colour);
        colour = ((i + 1) * 0x2f4f6f + 0x102030) & 0xffffff;
        const css = `#${colour.toString(16).padStart(6, '0')}`;
        const change = () => void agent!.send('Runtime.evaluate', { expression: `document.getElementById('probe').style.background = '${css}'` }, sid);
        lat[name]!.push(await probe.measure(change, colour));
      }
      const lh = stats(lat.handoff!);
      const lx = stats(lat.x11vnc!);
      rows.push({ figure: 'VNC incremental update latency p50 (ms)', handoff: fmt(lh.p50, 1), reference: fmt(lx.p50, 1), ratio: fmt(lh.p50 / lx.p50), target: '<= 1.00x', ok: lh.p50 <= lx.p50 });
      rows.push({ figure: 'VNC incremental update latency p95 (ms)', handoff: fmt(lh.p95, 1), reference: fmt(lx.p95, 1), ratio: fmt(lh.p95 / lx.p95), target: 'report', ok: null });
      probes.handoff.close();
      probes.x11vnc.close();

      log('VNC Tight/JPEG bytes per full frame...');
      for (const q of [6, 8]) {
        const h = await tightFrameBytes(vncPort, PASSWORD, q);
        const x = await tightFrameBytes(x11Port, null, q);
        rows.push({
          figure: `VNC Tight JPEG q${q}, first full frame of a typical page (KB)`,
          handoff: fmt(h / 1024, 1),
          reference: fmt(x / 1024, 1),
          ratio: fmt(h / x),
          target: q === 6 ? '<= 150 KB' : 'report',
          ok: q === 6 ? h <= 150 * 1024 : null,
        });
      }

      log('idle CPU with a connected viewer (10 s)...');
      const idleViewers = [await RawRfb.connect(vncPort, PASSWORD), await RawRfb.connect(x11Port, null)];
      for (const c of idleViewers) {
        c.setEncodings([Enc.Raw]);
        c.request(false);
        await c.readUpdate();
        c.request(true); // outstanding, as a real viewer keeps it
        void c.readUpdate().catch(() => {});
      }
      await sleep(1000);
      const d0 = cpuSeconds(daemon.proc.pid!);
      const x0 = cpuSeconds(x11vnc.pid);
      const t0 = performance.now();
      await sleep(10_000);
      const secs = (performance.now() - t0) / 1000;
      const dCpu = ((cpuSeconds(daemon.proc.pid!) - d0) / secs) * 100;
      const xCpu = ((cpuSeconds(x11vnc.pid) - x0) / secs) * 100;
      for (const c of idleViewers) c.destroy();
      rows.push({ figure: 'idle CPU, static page, 1 VNC viewer (% of a core)', handoff: fmt(dCpu, 2), reference: fmt(xCpu, 2), ratio: '', target: '< 2%', ok: dCpu < 2 });
    } catch (e) {
      // No silent skip: without the reference these figures mean nothing.
      throw new Error(`x11vnc reference failed: ${(e as Error).message}`);
    }
    rows.push({ figure: 'machine load average (1 min) at the start / end of this suite', handoff: `${fmt(loadAtStart, 1)} / ${fmt(loadavg()[0]!, 1)}`, reference: `${cpus().length} cores`, ratio: '', target: 'report', ok: null });
  } finally {
    await agent?.close();
    await x11vnc?.close();
    await daemon.cleanup();
  }
  return rows;
}

// `node --import tsx bench/vnc.ts` runs just these figures.
if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await benchVnc((s) => process.stdout.write(`bench: ${s}\n`));
  for (const r of rows) process.stdout.write(`| ${r.figure} | ${r.handoff} | ${r.reference} | ${r.ratio} | ${r.target} | ${r.ok === null ? '' : r.ok ? 'yes' : 'NO'} |\n`);
}
