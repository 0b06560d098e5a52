import type { Rect } from '../../display/types.js';

/**
 * Side of the squares a region is kept in. The framebuffer's dirty rects are already aligned
 * to its 64-px tiles; a multiple of 16 also keeps tile edges on JPEG 4:2:0 MCU boundaries, so
 * tiles and full frames show the same block grid.
 */
export const REGION_TILE = 64;
/** Two neighbouring rects merge when their bounding box adds at most this many unneeded tiles. */
const FREE_WASTE_TILES = 2;
/** More starting rects than this is a scattered change: a full frame is cheaper to plan and send. */
const MAX_PLANNED_RECTS = 48;

/** A set of screen tiles: what one viewer has not seen yet. Bounded memory whatever happens. */
export class TileRegion {
  readonly cols: number;
  readonly rows: number;
  private readonly bits: Uint8Array;
  private n = 0;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.cols = Math.ceil(width / REGION_TILE);
    this.rows = Math.ceil(height / REGION_TILE);
    this.bits = new Uint8Array(this.cols * this.rows);
  }

  get empty(): boolean {
    return this.n === 0;
  }
  /** Number of tiles in the region. */
  get count(): number {
    return this.n;
  }
  get full(): boolean {
    return this.n === this.bits.length;
  }

  /** Adds every tile `r` touches (clipped to the screen). */
  add(r: Rect): void {
    const x0 = Math.max(0, Math.floor(r.x / REGION_TILE));
    const y0 = Math.max(0, Math.floor(r.y / REGION_TILE));
    const x1 = Math.min(this.cols, Math.ceil((r.x + r.width) / REGION_TILE));
    const y1 = Math.min(this.rows, Math.ceil((r.y + r.height) / REGION_TILE));
    for (let ty = y0; ty < y1; ty++) {
      for (let tx = x0; tx < x1; tx++) {
        const i = ty * this.cols + tx;
        if (!this.bits[i]) {
          this.bits[i] = 1;
          this.n++;
        }
      }
    }
  }

  addAll(): void {
    this.bits.fill(1);
    this.n = this.bits.length;
  }

  clear(): void {
    this.bits.fill(0);
    this.n = 0;
  }

  /** Identical regions give identical keys: viewers that need the same update share its encode. */
  key(): string {
    if (this.full) return 'full';
    return Buffer.from(this.bits.buffer, this.bits.byteOffset, this.bits.length).toString('latin1');
  }

  /**
   * Pixel rects covering the region, at most `maxRects` of them, or null when the change is
   * too scattered to be worth tiling. Rows of tiles become runs, equal runs stacked on each
   * other become one rect, then the pair whose bounding box wastes the fewest tiles is merged
   * while that waste is small or there are too many rects: every tile costs a JPEG header
   * (~600 bytes with standard tables) and a sharp call (~1 ms), so a few larger rects beat
   * many exact ones.
   */
  rects(maxRects: number): Rect[] | null {
    type T = { x0: number; y0: number; x1: number; y1: number }; // tile units, end-exclusive
    const boxes: T[] = [];
    let above = new Map<number, T>();
    for (let ty = 0; ty < this.rows; ty++) {
      const current = new Map<number, T>();
      for (let tx = 0; tx < this.cols; tx++) {
        if (!this.bits[ty * this.cols + tx]) continue;
        const start = tx;
        while (tx + 1 < this.cols && this.bits[ty * this.cols + tx + 1]) tx++;
        const prev = above.get(start);
        if (prev && prev.x1 === tx + 1) {
          prev.y1 = ty + 1;
          current.set(start, prev);
        } else {
          const b = { x0: start, y0: ty, x1: tx + 1, y1: ty + 1 };
          boxes.push(b);
          current.set(start, b);
        }
      }
      above = current;
    }
    if (boxes.length > MAX_PLANNED_RECTS) return null;
    const area = (b: T) => (b.x1 - b.x0) * (b.y1 - b.y0);
    const union = (a: T, b: T): T => ({ x0: Math.min(a.x0, b.x0), y0: Math.min(a.y0, b.y0), x1: Math.max(a.x1, b.x1), y1: Math.max(a.y1, b.y1) });
    while (boxes.length > 1) {
      let best = Infinity;
      let bi = 0;
      let bj = 0;
      for (let i = 0; i < boxes.length; i++) {
        for (let j = i + 1; j < boxes.length; j++) {
          const waste = area(union(boxes[i]!, boxes[j]!)) - area(boxes[i]!) - area(boxes[j]!);
          if (waste < best) {
            best = waste;
            bi = i;
            bj = j;
          }
        }
      }
      if (best > FREE_WASTE_TILES && boxes.length <= maxRects) break;
      const merged = union(boxes[bi]!, boxes[bj]!);
      boxes.splice(bj, 1);
      boxes[bi] = merged;
      // A bounding box can swallow other boxes whole: drop them.
      for (let k = boxes.length - 1; k >= 0; k--) {
        const b = boxes[k]!;
        if (k !== bi && b.x0 >= merged.x0 && b.y0 >= merged.y0 && b.x1 <= merged.x1 && b.y1 <= merged.y1) {
          boxes.splice(k, 1);
          if (k < bi) bi--;
        }
      }
    }
    return boxes.map((b) => {
      const x = b.x0 * REGION_TILE;
      const y = b.y0 * REGION_TILE;
      return { x, y, width: Math.min(this.width, b.x1 * REGION_TILE) - x, height: Math.min(this.height, b.y1 * REGION_TILE) - y };
    });
  }
}
