/**
 * Issue 5 figures: the WebRTC transport at 1280x720, 30 fps, on loopback, with headless
 * Chromium viewers (kit-webrtc.js) and the same real parts as the integration tests
 * (test/helpers/webrtc-harness.ts): Xvfb + headful Chromium + WebRtcHub in this process.
 *
 * - glass-to-glass latency: the page paints Date.now() as a bit pattern every animation frame;
 *   the viewer reads it from each presented video frame and compares with the clock.
 * - delivered frame rate: framesDecoded per second in the viewers' getStats, 1 and 10 viewers.
 * - CPU: the H.264 ffmpeg (its /proc stat), and this process (the "daemon" side: werift, SRTP)
 *   with 1 and with 10 viewers. Reference for the encoder: the same encode fed with the
 *   framebuffer piped in as rawvideo (ffmpeg + the copying process), the alternative to x11grab.
 * - offer to first decoded frame, with the encoder cold (first viewer) and warm.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { createSocket, type Socket } from 'node:dgram';
import { launchProcess } from '../src/util/process.js';
import { ffmpegArgs } from '../src/liveview/webrtc/encoder.js';
import { RtcSession, ViewerBrowser, ffmpegPids, sleep, waitFor, type Viewer } from '../test/helpers/webrtc-harness.js';
import { stats, fmt } from './lib.js';
import type { Row } from './core.js';

const W = 1280;
const H = 720;
const BITS = 32;
const BLOCK = 36;
const WINDOW_MS = 10_000;

/**
 * An animating page, built the way pages usually animate (DOM and CSS, composited layers):
 * static text, a box sliding and changing colour, a spinning square, and the clock as 32
 * black/white blocks (24 bits of Date.now() ms + an 8-bit XOR check) in a small canvas at the
 * top left, repainted every animation frame.
 */
export const CLOCK_PAGE = `<!doctype html><html><head><style>
  body { margin: 0; overflow: hidden; background: #20304a; color: #c8d0e0; font: 20px sans-serif; }
  #text { position: fixed; left: 40px; top: 80px; line-height: 28px; }
  #box { position: fixed; left: 0; top: 300px; width: 160px; height: 160px; background: #e05050; animation: slide 3s linear infinite alternate, hue 5s linear infinite; }
  #spin { position: fixed; right: 120px; top: 120px; width: 120px; height: 120px; background: #50c080; animation: spin 2s linear infinite; }
  @keyframes slide { from { transform: translateX(40px); } to { transform: translateX(${W - 240}px); } }
  @keyframes hue { to { filter: hue-rotate(360deg); } }
  @keyframes spin { to { transform: rotate(360deg); } }
</style></head><body>
<canvas id="c" width="${BITS * BLOCK}" height="${BLOCK}" style="position:fixed;left:0;top:0"></canvas>
<div id="text"></div><div id="box"></div><div id="spin"></div>
<script>
  text.innerHTML = Array.from({ length: 20 }, (_, i) => 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor ' + i).join('<br>');
  const x = c.getContext('2d');
  function frame() {
    const t = Date.now() % 16777216, chk = (t ^ (t >>> 8) ^ (t >>> 16)) & 255;
    const word = t * 256 + chk;
    for (let i = 0; i < ${BITS}; i++) {
      const bit = Math.floor(word / 2 ** (${BITS} - 1 - i)) % 2;
      x.fillStyle = bit ? '#fff' : '#000'; x.fillRect(i * ${BLOCK}, 0, ${BLOCK}, ${BLOCK});
    }
    requestAnimationFrame(frame);
  }
  requestAnimationFrame(frame);
</script></body></html>`;

function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks (100/s)
}

/** % of one core used by `pid` over `ms`. */
async function processCpu(pid: number, ms: number): Promise<number> {
  const t0 = cpuTicks(pid);
  const w0 = performance.now();
  await sleep(ms);
  return ((cpuTicks(pid) - t0) / 100 / ((performance.now() - w0) / 1000)) * 100;
}

/**
 * Over `ms`: frames decoded per second by each viewer, frames per second out of the encoder
 * (distinct RTP timestamps), the encoder's CPU and this process's CPU.
 */
