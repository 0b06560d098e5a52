import type { CursorShape } from '../../display/types.js';
import type { PixelTranslator } from './pixel-format.js';
import { Encoding, rectHeader } from './protocol.js';

/**
 * The pointer shape for clients that list the Cursor pseudo-encoding (RFC 6143 7.8.1, -239):
 * they draw it locally at their own mouse position, so the pointer follows the hand without a
 * round trip. The shape is the session's X cursor (XFIXES: the page's hand, I-beam...); this
 * arrow stands in while it is not known. 'X' is black, '.' white, ' ' transparent; the
 * hotspot is the tip at (0, 0).
 */
const ARROW = [
  'X           ',
  'XX          ',
  'X.X         ',
  'X..X        ',
  'X...X       ',
  'X....X      ',
  'X.....X     ',
  'X......X    ',
  'X.......X   ',
  'X........X  ',
  'X.........X ',
  'X......XXXXX',
  'X...X..X    ',
  'X..XX..X    ',
  'X.X  X..X   ',
  'XX   X..X   ',
  'X     X..X  ',
  '      X..X  ',
  '       XX   ',
];

/** The stand-in arrow as a shape (opaque black and white, the rest transparent). */
export const DEFAULT_CURSOR: CursorShape = (() => {
  const height = ARROW.length;
  const width = ARROW[0]!.length;
  const argb = new Uint32Array(width * height);
  ARROW.forEach((row, y) => {
    for (let x = 0; x < width; x++) {
      const c = row[x];
      if (c !== ' ') argb[y * width + x] = c === '.' ? 0xffffffff : 0xff000000;
    }
  });
  return { width, height, hotX: 0, hotY: 0, argb };
})();

/**
 * The Cursor rectangle (header included): the hotspot as x, y, PIXELs in the client's format,
 * then the 1-bit mask. RFB has no alpha: a pixel at least half opaque is shown, its colour
 * un-premultiplied; the rest is transparent.
 */
export function cursorRect(pf: PixelTranslator, shape: CursorShape | null = null): Buffer {
  const { width, height, hotX, hotY, argb } = shape ?? DEFAULT_CURSOR;
  const data = new Uint32Array(width * height);
  const rowBytes = Math.ceil(width / 8);
  const mask = Buffer.alloc(rowBytes * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = argb[y * width + x]!;
      const a = p >>> 24;
      if (a < 128) continue;
      const un = (c: number) => Math.min(255, Math.round((c * 255) / a));
      data[y * width + x] = (un((p >>> 16) & 0xff) << 16) | (un((p >>> 8) & 0xff) << 8) | un(p & 0xff);
      // rfbproto: mask rows are padded to whole bytes, most significant bit first.
      mask[y * rowBytes + (x >> 3)]! |= 0x80 >> (x & 7);
    }
  }
  return Buffer.concat([rectHeader(hotX, hotY, width, height, Encoding.Cursor), pf.pixels({ width, height, data }), mask]);
}
