/** Fakes and a real-`ws` harness for the screencast unit tests. */
import { WebSocketServer, WebSocket } from 'ws';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import type { FrameSource, FrameSubscriber, FrameView, InputSink, Rect } from '../../../src/display/types.js';
import type { Transport, ViewerHandle, ViewerSession, ViewerState } from '../../../src/liveview/types.js';
import { Screencast, type ScreencastOptions } from '../../../src/liveview/screencast/screencast.js';
import { sharpJpeg, type JpegEncoder } from '../../../src/liveview/screencast/jpeg.js';
import { silentLogger } from '../../../src/util/logger.js';

/** A B,G,R,X framebuffer whose changes are reported exactly as painted. */
export class FakeFrameSource implements FrameSource {
  readonly stride: number;
  readonly data: Buffer;
  readonly subscribers = new Set<FakeSubscriber>();
  subscribeCount = 0;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.stride = width * 4;
    this.data = Buffer.alloc(this.stride * height);
  }

  /** 0xRRGGBB at (x, y). */
  pixel(x: number, y: number): number {
    return this.data.readUInt32LE(y * this.stride + x * 4) & 0xffffff;
  }

  /** Fills `rect` with 0xRRGGBB and tells every subscriber. */
  paint(rect: Rect, rgb: number): void {
    for (let y = rect.y; y < rect.y + rect.height; y++)
      for (let x = rect.x; x < rect.x + rect.width; x++) this.data.writeUInt32LE(rgb & 0xffffff, y * this.stride + x * 4);
    for (const s of this.subscribers) s.mark(rect);
  }

  /** The picture as packed R,G,B (what a viewer should end up showing). */
  rgb(): Buffer {
    const out = Buffer.alloc(this.width * this.height * 3);
    for (let i = 0, j = 0; i < this.data.length; i += 4, j += 3) {
      out[j] = this.data[i + 2]!;
      out[j + 1] = this.data[i + 1]!;
      out[j + 2] = this.data[i]!;
    }
    return out;
  }

  subscribe(): FrameSubscriber {
    const s = new FakeSubscriber(this);
    this.subscribeCount++;
    this.subscribers.add(s);
    return s;
  }
}

class FakeSubscriber implements FrameSubscriber {
  private rects: Rect[] = [];
  private listeners: Array<() => void> = [];

  constructor(private readonly source: FakeFrameSource) {
    // Like the real Framebuffer: a new subscriber has seen nothing.
    this.rects.push({ x: 0, y: 0, width: source.width, height: source.height });
  }
  onDirty(listener: () => void): void {
    this.listeners.push(listener);
    if (this.dirty) queueMicrotask(listener);
  }
  get dirty(): boolean {
    return this.rects.length > 0;
  }
  mark(rect: Rect): void {
    const was = this.dirty;
    this.rects.push(rect);
    if (!was) queueMicrotask(() => this.listeners.forEach((l) => l()));
  }
  takeDirty(): Rect[] {
    const r = this.rects;
    this.rects = [];
    return r;
  }
  frame(): FrameView {
    const { width, height, stride, data } = this.source;
    return { width, height, stride, data };
  }
  invalidate(): void {
    this.mark({ x: 0, y: 0, width: this.source.width, height: this.source.height });
  }
  close(): void {
    this.listeners = [];
    this.source.subscribers.delete(this);
  }
}

export class FakeInput implements InputSink {
  events: unknown[] = [];
  pointer(x: number, y: number, buttonMask: number): void {
    this.events.push(['pointer', x, y, buttonMask]);
  }
  key(keysym: number, down: boolean): void {
    this.events.push(['key', keysym, down]);
  }
  setClipboard(text: string): void {
    this.events.push(['clipboard', text]);
  }
  releaseAll(): void {
    this.events.push(['releaseAll']);
  }
}

export class FakeHandle implements ViewerHandle {
  leaves = 0;
  private ends: Array<(reason: string) => void> = [];
  private changes: Array<(c: boolean) => void> = [];
  constructor(
    public canControl: boolean,
    private readonly onHandoff: (outcome: 'done' | 'failed') => boolean = () => true,
  ) {}
  completeHandoff(outcome: 'done' | 'failed'): boolean {
    return this.onHandoff(outcome);
  }
  onControlChange(listener: (c: boolean) => void): void {
    this.changes.push(listener);
  }
  onEnd(listener: (reason: string) => void): void {
    this.ends.push(listener);
  }
  leave(): void {
    this.leaves++;
  }
  end(reason: string): void {
    this.ends.forEach((l) => l(reason));
  }
  setControl(c: boolean): void {
    this.canControl = c;
    this.changes.forEach((l) => l(c));
  }
}

