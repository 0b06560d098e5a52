import zlib from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { PixelTranslator, SERVER_PIXEL_FORMAT, type Pixels, type PixelFormat } from '../../../src/liveview/vnc/pixel-format.js';
import { RawEncoder } from '../../../src/liveview/vnc/encodings/raw.js';
import { HextileEncoder } from '../../../src/liveview/vnc/encodings/hextile.js';
import { ZrleEncoder } from '../../../src/liveview/vnc/encodings/zrle.js';
import { TightEncoder, compactLength, jpegQualityForLevel } from '../../../src/liveview/vnc/encodings/tight.js';
import { encodeCopyRect, findScroll } from '../../../src/liveview/vnc/encodings/copyrect.js';

const pf = new PixelTranslator(SERVER_PIXEL_FORMAT);
const ctx = { pf, jpegQuality: null };
const RED = 0xff0000;
const WHITE = 0xffffff;
const BLACK = 0x000000;

function pixels(width: number, height: number, colour: (x: number, y: number) => number): Pixels {
  const data = new Uint32Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data[y * width + x] = colour(x, y);
  return { width, height, data };
}

/** An inflater that, like a client's, lives across rectangles. */
function inflater() {
  const z = zlib.createInflate();
  const out: Buffer[] = [];
  z.on('data', (c: Buffer) => out.push(c));
  return (data: Buffer) =>
    new Promise<Buffer>((resolve) => {
      z.write(data);
      z.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve(Buffer.concat(out.splice(0))));
    });
}

describe('Raw', () => {
  it('is every pixel in the client format', () => {
    const out = new RawEncoder().encode(pixels(2, 2, (x, y) => [0x112233, 0x445566, 0x778899, 0xaabbcc][y * 2 + x]!), ctx);
    expect(out.toString('hex')).toBe('33221100' + '66554400' + '99887700' + 'ccbbaa00');
  });
});

describe('Hextile', () => {
  it('sends a solid tile as its background, and omits it when it carries over', () => {
    const out = new HextileEncoder().encode(pixels(32, 16, () => RED), ctx);
    // tile 1: BackgroundSpecified + pixel; tile 2: subencoding 0 (same background).
    expect(out.toString('hex')).toBe('02' + '0000ff00' + '00');
  });

  it('sends a two-colour tile as background, foreground and subrects', () => {
    const out = new HextileEncoder().encode(pixels(4, 4, (x, y) => (y === 2 && (x === 1 || x === 2) ? BLACK : WHITE)), ctx);
    // Background|Foreground|AnySubrects, bg white, fg black, 1 subrect at (1,2) of 2x1.
    expect(out.toString('hex')).toBe('0e' + 'ffffff00' + '00000000' + '01' + '12' + '10');
  });

  it('sends a busy tile raw and specifies the background again after it', () => {
    const busy = pixels(16, 16, (x, y) => (x * 16 + y) * 0x010203);
    const both: Pixels = pixels(32, 16, (x, y) => (x < 16 ? busy.data[y * 16 + x]! : RED));
    const out = new HextileEncoder().encode(both, ctx);
    expect(out[0]).toBe(1);
    expect(out.subarray(1, 1 + 1024)).toEqual(pf.pixels(busy));
    expect(out.subarray(1025).toString('hex')).toBe('02' + '0000ff00');
  });

  it('uses the client pixel size (16 bpp)', () => {
    const pf16 = new PixelTranslator({ ...SERVER_PIXEL_FORMAT, bitsPerPixel: 16, depth: 16, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0 });
    expect(new HextileEncoder().encode(pixels(16, 16, () => RED), { pf: pf16, jpegQuality: null }).toString('hex')).toBe('0200f8');
  });
});

/** A ZRLE tile reader written from RFC 6143 7.7.6, independent of the encoder. */
function decodeZrle(data: Buffer, width: number, height: number, cp = 3): { tiles: number[]; pixels: number[] } {
  let off = 0;
  const cpixel = () => {
    const v = data[off]! | (data[off + 1]! << 8) | (data[off + 2]! << 16);
    off += cp;
    return v;
  };
  const runLength = () => {
    let n = 1;
    let b: number;
    do n += b = data[off++]!;
    while (b === 255);
    return n;
  };
  const out = new Array<number>(width * height);
  const tiles: number[] = [];
  for (let ty = 0; ty < height; ty += 64)
    for (let tx = 0; tx < width; tx += 64) {
      const tw = Math.min(64, width - tx);
      const th = Math.min(64, height - ty);
      const tile: number[] = [];
      const sub = data[off++]!;
      tiles.push(sub);
      if (sub === 0) for (let i = 0; i < tw * th; i++) tile.push(cpixel());
      else if (sub === 1) tile.push(...new Array<number>(tw * th).fill(cpixel()));
      else if (sub <= 16) {
        const palette = Array.from({ length: sub }, cpixel);
        const bits = sub <= 2 ? 1 : sub <= 4 ? 2 : 4;
        for (let y = 0; y < th; y++) {
          let bit = 0;
          for (let x = 0; x < tw; x++) {
            tile.push(palette[(data[off]! >> (8 - bits - bit)) & ((1 << bits) - 1)]!);
            bit += bits;
            if (bit === 8) (bit = 0), off++;
          }
          if (bit) off++;
        }
      } else if (sub === 128) while (tile.length < tw * th) { const p = cpixel(); tile.push(...new Array<number>(runLength()).fill(p)); }
      else {
        const palette = Array.from({ length: sub - 128 }, cpixel);
        while (tile.length < tw * th) {
          const i = data[off++]!;
          tile.push(...new Array<number>(i & 128 ? runLength() : 1).fill(palette[i & 127]!));
        }
      }
      tile.forEach((p, i) => (out[(ty + Math.floor(i / tw)) * width + tx + (i % tw)] = p));
    }
  expect(off).toBe(data.length);
  return { tiles, pixels: out };
}

