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

/** Where each rect goes in the atlas picture, the picture's size, and what no rect covers. */
export interface AtlasLayout {
  entries: AtlasEntry[];
  width: number;
  height: number;
  /** Areas no rect covers: x, y, width, height in atlas pixels. */
  gaps: number[][];
}

/**
 * Shelf packing, tallest first, each rect on the 16-px block grid so no JPEG block mixes two
 * rects; `scale` 0.5 halves every rect. The picture is as wide as the (scaled) screen.
 */
export function packAtlas(rects: Rect[], screenWidth: number, scale: 1 | 0.5): AtlasLayout {
  const sized = rects.map((r) => ({ r, sw: scale === 1 ? r.width : (r.width + 1) >> 1, sh: scale === 1 ? r.height : (r.height + 1) >> 1 }));
  const maxW = Math.max(...sized.map((s) => up(s.sw)));
  const width = Math.max(maxW, up(scale === 1 ? screenWidth : (screenWidth + 1) >> 1));
  const order = [...sized.keys()].sort((a, b) => sized[b]!.sh - sized[a]!.sh || sized[a]!.r.y - sized[b]!.r.y || sized[a]!.r.x - sized[b]!.r.x);
  const entries: AtlasEntry[] = new Array(sized.length);
  const gaps: number[][] = [];
  let x = 0;
  let y = 0;
  let shelf = 0;
  let row: AtlasEntry[] = [];
  const closeShelf = (h: number) => {
    for (const e of row) {
      if (e.sw < up(e.sw)) gaps.push([e.sx + e.sw, y, up(e.sw) - e.sw, h]);
      if (e.sh < h) gaps.push([e.sx, y + e.sh, e.sw, h - e.sh]);
    }
    if (x < width) gaps.push([x, y, width - x, h]);
  };
  for (const i of order) {
    const { r, sw, sh } = sized[i]!;
    if (x + sw > width) {
      closeShelf(up(shelf));
      y += up(shelf);
      x = 0;
      shelf = 0;
      row = [];
    }
    const e = { dx: r.x, dy: r.y, dw: r.width, dh: r.height, sx: x, sy: y, sw, sh };
    entries[i] = e;
    row.push(e);
    x += up(sw);
    shelf = Math.max(shelf, sh);
  }
  // The last shelf needs no padding below it: nothing follows.
  closeShelf(shelf);
  return { entries, width, height: y + shelf, gaps };
}

/**
 * Whether the atlas of `rects` is no larger than a full frame at `scale` (review L2): shelves
 * waste space, so many rects of different heights can pack taller than the screen, and then a
 * full frame is the smaller picture (and a bounded one).
 */
export function atlasFits(rects: Rect[], screenWidth: number, screenHeight: number, scale: 1 | 0.5): boolean {
  return packAtlas(rects, screenWidth, scale).height <= (scale === 1 ? screenHeight : (screenHeight + 1) >> 1);
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
  const { entries, width, height, gaps } = packAtlas(rects, frame.width, scale);
  const stride = width * 3;
  const data = pool ? pool.take(stride * height) : Buffer.allocUnsafeSlow(stride * height);
  for (const [gx, gy, gw, gh] of gaps) {
    for (let r = 0; r < gh!; r++) {
      const o = (gy! + r) * stride + gx! * 3;
      data.fill(0, o, Math.min(o + gw! * 3, (gy! + r + 1) * stride));
    }
  }
  for (const e of entries) {
    const rect = { x: e.dx, y: e.dy, width: e.dw, height: e.dh };
    if (scale === 1) copyRgb(frame, rect, data, stride, e.sx, e.sy);
    else copyRgbHalf(frame, rect, data, stride, e.sx, e.sy);
  }
  return { entries, pixels: { width, height, data } };
}
