import { describe, expect, it } from 'vitest';
import { TileRegion } from '../../../src/liveview/screencast/region.js';
import type { Rect } from '../../../src/display/types.js';

/** Every tile of `region` lies in one of `rects`, and rects stay on screen. */
function covers(region: TileRegion, tiles: Array<[number, number]>, rects: Rect[]): boolean {
  const inside = (x: number, y: number) => rects.some((r) => x >= r.x && y >= r.y && x < r.x + r.width && y < r.y + r.height);
  return tiles.every(([tx, ty]) => inside(tx * 64, ty * 64) && inside(Math.min(region.width, tx * 64 + 64) - 1, Math.min(region.height, ty * 64 + 64) - 1));
}

describe('TileRegion', () => {
  it('snaps rects to 64-px tiles, clipped to the screen', () => {
    const r = new TileRegion(200, 100);
    expect(r.cols).toBe(4);
    expect(r.rows).toBe(2);
    r.add({ x: 60, y: 10, width: 10, height: 10 }); // touches tiles (0,0) and (1,0)
    expect(r.count).toBe(2);
    r.add({ x: 195, y: 90, width: 100, height: 100 }); // off the edge: clipped
    expect(r.count).toBe(3);
    expect(r.rects(6)).toEqual([
      { x: 0, y: 0, width: 128, height: 64 },
      { x: 192, y: 64, width: 8, height: 36 },
    ]);
    r.clear();
    expect(r.empty).toBe(true);
    r.addAll();
    expect(r.full).toBe(true);
    expect(r.key()).toBe('full');
  });

  it('merges neighbours that waste little and caps the number of rects', () => {
    const r = new TileRegion(1280, 704);
    // An L shape: one rect per row run, merged into its bounding box (waste 1 tile).
    r.add({ x: 0, y: 0, width: 128, height: 64 });
    r.add({ x: 0, y: 64, width: 64, height: 64 });
    expect(r.rects(6)).toEqual([{ x: 0, y: 0, width: 128, height: 128 }]);

    const scattered = new TileRegion(1280, 704);
    const tiles: Array<[number, number]> = [];
    for (let i = 0; i < 10; i++) {
      const t: [number, number] = [(i * 7) % 20, (i * 3) % 11];
      tiles.push(t);
      scattered.add({ x: t[0] * 64, y: t[1] * 64, width: 64, height: 64 });
    }
    const rects = scattered.rects(4)!;
    expect(rects.length).toBeLessThanOrEqual(4);
    expect(covers(scattered, tiles, rects)).toBe(true);
  });

  it('gives up on a checkerboard (a full frame is cheaper)', () => {
    const r = new TileRegion(1280, 704);
    for (let ty = 0; ty < 11; ty++) for (let tx = 0; tx < 20; tx++) if ((tx + ty) % 2 === 0) r.add({ x: tx * 64, y: ty * 64, width: 1, height: 1 });
    expect(r.rects(6)).toBeNull();
  });

  it('gives equal regions equal keys', () => {
    const a = new TileRegion(320, 192);
    const b = new TileRegion(320, 192);
    a.add({ x: 70, y: 70, width: 1, height: 1 });
    b.add({ x: 100, y: 100, width: 20, height: 20 });
    expect(a.key()).toBe(b.key());
    b.add({ x: 0, y: 0, width: 1, height: 1 });
    expect(a.key()).not.toBe(b.key());
  });
});
