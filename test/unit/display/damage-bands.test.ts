import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MAX_BAND_SHARE, MAX_DAMAGE_RECTS, planBandRead, rowBands } from '../../../src/display/damage-bands.js';

const r = (x: number, y: number, width: number, height: number) => ({ x, y, width, height });

describe('rowBands', () => {
  it('merges overlapping and touching rows, keeps gaps, sorts', () => {
    expect(rowBands([r(0, 100, 10, 20), r(500, 10, 5, 5), r(30, 110, 10, 30), r(0, 140, 1, 2), r(0, 150, 1, 1)], 1280, 720)).toEqual([
      [10, 15],
      [100, 142],
      [150, 151],
    ]);
  });

  it('clips to the screen and drops what is outside or empty', () => {
    expect(rowBands([r(-5, -20, 10, 30), r(0, 700, 10, 100), r(1280, 50, 10, 10), r(-10, 60, 10, 10), r(5, 5, 0, 10), r(5, 900, 1, 1)], 1280, 720)).toEqual([
      [0, 10],
      [700, 720],
    ]);
  });

  it('covers exactly the rows of the rects (property)', () => {
    const H = 50;
    const W = 40;
    const rect = fc.record({ x: fc.integer({ min: -50, max: 60 }), y: fc.integer({ min: -50, max: 80 }), width: fc.integer({ min: 0, max: 60 }), height: fc.integer({ min: 0, max: 60 }) });
    fc.assert(
      fc.property(fc.array(rect, { maxLength: 12 }), (rects) => {
        const bands = rowBands(rects, W, H);
        const want = new Set<number>();
        for (const q of rects) {
          if (q.width <= 0 || q.x >= W || q.x + q.width <= 0) continue;
          for (let y = Math.max(0, q.y); y < Math.min(H, q.y + q.height); y++) want.add(y);
        }
        const got = new Set<number>();
        for (let i = 0; i < bands.length; i++) {
          const [y0, y1] = bands[i]!;
          expect(y0).toBeLessThan(y1);
          if (i > 0) expect(y0).toBeGreaterThan(bands[i - 1]![1]); // disjoint and not touching
          for (let y = y0; y < y1; y++) got.add(y);
        }
        expect([...got].sort((a, b) => a - b)).toEqual([...want].sort((a, b) => a - b));
      }),
    );
  });
});

describe('planBandRead', () => {
  it('reads bands for a small change, everything for a huge one or too many rects', () => {
    expect(planBandRead([r(1200, 680, 16, 16)], 1280, 720)).toEqual([[680, 696]]);
    expect(planBandRead([], 1280, 720)).toEqual([]);
    expect(planBandRead([r(0, 0, 1280, Math.ceil(720 * MAX_BAND_SHARE) + 1)], 1280, 720)).toBeNull();
    const many = Array.from({ length: MAX_DAMAGE_RECTS + 1 }, (_, i) => r(i % 1280, 0, 1, 1));
    expect(planBandRead(many, 1280, 720)).toBeNull();
  });
});
