import { Encoding } from '../protocol.js';
import { subPixels, type Pixels, type PixelTranslator } from '../pixel-format.js';
import type { EncodeContext, Encoder } from './encoder.js';

// RFC 6143 7.7.4 subencoding mask bits.
const RAW = 1;
const BACKGROUND_SPECIFIED = 2;
const FOREGROUND_SPECIFIED = 4;
const ANY_SUBRECTS = 8;

/**
 * Hextile (RFC 6143 7.7.4): 16x16 tiles, each solid, two-colour (background plus foreground
 * subrectangles) or raw. Background and foreground carry over between tiles of one rectangle.
 */
export class HextileEncoder implements Encoder {
  readonly encoding = Encoding.Hextile;

  encode(px: Pixels, { pf }: EncodeContext): Buffer {
    const parts: Buffer[] = [];
    // undefined = the client's value is unknown (start of rectangle, after a raw tile).
    const last: { bg?: number; fg?: number } = {};
    for (let ty = 0; ty < px.height; ty += 16) {
      for (let tx = 0; tx < px.width; tx += 16) {
        const tile = subPixels(px, tx, ty, Math.min(16, px.width - tx), Math.min(16, px.height - ty));
        parts.push(encodeTile(tile, pf, last));
      }
    }
    return Buffer.concat(parts);
  }
}

function encodeTile(tile: Pixels, pf: PixelTranslator, last: { bg?: number; fg?: number }): Buffer {
  const colours = countColours(tile.data);
  if (colours.size <= 2) {
    const [bg, fg] = [...colours.entries()].sort((a, b) => b[1] - a[1]).map(([c]) => c) as [number, number?];
    const subrects = fg === undefined ? [] : coverSubrects(tile, fg);
    const bpp = pf.bytesPerPixel;
    const size = 1 + 2 * bpp + 1 + 2 * subrects.length;
    if (subrects.length <= 255 && size < 1 + tile.data.length * bpp) {
      const out = Buffer.alloc(size);
      let flags = 0;
      let off = 1;
      if (bg !== last.bg) {
        flags |= BACKGROUND_SPECIFIED;
        off = pf.write(out, off, bg);
        last.bg = bg;
      }
      if (fg !== undefined) {
        flags |= ANY_SUBRECTS;
        if (fg !== last.fg) {
          flags |= FOREGROUND_SPECIFIED;
          off = pf.write(out, off, fg);
          last.fg = fg;
        }
        out[off++] = subrects.length;
        for (const [x, y, w, h] of subrects) {
          out[off++] = (x << 4) | y;
          out[off++] = ((w - 1) << 4) | (h - 1);
        }
      }
      out[0] = flags;
      return out.subarray(0, off);
    }
  }
  last.bg = last.fg = undefined;
  return Buffer.concat([Buffer.of(RAW), pf.pixels(tile)]);
}

/** Colour -> pixel count, giving up past 2 colours. */
function countColours(data: Uint32Array): Map<number, number> {
  const m = new Map<number, number>();
  for (const p of data) {
    m.set(p, (m.get(p) ?? 0) + 1);
    if (m.size > 2) break;
  }
  return m;
}

/** Greedy cover of the `fg` pixels: a horizontal run, grown downwards while it stays all fg. */
function coverSubrects(tile: Pixels, fg: number): Array<[number, number, number, number]> {
  const { width: w, height: h, data } = tile;
  const done = new Uint8Array(w * h);
  const rects: Array<[number, number, number, number]> = [];
  const free = (i: number) => data[i] === fg && !done[i];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!free(y * w + x)) continue;
      let rw = 1;
      while (x + rw < w && free(y * w + x + rw)) rw++;
      let rh = 1;
      grow: while (y + rh < h) {
        for (let i = 0; i < rw; i++) if (!free((y + rh) * w + x + i)) break grow;
        rh++;
      }
      for (let r = 0; r < rh; r++) done.fill(1, (y + r) * w + x, (y + r) * w + x + rw);
      rects.push([x, y, rw, rh]);
      if (rects.length > 255) return rects;
    }
  }
  return rects;
}
