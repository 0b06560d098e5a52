import type { Logger } from '../util/logger.js';
import type { CursorShape, CursorSource } from './types.js';
import type { X11Connection } from './x11client.js';

// XFIXES cursor tracking (fixesproto: SelectCursorInput, CursorNotify, GetCursorImage)

/** Larger cursors are not passed on (a page's CSS cursor is its own bitmap; Chromium caps them at 128). */
export const MAX_CURSOR_SIDE = 256;
/** Fetches of the image at most this often while a page keeps switching cursors. */
const CURSOR_FETCH_INTERVAL_MS = 16;

interface FixesExt {
  firstEvent: number;
  events: { CursorNotify: number };
  CursorNotifyMask: { DisplayCursor: number };
  SelectCursorInput(window: number, mask: number): void;
  GetCursorImage(cb: (err: Error | null, img: { width: number; height: number; xhot: number; yhot: number; cursorImage: Buffer }) => void): void;
}

/**
 * The display's pointer shape through XFIXES on an existing connection: CursorNotify on the
 * root says the shown cursor changed, GetCursorImage fetches it. Selected only while someone
 * listens; fetches are coalesced (one at a time, then a pause) so a page that keeps switching
 * cursors costs a bounded number of round trips.
 */
export class XCursorTracker implements CursorSource {
  private readonly listeners = new Set<(shape: CursorShape | null) => void>();
  private shape: CursorShape | null = null;
  private ext: Promise<FixesExt | null> | null = null;
  private fixes: FixesExt | null = null;
  private watching = false;
  /** A fetch or its pause is under way; `again` asks for one more after it. */
  private busy = false;
  private again = false;

  constructor(private readonly conn: X11Connection, private readonly logger: Logger) {
    conn.client.on('event', (ev) => {
      const f = this.fixes;
      if (f && this.watching && ev.type === f.firstEvent + f.events.CursorNotify) this.fetch();
    });
  }

  current(): CursorShape | null {
    return this.shape;
  }

  onChange(listener: (shape: CursorShape | null) => void): () => void {
    this.listeners.add(listener);
    if (this.listeners.size === 1) void this.start();
    return () => {
      if (this.listeners.delete(listener) && this.listeners.size === 0) this.stop();
    };
  }

  private async start(): Promise<void> {
    this.ext ??= this.conn.extension<FixesExt>('fixes').catch((err: Error) => {
      this.logger.warn('XFIXES not available: viewers get a default cursor', { err: err.message });
      return null;
    });
    const f = (this.fixes = await this.ext);
    if (!f || this.watching || this.listeners.size === 0 || !this.conn.alive) return;
    this.watching = true;
    f.SelectCursorInput(this.conn.root, f.CursorNotifyMask.DisplayCursor);
    this.fetch();
  }

  private stop(): void {
    if (this.watching && this.conn.alive) this.fixes!.SelectCursorInput(this.conn.root, 0);
    this.watching = false;
    this.shape = null; // stale once nobody follows the changes
  }

  private fetch(): void {
    if (this.busy) {
      this.again = true;
      return;
    }
    if (!this.watching || !this.conn.alive) return;
    this.busy = true;
    this.fixes!.GetCursorImage((err, img) => {
      if (err) this.logger.warn('XFixesGetCursorImage failed', { err: err.message });
      else if (this.watching) this.accept(img);
      setTimeout(() => {
        this.busy = false;
        if (!this.again) return;
        this.again = false;
        this.fetch();
      }, CURSOR_FETCH_INTERVAL_MS).unref();
    });
  }

  private accept(img: { width: number; height: number; xhot: number; yhot: number; cursorImage: Buffer }): void {
    const { width, height } = img;
    let shape: CursorShape | null = null;
    if (width <= MAX_CURSOR_SIDE && height <= MAX_CURSOR_SIDE && img.cursorImage.length === width * height * 4) {
      const argb = new Uint32Array(width * height);
      for (let i = 0; i < argb.length; i++) argb[i] = img.cursorImage.readUInt32LE(i * 4);
      shape = { width, height, hotX: Math.min(img.xhot, Math.max(0, width - 1)), hotY: Math.min(img.yhot, Math.max(0, height - 1)), argb };
    } else {
      this.logger.debug('cursor image not passed on', { width, height, bytes: img.cursorImage.length });
    }
    if (sameShape(shape, this.shape)) return;
    this.shape = shape;
    for (const l of [...this.listeners]) {
      try {
        l(shape);
      } catch (err) {
        // A listener's bug must not reach the x11 package's socket handler.
        this.logger.error('cursor listener failed', { err: String(err) });
      }
    }
  }
}

function sameShape(a: CursorShape | null, b: CursorShape | null): boolean {
  if (!a || !b) return a === b;
  if (a.width !== b.width || a.height !== b.height || a.hotX !== b.hotX || a.hotY !== b.hotY) return false;
  for (let i = 0; i < a.argb.length; i++) if (a.argb[i] !== b.argb[i]) return false;
  return true;
}