export class FakeSession implements ViewerSession {
  readonly sessionId = 'sess';
  readonly runId = 'run';
  readonly input = new FakeInput();
  readonly handles: FakeHandle[] = [];
  /** What the next join() grants. */
  canControl = true;
  state: ViewerState = { attachment: 'none', handoff: null, viewers: { screencast: 0, webrtc: 0, vnc: 0 }, downloads: 0 };
  handoffs: Array<[string, Transport]> = [];
  private stateListeners = new Set<() => void>();

  constructor(readonly framebuffer: FakeFrameSource) {}

  join(): ViewerHandle {
    const h = new FakeHandle(this.canControl, (outcome) => (this.completeHandoff(outcome, 'screencast'), true));
    this.handles.push(h);
    return h;
  }
  viewerState(): ViewerState {
    return this.state;
  }
  onViewerStateChange(listener: () => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }
  get stateListenerCount(): number {
    return this.stateListeners.size;
  }
  setState(s: Partial<ViewerState>): void {
    this.state = { ...this.state, ...s };
    this.stateListeners.forEach((l) => l());
  }
  completeHandoff(outcome: 'done' | 'failed', by: Transport): void {
    this.handoffs.push([outcome, by]);
  }
}

/** Polls `cond` until it holds: a bound on waiting, not a timing assertion. */
export async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export interface Picture {
  kind: number;
  seq: number;
  x: number;
  y: number;
  width: number;
  height: number;
  bytes: number;
}

/**
 * A viewer on a real socket: records every message, draws every tile (decoded with sharp) into
 * its own R,G,B canvas in arrival order, and acks each finished frame unless told not to.
 */
export class TestViewer {
  readonly texts: any[] = [];
  readonly pictures: Picture[] = [];
  /** Sequence numbers of complete frames (kind 2 seen and drawn). */
  readonly frames: number[] = [];
  readonly canvas: Buffer;
  autoAck = true;
  /** The handle the server's join() returned for this viewer. */
  handle!: FakeHandle;
  closed?: { code: number; reason: string };
  private drawing: Promise<void> = Promise.resolve();

