import type { PixelTranslator } from './pixel-format.js';
import { Encoding, rectHeader } from './protocol.js';

/**
 * The pointer shape for clients that list the Cursor pseudo-encoding (rfbproto -239): they draw
 * it locally at their own mouse position, so the pointer follows the hand without a round trip.
 * A plain arrow: the session's X cursor shape is not reachable from a viewer (Xvfb draws its
 * software cursor into the framebuffer, where the page's I-beam or hand stays visible).
 * 'X' is black, '.' white, ' ' transparent; the hotspot is the tip at (0, 0).
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

/** The Cursor rectangle (header included): PIXELs in the client's format, then the 1-bit mask. */
export function cursorRect(pf: PixelTranslator): Buffer {
  const height = ARROW.length;
  const width = ARROW[0]!.length;
  const data = new Uint32Array(width * height);
  const rowBytes = Math.ceil(width / 8);
  const mask = Buffer.alloc(rowBytes * height);
  ARROW.forEach((row, y) => {
    for (let x = 0; x < width; x++) {
      const c = row[x];
      if (c === ' ') continue;
      data[y * width + x] = c === '.' ? 0xffffff : 0x000000;
      // rfbproto: mask rows are padded to whole bytes, most significant bit first.
      mask[y * rowBytes + (x >> 3)]! |= 0x80 >> (x & 7);
    }
  });
  return Buffer.concat([rectHeader(0, 0, width, height, Encoding.Cursor), pf.pixels({ width, height, data }), mask]);
}
