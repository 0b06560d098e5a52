import { describe, expect, it } from 'vitest';
import { diffTiles, parseXwdHeader, tileGrid, tilesToRects } from '../../../src/display/framebuffer.js';
import fc from 'fast-check';
import { HandoffError } from '../../../src/util/errors.js';
import { FrameMemory } from '../../../src/display/simd.js';

/** An XWD header as Xvfb writes it (XWDFile.h, all fields big-endian CARD32). */
function xwdHeader(over: Partial<Record<string, number>> = {}, name = 'Xvfb test:0.0'): Buffer {
  const nameBytes = Buffer.from(name + '\0', 'latin1');
  const f = {
    header_size: 100 + nameBytes.length,
    file_version: 7,
    pixmap_format: 2,
    pixmap_depth: 24,
    pixmap_width: 320,
    pixmap_height: 200,
    xoffset: 0,
    byte_order: 0,
    bitmap_unit: 32,
    bitmap_bit_order: 0,
    bitmap_pad: 32,
    bits_per_pixel: 32,
    bytes_per_line: 1280,
    visual_class: 4,
    red_mask: 0xff0000,
    green_mask: 0xff00,
    blue_mask: 0xff,
    bits_per_rgb: 8,
    colormap_entries: 256,
    ncolors: 256,
    window_width: 320,
    window_height: 200,
    window_x: 0,
    window_y: 0,
    window_bdrwidth: 0,
    ...over,
  };
  const b = Buffer.alloc(100);
  Object.values(f).forEach((v, i) => b.writeUInt32BE(v!, i * 4));
  return Buffer.concat([b, nameBytes]);
}

describe('parseXwdHeader', () => {
  it('computes the pixel offset from header_size and ncolors', () => {
    const h = xwdHeader();
    expect(h.length).toBe(114);
    expect(parseXwdHeader(h)).toEqual({
      width: 320,
      height: 200,
      bitsPerPixel: 32,
      bytesPerLine: 1280,
      pixelOffset: 114 + 256 * 12,
    });
    expect(parseXwdHeader(xwdHeader({ ncolors: 3 }, 'x')).pixelOffset).toBe(102 + 36);
    expect(parseXwdHeader(xwdHeader({ ncolors: 0 }, 'x')).pixelOffset).toBe(102);
  });

  it('keeps a padded stride', () => {
    expect(parseXwdHeader(xwdHeader({ bytes_per_line: 1344 })).bytesPerLine).toBe(1344);
  });

  it.each([
    [{ pixmap_depth: 16, bits_per_pixel: 16 }, /depth 16 at 16 bpp/],
    [{ bits_per_pixel: 24 }, /depth 24 at 24 bpp/],
    [{ byte_order: 1 }, /byte_order 1/],
    [{ pixmap_format: 1 }, /pixmap_format 1/],
    [{ file_version: 6 }, /file_version 6/],
    [{ bytes_per_line: 100 }, /bytes_per_line 100/],
    [{ red_mask: 0xff }, /masks/],
  ])('rejects %j clearly', (over, why) => {
    let err: unknown;
    try {
      parseXwdHeader(xwdHeader(over));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HandoffError);
    expect((err as HandoffError).detail).toMatch(why);
  });

  it('rejects a truncated header', () => {
    expect(() => parseXwdHeader(xwdHeader().subarray(0, 40))).toThrow(HandoffError);
  });
});

describe('tile diff', () => {
  // 200x150 with a padded stride: 4x3 tiles of 64, the last column 8 px wide, last row 22 px.
  const g = tileGrid(200, 150, 200 * 4 + 32, 64);
  const poke = (b: Buffer, x: number, y: number) => (b[y * g.stride + x * 4 + 1] ^= 0xff);
  // Plain buffers (Buffer#compare), and the two frames of a FrameMemory (SIMD, in place).
  const pairs = {
    'plain buffers': () => [Buffer.alloc(g.stride * g.height, 0x11), Buffer.alloc(g.stride * g.height, 0x11)] as const,
    'module memory': () => {
      const m = FrameMemory.create(g.stride * g.height, 2)!;
      for (const f of m.frames) f.fill(0x11);
      return [m.frames[0]!, m.frames[1]!] as const;
    },
  };

  for (const [where, pair] of Object.entries(pairs)) {
    it(`finds exactly the changed tiles (${where})`, () => {
      const [a, b] = pair();
      const changed = new Uint8Array(g.cols * g.rows);
      expect(diffTiles(a, b, g, changed)).toBe(0);
      poke(b, 0, 0); // tile (0,0)
      poke(b, 63, 63); // still (0,0)
      poke(b, 64, 0); // (1,0)
      poke(b, 199, 149); // (3,2): the clipped corner tile
      poke(b, 130, 100); // (2,1)
      expect(diffTiles(a, b, g, changed)).toBe(4);
      const set = [...changed].flatMap((v, i) => (v ? [[i % g.cols, Math.floor(i / g.cols)]] : []));
      expect(set).toEqual([[0, 0], [1, 0], [2, 1], [3, 2]]);
    });

    it(`ignores the stride padding (${where})`, () => {
      const [a, b] = pair();
      b[10 * g.stride + 200 * 4 + 5] = 0; // padding byte after the last pixel of line 10
      expect(diffTiles(a, b, g, new Uint8Array(g.cols * g.rows))).toBe(0);
    });
  }

  it('module memory: finds what Buffer#compare finds, for any one changed byte of a 1280x720 frame', () => {
    const big = tileGrid(1280, 720, 1280 * 4, 64);
    const m = FrameMemory.create(big.stride * big.height, 2)!;
    expect(m).not.toBeNull(); // Node 20 has WebAssembly SIMD: the daemon's path is this one
    const [a, b] = m.frames as [Buffer, Buffer];
    const plainA = Buffer.alloc(big.stride * big.height);
    const plainB = Buffer.alloc(big.stride * big.height);
    fc.assert(
      fc.property(fc.array(fc.nat(big.stride * big.height - 1), { minLength: 1, maxLength: 8 }), (offsets) => {
        a.fill(0, 0, big.stride * big.height);
        b.fill(0, 0, big.stride * big.height);
        plainA.fill(0);
        plainB.fill(0);
        for (const o of offsets) b[o] = plainB[o] = 1 + (o % 255);
        const viaSimd = new Uint8Array(big.cols * big.rows);
        const viaCompare = new Uint8Array(big.cols * big.rows);
        const n = diffTiles(a, b, big, viaSimd);
        expect(n).toBe(diffTiles(plainA, plainB, big, viaCompare));
        expect(viaSimd).toEqual(viaCompare);
        expect(n).toBeGreaterThan(0);
      }),
      { numRuns: 200 },
    );
  });

  it('merges runs into clipped rects', () => {
    const dirty = new Uint8Array(g.cols * g.rows);
    const set = (tx: number, ty: number) => (dirty[ty * g.cols + tx] = 1);
    set(1, 0); set(2, 0); set(3, 0); // a run reaching the right edge
    set(1, 1); set(2, 1); set(3, 1); // the same run below: extends it
    set(0, 2); set(3, 2);
    expect(tilesToRects(dirty, g)).toEqual([
      { x: 64, y: 0, width: 136, height: 128 },
      { x: 0, y: 128, width: 64, height: 22 },
      { x: 192, y: 128, width: 8, height: 22 },
    ]);
    expect(tilesToRects(new Uint8Array(12).fill(1), g)).toEqual([{ x: 0, y: 0, width: 200, height: 150 }]);
    expect(tilesToRects(new Uint8Array(12), g)).toEqual([]);
  });
});
