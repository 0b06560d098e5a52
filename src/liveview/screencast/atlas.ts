import type { FrameView, Rect } from '../../display/types.js';
import { copyRgb, copyRgbHalf, type RgbPixels } from './jpeg.js';

/**
 * One rectangle of an atlas frame: the screen rect it shows (dx, dy, dw, dh) and where its
 * pixels are in the atlas picture (sx, sy, sw, sh; smaller than the screen rect when scaled).
 */
export interface AtlasEntry {
  dx: number;
  dy: number;
  dw: number;
  dh: number;
  sx: number;
  sy: number;
  sw: number;
  sh: number;
}

export interface Atlas {
  entries: AtlasEntry[];
  pixels: RgbPixels;
}

/** JPEG 4:2:0 blocks are 16x16: rects placed on this grid never share a block. */
const MCU = 16;
const up = (n: number) => Math.ceil(n / MCU) * MCU;

/**
 * Atlas buffers to reuse: at 60 frames a second a fresh megabyte per frame is mostly zeroing
 * and garbage collection. A buffer is lent to one encode and given back when it ends.
 */
export class AtlasPool {
  private readonly free: Buffer[] = [];
  constructor(private readonly keep = 2) {}

  take(bytes: number): Buffer {
    const i = this.free.findIndex((b) => b.length >= bytes);
    const buf = i >= 0 ? this.free.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(bytes);
    return buf.subarray(0, bytes);
  }

  /** No viewer, no buffers kept. */
  clear(): void {
    this.free.length = 0;
  }

  give(data: Buffer): void {
    const whole = Buffer.from(data.buffer, data.byteOffset, data.buffer.byteLength - data.byteOffset);
    if (this.free.length >= this.keep) this.free.shift();
    this.free.push(whole);
  }
}

/** Where each rect goes in the atlas picture, and the picture's size. */
export interface AtlasLayout {
  entries: AtlasEntry[];
  width: number;
  height: number;
}

/** Picture widths tried step by this much (a multiple of MCU). */
const WIDTH_STEP = 64;

/**
 * Bottom-left skyline packing at one picture width: each rect (in the order given) goes where
 * its top is lowest, leftmost on a tie; the skyline is kept per 16-px column. For each rect the
 * lowest place is a sliding-window maximum over the columns (a deque of falling heights).
 */
function skyline(sized: { r: Rect; sw: number; sh: number }[], width: number): AtlasLayout {
  const sky = new Array<number>(width / MCU).fill(0);
  const entries: AtlasEntry[] = new Array(sized.length);
  let height = 0;
  const window: number[] = [];
  for (const [i, { r, sw, sh }] of sized.entries()) {
    const span = up(sw) / MCU;
    let bestX = 0;
    let bestY = Infinity;
    window.length = 0;
    for (let c = 0; c < sky.length; c++) {
      while (window.length > 0 && sky[window.at(-1)!]! <= sky[c]!) window.pop();
      window.push(c);
      if (window[0]! <= c - span) window.shift();
      if (c >= span - 1 && sky[window[0]!]! < bestY) {
        bestY = sky[window[0]!]!;
        bestX = c - span + 1;
      }
    }
    entries[i] = { dx: r.x, dy: r.y, dw: r.width, dh: r.height, sx: bestX * MCU, sy: bestY, sw, sh };
    sky.fill(bestY + up(sh), bestX, bestX + span);
    height = Math.max(height, bestY + sh);
  }
  return { entries, width, height };
}

/**
 * Places `rects` in one picture, each on the 16-px block grid so no JPEG block mixes two rects;
 * `scale` 0.5 halves every rect. Tallest first, each where it sits lowest (skyline packing),
 * in a picture as wide as the (scaled) screen or, where that is smaller, narrower (width
 * steps of 64 px) without growing taller than the screen. On session 9's bench animation
 * this is ~33% fewer pixels than shelves of rects as wide as the screen, close to the rects'
 * own area, and the JPEG encode is most of a frame's cost. Rects are never cut: a cut inside a
 * rect would show as a seam, since 4:2:0 chroma is interpolated across block edges.
 */