async function deliveredFps(
  rtc: RtcSession,
  viewers: Viewer[],
  ms: number,
  codec: 'H264' | 'VP8' = 'H264',
): Promise<{ fps: number[]; encoderFps: number; selfCpu: number; encoderCpu: number }> {
  const [encoderPid] = ffmpegPids(rtc.xvfb.name);
  const sent = new Set<number>();
  const unsubscribe = rtc.hub.subscribe(codec, (p) => void sent.add(p.info.timestamp));
  // Each sample is timed at the middle of its getStats round trips (ten pages take a while).
  const a0 = performance.now();
  const d0 = await Promise.all(viewers.map((v) => v.decoded()));
  const dt0 = (a0 + performance.now()) / 2;
  const t0 = performance.now();
  const e0 = encoderPid ? cpuTicks(encoderPid) : 0;
  const c0 = process.cpuUsage();
  sent.clear();
  await sleep(ms);
  const c = process.cpuUsage(c0);
  const e1 = encoderPid ? cpuTicks(encoderPid) : 0;
  const frames = sent.size;
  const secs = (performance.now() - t0) / 1000;
  unsubscribe();
  const a1 = performance.now();
  const d1 = await Promise.all(viewers.map((v) => v.decoded()));
  const secsDecoded = ((a1 + performance.now()) / 2 - dt0) / 1000;
  return {
    fps: d1.map((d, i) => (d - d0[i]!) / secsDecoded),
    encoderFps: frames / secs,
    selfCpu: ((c.user + c.system) / 1e6 / secs) * 100,
    encoderCpu: ((e1 - e0) / 100 / secs) * 100,
  };
}

/** ms from the offer's arrival to the first presented frame, for one new viewer. */
async function timeToFirstFrame(vb: ViewerBrowser, rtc: RtcSession): Promise<number> {
  const v = await vb.open(rtc.viewerUrl, rtc.wsUrl());
  try {
    const t = await waitFor('a first frame', () => v.page.evaluate(() => ((window as any).t.first ? (window as any).t : null)), 30_000, 50);
    return t.first - t.offer;
  } finally {
    await v.close();
  }
}

/** RTP frames (distinct timestamps) per second arriving on a loopback UDP socket over `ms`. */
async function countFrames(sock: Socket, ms: number): Promise<number> {
  const seen = new Set<number>();
  const on = (m: Buffer) => void (m.length >= 12 && seen.add(m.readUInt32BE(4)));
  sock.on('message', on);
  const t0 = performance.now();
  await sleep(ms);
  sock.off('message', on);
  return seen.size / ((performance.now() - t0) / 1000);
}

/**
 * The alternative to x11grab: this process reads the framebuffer and pipes raw frames to an
 * ffmpeg with the same encoder flags. Measured: ffmpeg's CPU, the feeding process's extra CPU,
 * and the frame rate that comes out.
 */
