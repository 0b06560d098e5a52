import { describe, expect, it } from 'vitest';
import {
  BGR233,
  PixelTranslator,
  SERVER_PIXEL_FORMAT,
  pixelFormatProblem,
  readPixels,
  type PixelFormat,
} from '../../../src/liveview/vnc/pixel-format.js';

const fmt = (over: Partial<PixelFormat>): PixelFormat => ({ ...SERVER_PIXEL_FORMAT, ...over });
const hex = (pf: PixelFormat, rgb: number, how: 'write' | 'writeCompact' | 'writeTight' = 'write') => {
  const t = new PixelTranslator(pf);
  const out = Buffer.alloc(4);
  return out.subarray(0, t[how](out, 0, rgb)).toString('hex');
};

describe('pixel format translation', () => {
  it('keeps the server format byte for byte (B,G,R,X little endian)', () => {
    expect(hex(SERVER_PIXEL_FORMAT, 0x112233)).toBe('33221100');
  });

  it('32 bpp big endian with noVNC-style shifts (R0 G8 B16)', () => {
    const pf = fmt({ bigEndian: true, redShift: 0, greenShift: 8, blueShift: 16 });
    expect(hex(pf, 0x112233)).toBe('00332211');
    expect(hex({ ...pf, bigEndian: false }, 0x112233)).toBe('11223300');
  });

  it('16 bpp RGB565 in both byte orders, intensities rounded', () => {
    const pf = fmt({ bitsPerPixel: 16, depth: 16, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0 });
    expect(hex(pf, 0xff0000)).toBe('00f8');
    expect(hex({ ...pf, bigEndian: true }, 0xff0000)).toBe('f800');
    expect(hex(pf, 0x00ff00)).toBe('e007');
    expect(hex(pf, 0xffffff)).toBe('ffff');
    // 0x80 * 31 / 255 = 15.56 -> 16
    expect(new PixelTranslator(pf).value(0x800000)).toBe(16 << 11);
  });

  it('16 bpp RGB555 with unusual shifts', () => {
    const pf = fmt({ bitsPerPixel: 16, depth: 15, redMax: 31, greenMax: 31, blueMax: 31, redShift: 0, greenShift: 5, blueShift: 10 });
    expect(new PixelTranslator(pf).value(0x0000ff)).toBe(31 << 10);
  });

  it('8 bpp BGR233', () => {
    expect(hex(BGR233, 0xff0000)).toBe('07');
    expect(hex(BGR233, 0x00ff00)).toBe('38');
    expect(hex(BGR233, 0x0000ff)).toBe('c0');
  });

  it('CPIXEL is the 3 significant bytes when all colour bits fit (RFC 6143 7.7.6)', () => {
    expect(hex(SERVER_PIXEL_FORMAT, 0x112233, 'writeCompact')).toBe('332211');
    expect(hex(fmt({ bigEndian: true }), 0x112233, 'writeCompact')).toBe('112233');
    // Colours in the high three bytes: the low byte is dropped.
    const high = fmt({ redShift: 24, greenShift: 16, blueShift: 8 });
    expect(hex(high, 0x112233)).toBe('00332211');
    expect(hex(high, 0x112233, 'writeCompact')).toBe('332211');
    expect(hex(fmt({ bitsPerPixel: 16, depth: 16, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0 }), 0xffffff, 'writeCompact')).toBe('ffff');
  });

  it('Tight TPIXEL is R,G,B only for 32 bpp depth 24 with 8-bit channels', () => {
    expect(hex(SERVER_PIXEL_FORMAT, 0x112233, 'writeTight')).toBe('112233');
    expect(hex(fmt({ bigEndian: true, redShift: 0, blueShift: 16 }), 0x112233, 'writeTight')).toBe('112233');
    expect(hex(BGR233, 0xff0000, 'writeTight')).toBe('07');
  });

  it('rejects formats it cannot produce', () => {
    expect(pixelFormatProblem(fmt({ bitsPerPixel: 24 }))).toMatch(/bits-per-pixel/);
    expect(pixelFormatProblem(fmt({ redMax: 100 }))).toMatch(/2\^n-1/);
    expect(pixelFormatProblem(fmt({ bitsPerPixel: 16, redShift: 16 }))).toMatch(/overflows/);
    expect(pixelFormatProblem(BGR233)).toBeNull();
  });

  it('reads a rect out of a strided B,G,R,X frame', () => {
    const stride = 16; // 3 pixels + 4 bytes padding
    const data = Buffer.alloc(stride * 2);
    data.writeUInt32LE(0x00aabbcc, stride + 4);
    const px = readPixels({ stride, data }, { x: 1, y: 1, width: 2, height: 1 });
    expect([...px.data]).toEqual([0xaabbcc, 0]);
  });

  it('Raw bodies (pixels) equal write() per pixel in every byte order and size, fast paths included', () => {
    const px = { width: 3, height: 2, data: Uint32Array.from([0x112233, 0xffffff, 0, 0x123456, 0x808080, 0xfe0102]) };
    const formats = [
      SERVER_PIXEL_FORMAT,
      fmt({ bigEndian: true }),
      fmt({ redShift: 0, greenShift: 8, blueShift: 16 }),
      fmt({ bitsPerPixel: 16, depth: 16, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0 }),
      fmt({ bitsPerPixel: 16, depth: 16, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0, bigEndian: true }),
      BGR233,
    ];
    for (const f of formats) {
      const t = new PixelTranslator(f);
      const expected = Buffer.alloc(px.data.length * t.bytesPerPixel);
      px.data.reduce((off, p) => t.write(expected, off, p), 0);
      expect(t.pixels(px).toString('hex')).toBe(expected.toString('hex'));
    }
  });

  it('reads unaligned frames the slow way and aligned ones the fast way, with the same result', () => {
    const stride = 16;
    const aligned = Buffer.alloc(stride * 2);
    aligned.writeUInt32LE(0xff112233, 4); // X byte set: masked away
    const unaligned = Buffer.alloc(stride * 2 + 1).subarray(1);
    aligned.copy(unaligned);
    for (const data of [aligned, unaligned]) expect([...readPixels({ stride, data }, { x: 1, y: 0, width: 2, height: 1 }).data]).toEqual([0x112233, 0]);
  });
});