describe('ZRLE', () => {
  it('sends a solid tile as subencoding 1 with a 3-byte CPIXEL', async () => {
    const enc = new ZrleEncoder();
    const out = await enc.encode(pixels(4, 4, () => RED), ctx);
    expect(out.readUInt32BE(0)).toBe(out.length - 4);
    expect((await inflater()(out.subarray(4))).toString('hex')).toBe('01' + '0000ff');
    enc.close();
  });

  it('round-trips every tile kind through one zlib stream that is never reset', async () => {
    const enc = new ZrleEncoder();
    const inflate = inflater();
    const cases: Array<[Pixels, number[]]> = [
      [pixels(64, 2, (x) => (x < 30 ? BLACK : WHITE)), [130]], // palette RLE, 2 colours
      [pixels(8, 8, (x, y) => ((x + y) % 2 ? BLACK : WHITE)), [2]], // packed palette, 1 bit
      [pixels(8, 8, (x, y) => [RED, BLACK, WHITE, 0x00ff00, 0x0000ff][(x * 3 + y) % 5]!), [5]], // packed, 4 bits
      [pixels(70, 66, (x, y) => (x * 3 + y * 700) & 0xffffff), [0, 0, 0, 0]], // raw, 4 tiles
      [pixels(64, 8, (x, y) => (y * 64 + x < 300 ? RED : x * 0x10101 + y * 0x40)), [128]], // plain RLE, run > 255
    ];
    for (const [px, tiles] of cases) {
      const out = await enc.encode(px, ctx);
      const decoded = decodeZrle(await inflate(out.subarray(4)), px.width, px.height);
      expect(decoded.tiles).toEqual(tiles);
      expect(decoded.pixels).toEqual([...px.data]);
    }
    enc.close();
  });
});