  constructor(
    readonly ws: WebSocket,
    readonly width: number,
    readonly height: number,
    /** Asks for atlas frames (kind 3) after hello, as the viewer kit does. */
    readonly atlas = false,
  ) {
    this.canvas = Buffer.alloc(width * height * 3);
    ws.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) {
        const m = JSON.parse(data.toString());
        this.texts.push(m);
        if (m.type === 'hello' && atlas) this.send({ type: 'format', atlas: true });
        return;
      }
      if (data.readUInt8(0) === 3) return this.onAtlas(data);
      const p: Picture = {
        kind: data.readUInt8(0),
        seq: data.readUInt32BE(1),
        x: data.readUInt16BE(5),
        y: data.readUInt16BE(7),
        width: data.readUInt16BE(9),
        height: data.readUInt16BE(11),
        bytes: data.length - 14,
      };
      this.pictures.push(p);
      const jpeg = data.subarray(14);
      this.drawing = this.drawing.then(async () => {
        const { data: px, info } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true });
        if (info.width !== p.width || info.height !== p.height || info.channels !== 3) throw new Error('tile size mismatch');
        for (let row = 0; row < p.height; row++) px.copy(this.canvas, ((p.y + row) * width + p.x) * 3, row * p.width * 3, (row + 1) * p.width * 3);
        if (p.kind === 2) {
          this.frames.push(p.seq);
          if (this.autoAck) this.ack(p.seq);
        }
      });
    });
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
  }

  /** Kind 3: every rect cut out of the one JPEG (scaled back up, nearest pixel) and drawn. */
  private onAtlas(data: Buffer): void {
    const seq = data.readUInt32BE(1);
    const count = data.readUInt16BE(5);
    const entries = Array.from({ length: count }, (_, i) => Array.from({ length: 8 }, (_, k) => data.readUInt16BE(8 + i * 16 + k * 2)));
    const jpeg = data.subarray(8 + count * 16);
    this.pictures.push({ kind: 3, seq, x: 0, y: 0, width: 0, height: 0, bytes: jpeg.length });
    this.drawing = this.drawing.then(async () => {
      const { data: px, info } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true });
      for (const [dx, dy, dw, dh, sx, sy, sw, sh] of entries as number[][] as [number, number, number, number, number, number, number, number][]) {
        if (sx + sw > info.width || sy + sh > info.height) throw new Error('atlas rect outside the picture');
        for (let y = 0; y < dh; y++) {
          for (let x = 0; x < dw; x++) {
            const s = ((sy + Math.floor((y * sh) / dh)) * info.width + sx + Math.floor((x * sw) / dw)) * info.channels;
            const d = ((dy + y) * this.width + dx + x) * 3;
            this.canvas[d] = px[s]!;
            this.canvas[d + 1] = px[s + 1]!;
            this.canvas[d + 2] = px[s + 2]!;
          }
        }
      }
      this.frames.push(seq);
      if (this.autoAck) this.ack(seq);
    });
  }

  ack(seq = this.frames.at(-1) ?? 0): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: 'ack', seq }));
  }

  send(m: unknown): void {
    this.ws.send(typeof m === 'string' ? m : JSON.stringify(m));
  }

  texts_(type: string): any[] {
    return this.texts.filter((t) => t.type === type);
  }

  /**
   * Largest per-channel difference between the canvas and `rgb`, away from the 64-px grid
   * lines: the tests paint colour edges only there, and a JPEG decoder's smooth chroma
   * upsampling blurs a 4:2:0 edge over a pixel or two. A misplaced or missing tile still shows
   * in the tile interiors.
   */
  maxDiff(rgb: Buffer, margin = 2): number {
    let max = 0;
    const near = (n: number) => n % 64 < margin || n % 64 >= 64 - margin;
    for (let y = 0; y < this.height; y++) {
      if (near(y)) continue;
      for (let x = 0; x < this.width; x++) {
        if (near(x)) continue;
        const i = (y * this.width + x) * 3;
        for (let c = 0; c < 3; c++) max = Math.max(max, Math.abs(rgb[i + c]! - this.canvas[i + c]!));
      }
    }
    return max;
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((r) => {
      this.ws.once('close', () => r());
      this.ws.close();
    });
  }
}

/** A Screencast over a fake session, served by a real WebSocketServer on 127.0.0.1. */
export class Harness {
  readonly fb: FakeFrameSource;
  readonly session: FakeSession;
  readonly screencast: Screencast;
  readonly viewers: TestViewer[] = [];
  encodes = 0;
  private wss!: WebSocketServer;
  port = 0;

  constructor(width = 320, height = 192, opts: ScreencastOptions = {}) {
    this.fb = new FakeFrameSource(width, height);
    this.session = new FakeSession(this.fb);
    const counting: JpegEncoder = (p, q) => {
      this.encodes++;
      return sharpJpeg(p, q);
    };
    this.screencast = new Screencast(this.session, silentLogger, { encoder: counting, ...opts });
  }

  async start(): Promise<this> {
    // Large like the lead's server: the 1 MiB text limit is the Screencast's own.
    this.wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 16 << 20 });
    this.wss.on('connection', (ws) => this.screencast.addViewer(ws, () => this.session.join()));
    await new Promise<void>((r) => this.wss.once('listening', () => r()));
    this.port = (this.wss.address() as AddressInfo).port;
    return this;
  }

  /** Connects a viewer and waits for its first complete frame. */
  async connect(opts: { autoAck?: boolean; waitFrame?: boolean; atlas?: boolean; port?: number } = {}): Promise<TestViewer> {
    const handles = this.session.handles.length;
    const ws = new WebSocket(`ws://127.0.0.1:${opts.port ?? this.port}/`, { perMessageDeflate: false });
    // Listening from the start: hello and the first frame may come in with the upgrade.
    const v = new TestViewer(ws, this.fb.width, this.fb.height, opts.atlas);
    if (opts.autoAck === false) v.autoAck = false;
    this.viewers.push(v);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await waitFor(() => this.session.handles.length > handles, 'join');
    v.handle = this.session.handles[handles]!;
    if (opts.waitFrame !== false) await waitFor(() => v.frames.length >= 1, 'first frame');
    return v;
  }

  async stop(): Promise<void> {
    for (const v of this.viewers) await v.close();
    await this.screencast.close();
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((r) => this.wss.close(() => r()));
  }
}
