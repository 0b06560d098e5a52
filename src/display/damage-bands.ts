import type { Rect } from './types.js';

// Which rows of the framebuffer file to read for a damaged region. Rows are contiguous in the
// XWD file, so each band of rows is one positioned read.

/** Rows [y0, y1) of the screen. */
export type RowBand = readonly [y0: number, y1: number];

/** More rectangles than this in one damage region: read everything (bounds the work per look). */
export const MAX_DAMAGE_RECTS = 512;
/**
 * Past this share of the rows, one read of the whole frame: reading bands costs the bands plus a
 * copy of the smaller of them and the rest (see Framebuffer), which only pays while the rest
 * is worth skipping.
 */
export const MAX_BAND_SHARE = 0.9;

/**
 * The row bands covering `rects` clipped to a width x height screen: sorted, disjoint, and
 * bands that overlap or touch are merged. Rects outside the screen or empty are dropped.
 */
export function rowBands(rects: readonly Rect[], width: number, height: number): RowBand[] {
  const spans: [number, number][] = [];
  for (const r of rects) {
    if (!(r.width > 0 && r.height > 0) || r.x >= width || r.x + r.width <= 0) continue;
    const y0 = Math.max(0, r.y);
    const y1 = Math.min(height, r.y + r.height);
    if (y1 > y0) spans.push([y0, y1]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  const bands: [number, number][] = [];
  for (const s of spans) {
    const last = bands[bands.length - 1];
    if (last && s[0] <= last[1]) last[1] = Math.max(last[1], s[1]);
    else bands.push([s[0], s[1]]);
  }
  return bands;
}

/**
 * The bands to read for a damage region, or null when reading the whole frame is the better
 * plan: too many rectangles, or bands covering more than MAX_BAND_SHARE of the rows.
 */
export function planBandRead(rects: readonly Rect[], width: number, height: number): RowBand[] | null {
  if (rects.length > MAX_DAMAGE_RECTS) return null;
  const bands = rowBands(rects, width, height);
  let rows = 0;
  for (const [y0, y1] of bands) rows += y1 - y0;
  return rows > height * MAX_BAND_SHARE ? null : bands;
}