describe('Tight', () => {
  it('compact lengths take 1 to 3 bytes', () => {
    expect(compactLength(127).toString('hex')).toBe('7f');
    expect(compactLength(128).toString('hex')).toBe('8001');
    expect(compactLength(16383).toString('hex')).toBe('ff7f');
    expect(compactLength(16384).toString('hex')).toBe('808001');
  });

  it('fills a solid rect with one R,G,B TPIXEL', async () => {
    expect((await new TightEncoder().encode(pixels(8, 8, () => 0x123456), ctx)).toString('hex')).toBe('80' + '123456');
  });

  it('sends two colours as a mono palette, uncompressed under 12 bytes', async () => {
    const out = await new TightEncoder().encode(pixels(8, 2, (x) => (x < 4 ? BLACK : WHITE)), ctx);
    // stream 1 | explicit filter, palette filter, 2 colours, black, white, rows of bits.
    expect(out.toString('hex')).toBe('50' + '01' + '01' + '000000' + 'ffffff' + '0f' + '0f');
  });

  it('compresses an indexed palette and full colour data with zlib streams', async () => {
    const enc = new TightEncoder();
    const inflate = [inflater(), inflater(), inflater()];
    const three = pixels(16, 16, (x) => [RED, BLACK, WHITE][x % 3]!);
    const out = await enc.encode(three, ctx);
    expect(out.subarray(0, 3).toString('hex')).toBe('60' + '01' + '02'); // stream 2, palette of 3
    expect(out.subarray(3, 12).toString('hex')).toBe('ff0000' + '000000' + 'ffffff');
    const len = out[12]! | ((out[13]! & 0x7f) << 7);
    expect(out[12]! & 0x80 ? out.length - 14 : out.length - 13).toBe(out[12]! & 0x80 ? len : out[12]);
    const body = await inflate[2]!(out.subarray(out[12]! & 0x80 ? 14 : 13));
    expect([...body]).toEqual([...three.data].map((p) => [RED, BLACK, WHITE].indexOf(p)));

    const busy = pixels(16, 16, (x, y) => ((x * 16 + y) * 0x030507) & 0xffffff);
    const copy = await enc.encode(busy, ctx);
    expect(copy[0]).toBe(0x00); // basic, stream 0, implicit copy filter
    const rgb = await inflate[0]!(copy.subarray(copy[1]! & 0x80 ? 3 : 2));
    expect([...rgb]).toEqual([...busy.data].flatMap((p) => [p >> 16, (p >> 8) & 0xff, p & 0xff]));
    enc.close();
  });

  it('sends up to 256 colours as an 8-bit palette when the rect is large enough to pay for it', async () => {
    const grey = (x: number, y: number) => ((x + y * 64) % 200) * 0x010101; // 200 greys, like anti-aliased text
    const out = await new TightEncoder().encode(pixels(64, 64, grey), { pf, jpegQuality: jpegQualityForLevel(6) });
    expect(out.subarray(0, 3).toString('hex')).toBe('60' + '01' + 'c7'); // stream 2, palette of 200
    const body = await inflater()(out.subarray(3 + 200 * 3 + (out[3 + 600]! & 0x80 ? (out[3 + 601]! & 0x80 ? 3 : 2) : 1)));
    const palette = [...Array(200)].map((_, i) => out.readUIntBE(3 + i * 3, 3));
    expect([...body].map((i) => palette[i])).toEqual([...pixels(64, 64, grey).data]);
    // A 16x16 rect of 200 colours is not worth a palette: JPEG.
    expect((await new TightEncoder().encode(pixels(16, 16, grey), { pf, jpegQuality: jpegQualityForLevel(6) }))[0]).toBe(0x90);
  });

  it('uses JPEG for many colours when the client sent a quality level and has 24-bit colour', async () => {
    const px = pixels(32, 32, (x, y) => ((x * 8) << 16) | ((y * 8) << 8) | 0x40);
    const out = await new TightEncoder().encode(px, { pf, jpegQuality: jpegQualityForLevel(6) });
    expect(out[0]).toBe(0x90);
    const len = (out[1]! & 0x7f) | ((out[2]! & 0x7f) << 7) | (out[2]! & 0x80 ? out[3]! << 14 : 0);
    const jpeg = out.subarray(out[2]! & 0x80 ? 4 : 3);
    expect(jpeg.length).toBe(len);
    const { data, info } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([32, 32, 3]);
    for (let i = 0; i < px.data.length; i++) {
      const p = px.data[i]!;
      expect(Math.abs(data[i * 3]! - (p >> 16))).toBeLessThan(16);
      expect(Math.abs(data[i * 3 + 1]! - ((p >> 8) & 0xff))).toBeLessThan(16);
      expect(Math.abs(data[i * 3 + 2]! - (p & 0xff))).toBeLessThan(16);
    }
  });

  it('never sends JPEG without a quality level or to a 16 bpp client, and uses its PIXEL size', async () => {
    const px = pixels(32, 32, (x, y) => ((x * 8) << 16) | ((y * 8) << 8));
    expect((await new TightEncoder().encode(px, ctx))[0]).toBe(0x00);
    const f16: PixelFormat = { ...SERVER_PIXEL_FORMAT, bitsPerPixel: 16, depth: 16, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0 };
    const pf16 = new PixelTranslator(f16);
    const out = await new TightEncoder().encode(px, { pf: pf16, jpegQuality: 80 });
    expect(out[0]).toBe(0x00);
    const body = await inflater()(out.subarray(out[1]! & 0x80 ? (out[2]! & 0x80 ? 4 : 3) : 2));
    expect(body.length).toBe(32 * 32 * 2);
    expect((await new TightEncoder().encode(pixels(4, 4, () => RED), { pf: pf16, jpegQuality: 80 })).toString('hex')).toBe('80' + '00f8');
  });
});

describe('CopyRect', () => {
  it('encodes the source position', () => {
    expect(encodeCopyRect(0x102, 0x304).toString('hex')).toBe('01020304');
  });

  it('finds a vertical scroll inside a rect', () => {
    const W = 40;
    const H = 100;
    const content = (y: number) => (x: number) => ((y * 7919 + x * 31) & 0xffffff) | 1;
    const shown = new Uint32Array(W * H);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) shown[y * W + x] = content(y)(x);
    // Scrolled down by 12 rows inside rect y 10..90: new row r shows old row r + 12.
    const rect = { x: 0, y: 10, width: W, height: 80 };
    const fresh = pixels(W, 80, (x, r) => (r + 10 + 12 < H ? content(r + 10 + 12)(x) : 0x00ff00)).data;
    expect(findScroll(shown, W, rect, fresh)).toEqual({ y0: 10, y1: 10 + 80 - 12, dy: 12 });
    expect(findScroll(shown, W, rect, new Uint32Array(W * 80).fill(5))).toBeNull();
  });
});
