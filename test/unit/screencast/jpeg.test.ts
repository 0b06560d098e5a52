import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { bgrxToRgb, copyRgb, copyRgbLoop, sharpJpeg } from '../../../src/liveview/screencast/jpeg.js';
import { FrameMemory, simdBgrxToRgb } from '../../../src/display/simd.js';

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
    { x: 0, y: 0, width: 64, height: 32 }, // SIMD
    { x: 4, y: 3, width: 56, height: 29 }, // SIMD, ending on the last row
    { x: 4, y: 3, width: 8, height: 5 }, // SIMD, narrow
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

describe('simdBgrxToRgb (display/simd.ts)', () => {
  it('runs here, and matches the JavaScript loop on a 1280x720 frame, contiguous and into an atlas', () => {
    const f = frame(1280, 720, 0);
    for (let i = 0; i < f.data.length; i++) f.data[i] = (i * 2654435761) >>> 24; // every byte differs from its neighbours
    const viaSimd = Buffer.alloc(1280 * 720 * 3);
    expect(simdBgrxToRgb(f.data, 0, f.stride, 1280, 720, viaSimd, 0, 1280 * 3)).toBe(true);
    const viaLoop = Buffer.alloc(1280 * 720 * 3);
    copyRgbLoop(f, { x: 0, y: 0, width: 1280, height: 720 }, viaLoop, 1280 * 3, 0, 0);
    expect(viaSimd.equals(viaLoop)).toBe(true);
    // Narrow rects (rows copied into the module one by one), as atlas bands are.
    const viaBands = Buffer.alloc(1280 * 720 * 3);
    for (let x = 0; x < 1280; x += 64) for (let y = 0; y < 720; y += 64) copyRgb(f, { x, y, width: 64, height: Math.min(64, 720 - y) }, viaBands, 1280 * 3, x, y);
    expect(viaBands.equals(viaLoop)).toBe(true);
    // Into an atlas: at (8, 2) of a wider buffer, the bytes around it untouched.
    const atlas = Buffer.alloc(1300 * 3 * 730, 0x55);
    copyRgb(f, { x: 0, y: 100, width: 1280, height: 600 }, atlas, 1300 * 3, 8, 2);
    for (const row of [0, 1, 702, 729]) expect(atlas.subarray(row * 3900, (row + 1) * 3900).every((b) => b === 0x55)).toBe(true);
    for (const row of [2, 350, 601]) {
      expect(atlas.subarray(row * 3900 + 8 * 3, row * 3900 + (8 + 1280) * 3).equals(viaLoop.subarray((row - 2 + 100) * 3840, (row - 2 + 101) * 3840))).toBe(true);
      expect(atlas.subarray(row * 3900, row * 3900 + 24).every((b) => b === 0x55)).toBe(true);
      expect(atlas.subarray(row * 3900 + 1288 * 3, (row + 1) * 3900).every((b) => b === 0x55)).toBe(true);
    }
  });

  it('converts a frame of a FrameMemory in place, in passes of rows through its room', () => {
    const m = FrameMemory.create(1280 * 720 * 4, 2)!;
    const f = { width: 1280, height: 720, stride: 1280 * 4, data: m.frames[1]! };
    for (let i = 0; i < f.data.length; i++) f.data[i] = (i * 2654435761) >>> 24;
    const viaLoop = Buffer.alloc(1280 * 720 * 3);
    copyRgbLoop(f, { x: 0, y: 0, width: 1280, height: 720 }, viaLoop, 1280 * 3, 0, 0);
    const whole = Buffer.alloc(1280 * 720 * 3);
    copyRgb(f, { x: 0, y: 0, width: 1280, height: 720 }, whole, 1280 * 3, 0, 0);
    expect(whole.equals(viaLoop)).toBe(true);
    // A rect inside it (rows apart by the frame's stride), into an atlas at (16, 4).
    const atlas = Buffer.alloc(400 * 3 * 300, 0x55);
    copyRgb(f, { x: 100, y: 200, width: 320, height: 260 }, atlas, 400 * 3, 16, 4);
    for (const row of [0, 137, 259]) {
      const o = (row + 200) * 1280 * 3 + 100 * 3;
      expect(atlas.subarray((row + 4) * 1200 + 48, (row + 4) * 1200 + 48 + 960).equals(viaLoop.subarray(o, o + 960))).toBe(true);
    }
    expect(atlas.subarray(0, 4 * 1200).every((b) => b === 0x55)).toBe(true);
  });

  it('declines what it cannot do, so the caller converts', () => {
    const f = frame(64, 8);
    expect(simdBgrxToRgb(f.data, 0, f.stride, 7, 8, Buffer.alloc(7 * 8 * 3), 0, 21)).toBe(false); // not a multiple of 4
    expect(simdBgrxToRgb(f.data, 0, f.stride, 64, 0, Buffer.alloc(0), 0, 192)).toBe(false);
    // Out of either buffer: declined, never a short copy that leaves stale bytes.
    expect(simdBgrxToRgb(f.data, 0, f.stride, 64, 9, Buffer.alloc(64 * 9 * 3), 0, 192)).toBe(false);
    expect(simdBgrxToRgb(f.data, -4, f.stride, 64, 8, Buffer.alloc(64 * 8 * 3), 0, 192)).toBe(false);
    expect(simdBgrxToRgb(f.data, 0, f.stride, 64, 8, Buffer.alloc(64 * 8 * 3 - 1), 0, 192)).toBe(false);
    expect(simdBgrxToRgb(f.data, 0, f.stride, 64, 8, Buffer.alloc(64 * 8 * 3), 0, 192)).toBe(true);
  });
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
