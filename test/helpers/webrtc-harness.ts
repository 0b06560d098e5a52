/**
 * Real parts for the WebRTC transport's tests and bench: an Xvfb display with a headful
 * Chromium on it (the "agent" drives it over CDP), the display's Framebuffer and XInput, a
 * minimal ViewerSession over them, a WebRtcHub behind a WebSocket server, and a headless
 * Chromium that loads kit-webrtc.js as the viewer.
 *
 * Once the daemon routes /live/TOKEN/webrtc, a test can swap RtcSession for a daemon session:
 * viewers only need `wsUrl` and `viewerUrl`, and encoder pids are found by command line
 * (ffmpegPids), not through the hub.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync, readdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { XvfbDisplay } from '../../src/display/xvfb.js';
import { WindowFitter } from '../../src/display/window.js';
import { Framebuffer } from '../../src/display/framebuffer.js';
import { XInput } from '../../src/display/input.js';
import { ChromiumBrowser } from '../../src/browser/chromium.js';
import { connectPipe } from '../../src/cdp/pipe-mux.js';
import { pipeTransport } from './pipe-client.js';
import { silentLogger, type Logger } from '../../src/util/logger.js';
import type { Transport, ViewerHandle, ViewerSession, ViewerState } from '../../src/liveview/types.js';
import { WebRtcHub, type WebRtcOptions } from '../../src/liveview/webrtc/hub.js';

export const CHROMIUM = '/usr/lib/chromium/chromium';
const KIT = readFileSync(fileURLToPath(new URL('../../dist/http/assets/kit-webrtc.js', import.meta.url)), 'utf8');

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value (a liveness bound, not a timing assertion). */
export async function waitFor<T>(what: string, fn: () => Promise<T> | T, timeoutMs = 30_000, everyMs = 100): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(everyMs);
  }
}

/** ffmpeg processes grabbing this X display (found by command line, so a daemon's work too). */
export function ffmpegPids(displayName: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let cmd: string[];
    try {
      cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!cmd[0]?.endsWith('ffmpeg')) continue;
    const i = cmd.indexOf('-i');
    if (cmd.includes('x11grab') && i >= 0 && cmd[i + 1] === displayName) out.push(Number(d));
  }
  return out;
}