export function packAtlas(rects: readonly Rect[], screen: { width: number; height: number }, scale: 1 | 0.5): AtlasLayout {
  const known = packed.get(rects);
  if (known && known.width === screen.width && known.height === screen.height && known.scale === scale) return known.layout;
  const layout = pack(rects, screen, scale);
  packed.set(rects, { width: screen.width, height: screen.height, scale, layout });
  return layout;
}

/**
 * Layouts by rects array: a tick packs each group's rects twice, in its fit check (atlasFits)
 * and in buildAtlas. Rect arrays are never changed once made, so the same array is the same rects.
 */
const packed = new WeakMap<readonly Rect[], { width: number; height: number; scale: number; layout: AtlasLayout }>();

function pack(rects: readonly Rect[], screen: { width: number; height: number }, scale: 1 | 0.5): AtlasLayout {
  const half = (n: number) => (scale === 1 ? n : (n + 1) >> 1);
  const sized = rects.map((r) => ({ r, sw: half(r.width), sh: half(r.height) }));
  const order = [...sized].sort((a, b) => b.sh - a.sh || b.sw - a.sw || a.r.y - b.r.y || a.r.x - b.r.x);
  const widest = Math.max(MCU, ...sized.map((p) => up(p.sw)));
  const full = Math.max(up(half(screen.width)), widest);
  const maxHeight = half(screen.height);
  // Narrower than this, the rects' own area (their columns on the block grid) cannot fit the screen's height.
  const area = sized.reduce((n, p) => n + up(p.sw) * p.sh, 0);
  const narrowest = Math.max(widest, up(Math.ceil(area / Math.max(1, maxHeight))));
  let best = skyline(order, full);
  // Widest first, so of two pictures of the same area the wider one is kept.
  for (let width = full - WIDTH_STEP; width >= narrowest; width -= WIDTH_STEP) {
    const next = skyline(order, width);
    if (next.height <= maxHeight && next.width * next.height < best.width * best.height) best = next;
  }
  // Entries in the order of `rects`.
  const at = new Map(order.map((p, i) => [p, best.entries[i]!]));
  return { entries: sized.map((p) => at.get(p)!), width: best.width, height: best.height };
}

/**
 * Whether the atlas of `rects` is no taller than a full frame at `scale` (review L2): packing
 * wastes space, so rects can pack taller than the screen, and then a full frame is the smaller
 * picture (and a bounded one).
 */
export function atlasFits(rects: Rect[], screenWidth: number, screenHeight: number, scale: 1 | 0.5): boolean {
  return packAtlas(rects, { width: screenWidth, height: screenHeight }, scale).height <= (scale === 1 ? screenHeight : (screenHeight + 1) >> 1);
}

/**
 * Packs the changed rects of a frame into one picture, so a frame is one JPEG encode whatever
 * its number of rects: a sharp call costs ~0.7 ms before the first pixel, so six tiles cost more
 * than the pixels they hold, and merging them into bounding boxes encodes pixels that did not
 * change. Layout by packAtlas; `scale` 0.5 halves every rect (a 2x2 mean) for a slow link. The
 * picture's buffer comes from `pool` (give it back after the encode); what no rect covers is
 * zeroed (flat black costs next to nothing in a JPEG).
 */
export function buildAtlas(frame: FrameView, rects: Rect[], scale: 1 | 0.5, pool?: AtlasPool): Atlas {
  const { entries, width, height } = packAtlas(rects, frame, scale);
  const stride = width * 3;
  const data = pool ? pool.take(stride * height) : Buffer.allocUnsafeSlow(stride * height);
  // Rects cover most of the picture: zeroing all of it first is simpler than finding the holes.
  data.fill(0);
  for (const e of entries) {
    const rect = { x: e.dx, y: e.dy, width: e.dw, height: e.dh };
    if (scale === 1) copyRgb(frame, rect, data, stride, e.sx, e.sy);
    else copyRgbHalf(frame, rect, data, stride, e.sx, e.sy);
  }
  return { entries, pixels: { width, height, data } };
}
