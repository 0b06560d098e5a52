import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { bgrxToRgb, sharpJpeg } from '../../../src/liveview/screencast/jpeg.js';

/** A B,G,R,X frame with a distinct colour in every pixel and padding at the end of each row. */
function frame(width: number, height: number, pad = 8) {
  const stride = width * 4 + pad;
  const data = Buffer.alloc(stride * height, 0xee);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const o = y * stride + x * 4;
      data[o] = (x * 3) & 0xff; // B
      data[o + 1] = (y * 5) & 0xff; // G
      data[o + 2] = (x + y) & 0xff; // R
      data[o + 3] = 0x7f; // X: never shows
    }
  return { width, height, stride, data };
}

describe('bgrxToRgb', () => {
  for (const rect of [
    { x: 0, y: 0, width: 64, height: 32 }, // aligned fast path
    { x: 4, y: 3, width: 8, height: 5 },
    { x: 1, y: 2, width: 7, height: 3 }, // odd width: the byte path
  ]) {
    it(`copies ${rect.width}x${rect.height}@${rect.x},${rect.y} as R,G,B`, () => {
      const f = frame(64, 32);
      const out = bgrxToRgb(f, rect);
      expect(out.data.length).toBe(rect.width * rect.height * 3);
      for (let y = 0; y < rect.height; y++)
        for (let x = 0; x < rect.width; x++) {
          const o = (rect.y + y) * f.stride + (rect.x + x) * 4;
          const j = (y * rect.width + x) * 3;
          expect([out.data[j], out.data[j + 1], out.data[j + 2]]).toEqual([f.data[o + 2], f.data[o + 1], f.data[o]]);
        }
    });
  }
});

describe('sharpJpeg', () => {
  it('encodes a JPEG that decodes to the same colours', async () => {
    const width = 128;
    const height = 64;
    const rgb = Buffer.alloc(width * height * 3);
    for (let i = 0; i < width * height; i++) rgb.set(i % width < 64 ? [200, 40, 90] : [10, 220, 130], i * 3);
    const jpeg = await sharpJpeg({ width, height, data: rgb }, 75);
    const meta = await sharp(jpeg).metadata();
    expect(meta).toMatchObject({ format: 'jpeg', width, height, chromaSubsampling: '4:2:0' });
    const { data } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true });
    const at = (x: number, y: number) => [...data.subarray((y * width + x) * 3, (y * width + x) * 3 + 3)];
    for (const [got, want] of [[at(20, 20), [200, 40, 90]], [at(100, 40), [10, 220, 130]]] as const)
      for (let c = 0; c < 3; c++) expect(Math.abs(got[c]! - want[c]!)).toBeLessThanOrEqual(6);
  });
});