async function rawPipe(rtc: RtcSession, ms: number): Promise<{ ffmpeg: number; feeder: number; fps: number }> {
  // This process idle (no viewer, no encoder), to subtract.
  const b0 = process.cpuUsage();
  const bw = performance.now();
  await sleep(3000);
  const b = process.cpuUsage(b0);
  const baselineSelfCpu = ((b.user + b.system) / 1e6 / ((performance.now() - bw) / 1000)) * 100;
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const args = ffmpegArgs({ codec: 'H264', display: rtc.xvfb.name, width: W, height: H, fps: 30, port: sock.address().port });
  // Same encoder and output flags, rawvideo on stdin instead of the x11grab input.
  const out = args.slice(args.indexOf('-an'));
  const proc = launchProcess('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'error', '-f', 'rawvideo', '-pixel_format', 'bgr0', '-video_size', `${W}x${H}`, '-framerate', '30', '-i', 'pipe:0', ...out], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  proc.child.stdin!.on('error', () => {});
  const sub = rtc.framebuffer.subscribe();
  let blocked = false;
  const timer = setInterval(() => {
    sub.takeDirty();
    const f = sub.frame();
    if (blocked) return;
    if (!proc.child.stdin!.write(Buffer.from(f.data.subarray(0, f.stride * f.height)))) {
      blocked = true;
      proc.child.stdin!.once('drain', () => (blocked = false));
    }
  }, 1000 / 30);
  try {
    await sleep(2000);
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    const [ffmpeg, fps] = await Promise.all([processCpu(proc.pid, ms), countFrames(sock, ms)]);
    const c = process.cpuUsage(c0);
    const self = ((c.user + c.system) / 1e6 / ((performance.now() - w0) / 1000)) * 100;
    return { ffmpeg, feeder: Math.max(0, self - baselineSelfCpu), fps };
  } finally {
    clearInterval(timer);
    sub.close();
    proc.child.stdin!.destroy();
    await proc.close(1000);
    sock.close();
  }
}

export async function benchWebRtc(log: (s: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  const load0 = loadavg()[0]!;
  const rtc = await RtcSession.start({ width: W, height: H }, { '/clock': CLOCK_PAGE });
  const vb = await ViewerBrowser.launch();
  const open: Viewer[] = [];
  try {
    await rtc.page.goto(`${rtc.origin}/clock`);
    await sleep(1000);

    // One viewer: latency, fps, encoder CPU, our CPU.
    log('webrtc: 1 viewer, 720p30 H.264');
    const first = await vb.open(rtc.viewerUrl, rtc.wsUrl());
    open.push(first);
    await first.waitDecodedOver(30);
    await sleep(2000);
    const one = await deliveredFps(rtc, [first], WINDOW_MS);
    // Latency separately: reading back every frame costs the viewer browser CPU.
    await first.page.evaluate((b, k) => (window as any).measureLatency(b, k), BITS, BLOCK);
    await sleep(WINDOW_MS);
    const lat = stats(await first.page.evaluate(() => (window as any).lat as number[]));
    const bad = await first.page.evaluate(() => (window as any).latBad as number);
    await first.close();
    open.splice(0);
    await waitFor('the encoder to stop', () => ffmpegPids(rtc.xvfb.name).length === 0, 10_000);
    log(`webrtc: latency n=${lat.n} (unreadable ${bad}) p50 ${fmt(lat.p50, 0)} p95 ${fmt(lat.p95, 0)}; fps ${fmt(one.fps[0]!, 1)}; ffmpeg ${fmt(one.encoderCpu, 1)}%; self ${fmt(one.selfCpu, 1)}%`);
    rows.push({ figure: 'glass-to-glass latency p50, H.264 720p30, loopback (ms)', handoff: fmt(lat.p50, 0), reference: '', ratio: '', target: '<= 150', ok: lat.p50 <= 150 });
    rows.push({ figure: 'glass-to-glass latency p95, H.264 720p30, loopback (ms)', handoff: fmt(lat.p95, 0), reference: '', ratio: '', target: '<= 250', ok: lat.p95 <= 250 });
    rows.push({ figure: 'delivered fps, animating page, 1 viewer (ref: frames out of the encoder)', handoff: fmt(one.fps[0]!, 1), reference: fmt(one.encoderFps, 1), ratio: fmt(one.fps[0]! / one.encoderFps), target: '>= 28', ok: one.fps[0]! >= 28 });

    // The x11grab encoder against the framebuffer piped in (same flags otherwise).
    const raw = await rawPipe(rtc, WINDOW_MS);
    const rawTotal = raw.ffmpeg + raw.feeder;
    log(`webrtc: rawvideo pipe: ffmpeg ${fmt(raw.ffmpeg, 1)}% + feeder ${fmt(raw.feeder, 1)}% at ${fmt(raw.fps, 1)} fps out`);
    rows.push({
      figure: 'H.264 encoder 720p30 CPU, x11grab (ref: framebuffer piped in as rawvideo: ffmpeg + the feeding process) (% of a core)',
      handoff: fmt(one.encoderCpu, 1),
      reference: `${fmt(rawTotal, 1)} (${fmt(raw.fps, 1)} fps)`,
      ratio: fmt(one.encoderCpu / rawTotal),
      target: '<= 40%',
      ok: one.encoderCpu <= 40,
    });

    // Ten viewers.
    log('webrtc: 10 viewers');
    const more = await Promise.all(Array.from({ length: 10 }, () => vb.open(rtc.viewerUrl, rtc.wsUrl())));
    open.push(...more);
    await Promise.all(open.map((v) => v.waitDecodedOver(30, 60_000)));
    await sleep(2000);
    const ten = await deliveredFps(rtc, open, WINDOW_MS);
    const encoderFps = ten.encoderFps;
    const fps10 = stats(ten.fps);
    const perViewer = (ten.selfCpu - one.selfCpu) / 9;
    log(`webrtc: 10 viewers fps min ${fmt(Math.min(...ten.fps), 1)} p50 ${fmt(fps10.p50, 1)}; self ${fmt(ten.selfCpu, 1)}% (${fmt(perViewer, 2)}% per added viewer); ffmpeg ${fmt(ten.encoderCpu, 1)}% at ${fmt(encoderFps, 1)} fps out`);
    rows.push({ figure: 'delivered fps, animating page, 10 viewers (slowest viewer; ref: frames out of the encoder)', handoff: fmt(Math.min(...ten.fps), 1), reference: fmt(encoderFps, 1), ratio: fmt(Math.min(...ten.fps) / encoderFps), target: '>= 28', ok: Math.min(...ten.fps) >= 28 });
    rows.push({ figure: 'daemon CPU per additional viewer, 720p30 (% of a core)', handoff: fmt(perViewer, 2), reference: '', ratio: '', target: '<= 3%', ok: perViewer <= 3 });
    await Promise.all(open.splice(0).map((v) => v.close()));

    // Offer to first frame: cold (this viewer starts the encoder) and warm (it already runs).
    log('webrtc: offer to first frame');
    await waitFor('the encoder to stop', () => ffmpegPids(rtc.xvfb.name).length === 0, 10_000);
    const cold: number[] = [];
    for (let i = 0; i < 5; i++) {
      cold.push(await timeToFirstFrame(vb, rtc));
      await waitFor('the encoder to stop', () => ffmpegPids(rtc.xvfb.name).length === 0, 10_000);
    }
    const keeper = await vb.open(rtc.viewerUrl, rtc.wsUrl());
    open.push(keeper);
    await keeper.waitDecodedOver(5);
    const warm: number[] = [];
    for (let i = 0; i < 5; i++) warm.push(await timeToFirstFrame(vb, rtc));
    const all = stats([...cold, ...warm]);
    log(`webrtc: first frame cold ${cold.map((n) => n.toFixed(0)).join(', ')} ms; warm ${warm.map((n) => n.toFixed(0)).join(', ')} ms`);
    rows.push({ figure: 'offer to first decoded frame p50, encoder cold and warm (ms)', handoff: fmt(all.p50, 0), reference: '', ratio: '', target: '<= 1500', ok: all.p50 <= 1500 });
    rows.push({ figure: 'offer to first decoded frame p50, encoder cold / warm (ms)', handoff: `${fmt(stats(cold).p50, 0)} / ${fmt(stats(warm).p50, 0)}`, reference: '', ratio: '', target: 'report', ok: null });
    await Promise.all(open.splice(0).map((v) => v.close()));

    // VP8 for viewers without H.264, for the record.
    log('webrtc: VP8');
    const vp8 = await vb.open(rtc.viewerUrl, rtc.wsUrl(), { codecs: ['VP8'] });
    open.push(vp8);
    await vp8.waitDecodedOver(30);
    await sleep(2000);
    const v8 = await deliveredFps(rtc, [vp8], WINDOW_MS, 'VP8');
    log(`webrtc: VP8 fps ${fmt(v8.fps[0]!, 1)} (${fmt(v8.encoderFps, 1)} out), ffmpeg ${fmt(v8.encoderCpu, 1)}%`);
    rows.push({ figure: 'VP8 encoder 720p30 CPU / delivered fps, 1 viewer', handoff: `${fmt(v8.encoderCpu, 1)}% / ${fmt(v8.fps[0]!, 1)}`, reference: `${fmt(v8.encoderFps, 1)} fps out`, ratio: '', target: 'report', ok: null });
    rows.push({ figure: 'load average (1 min) at start / end of these figures, 2 cores shared', handoff: `${fmt(load0, 1)} / ${fmt(loadavg()[0]!, 1)}`, reference: '', ratio: '', target: 'report', ok: null });
  } finally {
    await Promise.all(open.map((v) => v.close()));
    await vb.close();
    await rtc.close();
  }
  return rows;
}
