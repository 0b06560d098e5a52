import type { FrameSource, FrameSubscriber, FrameView, InputSink, Rect } from '../../../src/display/types.js';
import type { ViewerHandle, ViewerSession, ViewerState } from '../../../src/liveview/types.js';

/** A synthetic B,G,R,X framebuffer; every subscriber sees every change as dirty. */
export class FakeFrameSource implements FrameSource {
  readonly data: Buffer;
  readonly stride: number;
  readonly subscribers = new Set<FakeSubscriber>();

  constructor(
    readonly width: number,
    readonly height: number,
    colour: (x: number, y: number) => number = () => 0,
  ) {
    this.stride = width * 4;
    this.data = Buffer.alloc(this.stride * height);
    this.paint({ x: 0, y: 0, width, height }, colour, false);
  }

  /** 0xRRGGBB at (x, y). */
  pixel(x: number, y: number): number {
    return this.data.readUInt32LE(y * this.stride + x * 4) & 0xffffff;
  }

  paint(rect: Rect, colour: (x: number, y: number) => number, notify = true): void {
    for (let y = rect.y; y < rect.y + rect.height; y++)
      for (let x = rect.x; x < rect.x + rect.width; x++) this.data.writeUInt32LE(colour(x, y), y * this.stride + x * 4);
    if (notify) for (const s of this.subscribers) s.mark(rect);
  }

  subscribe(): FrameSubscriber {
    const s = new FakeSubscriber(this);
    this.subscribers.add(s);
    return s;
  }
}

class FakeSubscriber implements FrameSubscriber {
  private rects: Rect[] = [];
  private listeners: Array<() => void> = [];
  closed = false;

  constructor(private readonly source: FakeFrameSource) {}

  onDirty(listener: () => void): void {
    this.listeners.push(listener);
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
    this.closed = true;
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

export class FakeSession implements ViewerSession {
  readonly input = new FakeInput();
  readonly runId = 'run';
  canControl = true;
  joinError: Error | null = null;
  handles: FakeHandle[] = [];

  constructor(
    readonly sessionId: string,
    readonly framebuffer: FakeFrameSource,
  ) {}

  join(opts: { transport: string; sourceIp: string }): ViewerHandle {
    if (this.joinError) throw this.joinError;
    const h = new FakeHandle(this.canControl, opts);
    this.handles.push(h);
    return h;
  }

  viewerState(): ViewerState {
    return { attachment: 'none', handoff: null, viewers: { screencast: 0, webrtc: 0, vnc: this.handles.length }, downloads: 0 };
  }

  onViewerStateChange(): () => void {
    return () => {};
  }
}

export class FakeHandle implements ViewerHandle {
  left = false;
  private ends: Array<(reason: string) => void> = [];
  private changes: Array<(c: boolean) => void> = [];
  constructor(
    public canControl: boolean,
    readonly opts: { transport: string; sourceIp: string },
  ) {}
  onControlChange(listener: (c: boolean) => void): void {
    this.changes.push(listener);
  }
  onEnd(listener: (reason: string) => void): void {
    this.ends.push(listener);
  }
  completeHandoff(): boolean {
    return true;
  }
  leave(): void {
    this.left = true;
  }
  end(reason: string): void {
    this.ends.forEach((l) => l(reason));
  }
  setControl(c: boolean): void {
    this.canControl = c;
    this.changes.forEach((l) => l(c));
  }
}