export function isAlive(pid: number): boolean {
  try {
    // A zombie still answers kill(0); its state letter says it is gone.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

/** The parts of a session a transport sees, with knobs for tests (control, end, handoff). */
export class TestSession implements ViewerSession {
  readonly sessionId = 'webrtc-test';
  readonly runId = 'run-1';
  readonly viewers: Record<Transport, number> = { screencast: 0, webrtc: 0, vnc: 0 };
  readonly joins: Array<{ transport: Transport; sourceIp: string }> = [];
  readonly handoffs: Array<{ outcome: string; by: Transport }> = [];
  control = true;
  private readonly stateListeners = new Set<() => void>();
  private readonly handles = new Set<{ control: Set<(c: boolean) => void>; end: Set<(r: string) => void> }>();

  constructor(
    readonly framebuffer: Framebuffer,
    readonly input: XInput,
  ) {}

  join(opts: { transport: Transport; sourceIp: string; controlLink?: boolean }): ViewerHandle {
    this.joins.push({ transport: opts.transport, sourceIp: opts.sourceIp });
    this.viewers[opts.transport]++;
    const entry = { control: new Set<(c: boolean) => void>(), end: new Set<(r: string) => void>() };
    this.handles.add(entry);
    let left = false;
    const session = this;
    this.changed();
    return {
      get canControl() {
        return session.control;
      },
      onControlChange: (l) => void entry.control.add(l),
      onEnd: (l) => void entry.end.add(l),
      completeHandoff: (outcome) => (this.completeHandoff(outcome, opts.transport), true),
      leave: () => {
        if (left) return;
        left = true;
        this.handles.delete(entry);
        this.viewers[opts.transport]--;
        if (this.viewers.webrtc + this.viewers.screencast + this.viewers.vnc === 0) this.input.releaseAll();
        this.changed();
      },
    };
  }

  viewerState(): ViewerState {
    return { attachment: this.control ? 'human' : 'agent', handoff: null, viewers: { ...this.viewers }, downloads: 0 };
  }

  onViewerStateChange(listener: () => void): () => void {
    this.stateListeners.add(listener);
    return () => void this.stateListeners.delete(listener);
  }

  completeHandoff(outcome: 'done' | 'failed', by: Transport): void {
    this.handoffs.push({ outcome, by });
  }

  setControl(control: boolean): void {
    this.control = control;
    for (const h of this.handles) for (const l of h.control) l(control);
    this.changed();
  }

  end(reason: string): void {
    for (const h of [...this.handles]) for (const l of h.end) l(reason);
  }

  private changed(): void {
    for (const l of this.stateListeners) l();
  }
}

export interface RtcSessionOptions {
  width: number;
  height: number;
  logger?: Logger;
  /** Extra hubs on other paths, e.g. one with credentials: path -> options. */
  hubs?: Record<string, Partial<WebRtcOptions>>;
}

/** A page the session's browser shows, by path. */
export type PageMap = Record<string, string>;

/**
 * One session's worth of real parts behind one HTTP server: `/webrtc` (and any extra hub
 * paths) are the signalling sockets, `/viewer.html` the viewer page, other paths are pages for
 * the session's browser.
 */
export class RtcSession {
  readonly hubs = new Map<string, WebRtcHub>();
  readonly authFailures: Array<{ path: string; ip: string }> = [];
  readonly encoderEvents: Array<{ path: string; codec: string; pid: number | null }> = [];
  private constructor(
    readonly xvfb: XvfbDisplay,
    readonly chromium: ChromiumBrowser,
    readonly agent: Browser,
    readonly page: Page,
    readonly framebuffer: Framebuffer,
    readonly input: XInput,
    readonly session: TestSession,
    readonly server: Server,
    readonly wss: WebSocketServer,
    readonly origin: string,
  ) {}

  get hub(): WebRtcHub {
    return this.hubs.get('/webrtc')!;
  }
  wsUrl(path = '/webrtc'): string {
    return `${this.origin.replace('http', 'ws')}${path}`;
  }
  get viewerUrl(): string {
    return `${this.origin}/viewer.html`;
  }

  static async start(o: RtcSessionOptions, pages: PageMap): Promise<RtcSession> {
    const logger = o.logger ?? silentLogger;
    const cleanup: Array<() => Promise<unknown> | unknown> = [];
    try {
      const xvfb = await XvfbDisplay.start({ width: o.width, height: o.height, tmpRoot: '/dev/shm', logger });
      cleanup.push(() => xvfb.close());
      // The daemon's window manager: without it Chromium (no --kiosk) shows its toolbar.
      const fitter = await WindowFitter.start(xvfb, logger);
      cleanup.push(() => fitter.close());
      const routes: Record<string, string> = { ...pages, '/viewer.html': viewerPage() };
      const server = createServer((req: IncomingMessage, res: ServerResponse) => {
        const body = routes[(req.url ?? '/').split('?')[0]!];
        res.writeHead(body ? 200 : 404, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end(body ?? 'not found');
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      cleanup.push(() => new Promise((r) => server.close(r)));
      const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const chromium = await ChromiumBrowser.launch({ binary: CHROMIUM, width: o.width, height: o.height, displayEnv: xvfb.env(), logger, connect: connectPipe });
      cleanup.push(() => chromium.close());
      if (!(await fitter.whenFilled(30_000))) throw new Error('the browser window never filled the display');
      const agent = await puppeteer.connect({ transport: await pipeTransport(chromium), defaultViewport: null });
      cleanup.push(() => agent.disconnect());
      const [page] = await agent.pages();
      const framebuffer = await Framebuffer.open({ fbPath: xvfb.fbPath, display: xvfb, logger });
      cleanup.push(() => framebuffer.close());
      const input = await XInput.open({ display: xvfb, logger });
      cleanup.push(() => input.close());
      const session = new TestSession(framebuffer, input);
      const wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
      cleanup.push(() => new Promise((r) => wss.close(r)));
      const rtc = new RtcSession(xvfb, chromium, agent, page!, framebuffer, input, session, server, wss, origin);
      for (const [path, extra] of Object.entries({ '/webrtc': {}, ...(o.hubs ?? {}) })) {
        const hub = new WebRtcHub(session, {
          display: { name: xvfb.name, authFile: xvfb.authFile },
          width: o.width,
          height: o.height,
          credentials: { username: null, password: '' },
          host: '127.0.0.1',
          portRange: null,
          iceServers: [],
          onAuthFailed: (ip) => rtc.authFailures.push({ path, ip }),
          onEncoderProcess: (codec, pid) => rtc.encoderEvents.push({ path, codec, pid }),
          logger,
          ...extra,
        });
        rtc.hubs.set(path, hub);
      }
      server.on('upgrade', (req, socket, head) => {
        const hub = rtc.hubs.get((req.url ?? '').split('?')[0]!);
        if (!hub) return socket.destroy();
        wss.handleUpgrade(req, socket, head, (ws) => {
          const ip = req.socket.remoteAddress ?? '';
          hub.addViewer(ws, ip, () => session.join({ transport: 'webrtc', sourceIp: ip }));
        });
      });
      rtc.cleanup = cleanup;
      return rtc;
    } catch (e) {
      for (const c of cleanup.reverse()) await Promise.resolve(c()).catch(() => {});
      throw e;
    }
  }

  private cleanup: Array<() => Promise<unknown> | unknown> = [];
  private closing?: Promise<void>;

  /** Hubs first (viewers, ffmpeg), then everything else in reverse order of creation. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const hub of this.hubs.values()) await hub.close();
      for (const c of this.cleanup.reverse()) await Promise.resolve(c()).catch(() => {});
    })();
    return this.closing;
  }
}

/** The viewer page: kit-webrtc.js inlined, a video, and helpers the tests call. */
export function viewerPage(): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>viewer</title></head>
<body style="margin:0;background:#000">
<!-- Shown small: ten viewers in one headless browser must not spend the CPU on compositing
     ten 720p videos; decoding and read-back use the full-size frames. -->
<video id="v" data-handoff-surface style="width:320px;height:180px"></video>
<canvas id="c" style="display:none"></canvas>
<script>${KIT}</script>
<script>
  window.states = []; window.msgs = []; window.stats = null; window.h = null;
  /** performance.now() of the offer's arrival and of the first frame presented. */
  window.t = { offer: null, first: null };
  document.getElementById('v').requestVideoFrameCallback(() => (t.first = performance.now()));
  window.start = (url, o) => {
    window.h = HandoffWebRTC.connect(document.getElementById('v'), url, Object.assign({}, o, {
      onState: (s) => states.push(s), onStats: (s) => (window.stats = s),
      onMessage: (m) => { if (m.type === 'offer') t.offer = performance.now(); msgs.push(m); },
    }));
  };
  /**
   * Glass-to-glass samples (bench): the page under test paints Date.now() as a row of 32
   * black/white blocks (24 bits of ms + an 8-bit XOR check) at the top left; each presented
   * frame is read back and compared with the wall clock of its expected display time.
   */
  window.lat = []; window.latBad = 0;
  window.measureLatency = (bits, block) => {
    const v = document.getElementById('v'); const c = document.createElement('canvas');
    c.width = bits * block; c.height = block;
    const x = c.getContext('2d', { willReadFrequently: true });
    const step = (now, meta) => {
      x.drawImage(v, 0, 0, c.width, c.height, 0, 0, c.width, c.height);
      const d = x.getImageData(0, 0, c.width, c.height).data;
      let word = 0;
      for (let i = 0; i < bits; i++) {
        const o = ((block >> 1) * c.width + i * block + (block >> 1)) * 4;
        word = (word * 2) + ((d[o] + d[o + 1] + d[o + 2]) / 3 > 127 ? 1 : 0);
      }
      const ms = Math.floor(word / 256); const chk = word % 256;
      if (((ms ^ (ms >>> 8) ^ (ms >>> 16)) & 0xff) === chk) {
        const shown = performance.timeOrigin + meta.expectedDisplayTime;
        lat.push(((Math.round(shown) % 16777216) - ms + 16777216) % 16777216);
      } else latBad++;
      v.requestVideoFrameCallback(step);
    };
    v.requestVideoFrameCallback(step);
  };
  /** framesDecoded straight from getStats (not the kit's once-a-second sample). */
  window.decoded = async () => {
    if (!h || !h.pc) return 0;
    let n = 0;
    (await h.pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') n = s.framesDecoded || 0; });
    return n;
  };
  /** The decoded picture's RGB at framebuffer points. */
  window.sample = (points) => {
    const v = document.getElementById('v'); const c = document.getElementById('c');
    if (!v.videoWidth) return null;
    c.width = v.videoWidth; c.height = v.videoHeight;
    const x = c.getContext('2d', { willReadFrequently: true });
    x.drawImage(v, 0, 0);
    return points.map(([px, py]) => Array.from(x.getImageData(px, py, 1, 1).data.slice(0, 3)));
  };
</script></body></html>`;
}

/** The viewer page alone on 127.0.0.1:0 (for a daemon's /live/TOKEN/webrtc). */
export async function serveViewerPage(): Promise<{ url: string; close(): Promise<void> }> {
  const html = viewerPage();
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(html);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/viewer.html`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** A headless Chromium as the viewer (ten pages in one browser is fine). */
export class ViewerBrowser {
  private constructor(readonly browser: Browser) {}

  static async launch(): Promise<ViewerBrowser> {
    const browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'],
    });
    return new ViewerBrowser(browser);
  }

  /** Opens the viewer page and connects it. */
  async open(viewerUrl: string, wsUrl: string, opts: { username?: string; password?: string; codecs?: string[] } = {}): Promise<Viewer> {
    const page = await this.browser.newPage();
    await page.goto(viewerUrl);
    await page.evaluate((url, o) => (window as any).start(url, o), wsUrl, opts);
    return new Viewer(page);
  }

  close(): Promise<void> {
    return this.browser.close();
  }
}

export interface ViewerStateSnapshot {
  phase: string;
  connection: string;
  codec: string | null;
  canControl: boolean;
  error: { code: string; message: string } | null;
  closeCode: number | null;
}

export class Viewer {
  constructor(readonly page: Page) {}

  decoded(): Promise<number> {
    return this.page.evaluate(() => (window as any).decoded());
  }
  messages(): Promise<any[]> {
    return this.page.evaluate(() => (window as any).msgs);
  }
  states(): Promise<ViewerStateSnapshot[]> {
    return this.page.evaluate(() => (window as any).states);
  }
  async lastState(): Promise<ViewerStateSnapshot | undefined> {
    const s = await this.states();
    return s[s.length - 1];
  }
  sample(points: Array<[number, number]>): Promise<number[][] | null> {
    return this.page.evaluate((p) => (window as any).sample(p), points);
  }
  /** Calls one of the handle's send* functions in the page. */
  send(fn: 'sendPointer' | 'sendWheel' | 'sendKey' | 'sendPaste' | 'sendHandoff', ...args: unknown[]): Promise<boolean> {
    return this.page.evaluate((f, a) => (window as any).h[f](...a), fn, args);
  }
  /** Waits until framesDecoded exceeds `n`, returns it. */
  waitDecodedOver(n: number, timeoutMs = 30_000): Promise<number> {
    return waitFor(`framesDecoded > ${n}`, async () => {
      const d = await this.decoded();
      return d > n ? d : 0;
    }, timeoutMs, 200);
  }
  async close(): Promise<void> {
    await this.page.evaluate(() => (window as any).h?.close()).catch(() => {});
    await this.page.close().catch(() => {});
  }
}

/** Whether `rgb` is within `tol` of `want` on every channel (video is lossy, 4:2:0, limited range). */
export function near(rgb: number[] | undefined, want: [number, number, number], tol = 48): boolean {
  return !!rgb && rgb.every((v, i) => Math.abs(v - want[i]!) <= tol);
}
