import sharp from 'sharp';
import { Encoding } from '../protocol.js';
import type { Pixels, PixelTranslator } from '../pixel-format.js';
import type { EncodeContext, Encoder } from './encoder.js';
import { DeflateStream } from './zlib-stream.js';

// Compression-control byte (rfbproto Tight): high nibble 8 = fill, 9 = JPEG, 0-7 = basic with the
// zlib stream id in bits 4-5 and bit 6 = "a filter id follows". Low bits (stream resets) stay 0.
const FILL = 0x80;
const JPEG = 0x90;
const EXPLICIT_FILTER = 0x40;
const PALETTE_FILTER = 1;
/** Shorter data is sent uncompressed (rfbproto Tight). */
const MIN_TO_COMPRESS = 12;
/**
 * Up to 256 colours go as a palette with 8-bit indices (rfbproto Tight palette filter): lossless
 * and, for anti-aliased text, much smaller than JPEG. Only while the palette pays for itself:
 * at most one colour per 4 pixels (small rects keep the old limit of 16).
 */
const MAX_PALETTE = 256;
const MIN_PALETTE_LIMIT = 16;
/** Below this many pixels JPEG headers cost more than they save. */
const MIN_JPEG_PIXELS = 256;
// Streams by content, as TightVNC does, so each dictionary sees similar data.
const STREAM_COPY = 0;
const STREAM_MONO = 1;
const STREAM_INDEXED = 2;

/**
 * Tight (rfbproto "Tight Encoding"): fill for solid rectangles, a palette filter for few colours,
 * JPEG for the rest when the client sent a quality level and uses 24-bit true colour (JPEG is
 * R,G,B), otherwise zlib-compressed TPIXELs. Four zlib streams per connection, never reset.
 */
export class TightEncoder implements Encoder {
  readonly encoding = Encoding.Tight;
  /** Width is capped at 2048 by the spec; the area keeps zlib data within the 22-bit length. */
  readonly maxRect = { width: 256, height: 256 };
  private readonly streams: DeflateStream[] = [];

  constructor(private readonly zlibLevel = 6) {}

  async encode(px: Pixels, { pf, jpegQuality }: EncodeContext): Promise<Buffer> {
    const palette = paletteOf(px.data, Math.min(MAX_PALETTE, Math.max(MIN_PALETTE_LIMIT, px.data.length >> 2)));
    if (palette?.size === 1) return pixelsAfter(FILL, px.data.subarray(0, 1), pf);
    if (palette) return this.paletteRect(px, palette, pf);
    if (jpegQuality !== null && pf.tight24 && px.data.length >= MIN_JPEG_PIXELS) {
      const jpeg = await sharp(rgb(px.data), { raw: { width: px.width, height: px.height, channels: 3 } })
        .jpeg({ quality: jpegQuality })
        .toBuffer();
      return Buffer.concat([Buffer.of(JPEG), compactLength(jpeg.length), jpeg]);
    }
    const body = Buffer.alloc(px.data.length * (pf.tight24 ? 3 : pf.bytesPerPixel));
    px.data.reduce((off, p) => pf.writeTight(body, off, p), 0);
    return Buffer.concat([Buffer.of(STREAM_COPY << 4), await this.compressed(STREAM_COPY, body)]);
  }

  close(): void {
    for (const s of this.streams) s?.close();
  }

  private async paletteRect(px: Pixels, palette: Map<number, number>, pf: PixelTranslator): Promise<Buffer> {
    const { width, height, data } = px;
    const mono = palette.size === 2;
    const stream = mono ? STREAM_MONO : STREAM_INDEXED;
    const head = pixelsAfter((stream << 4) | EXPLICIT_FILTER, Uint32Array.from(palette.keys()), pf, [
      PALETTE_FILTER,
      palette.size - 1,
    ]);
    let body: Buffer;
    if (mono) {
      // 1 bit per pixel, most significant first, rows padded to a byte.
      const rowBytes = Math.ceil(width / 8);
      body = Buffer.alloc(rowBytes * height);
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++)
          if (palette.get(data[y * width + x]!)) body[y * rowBytes + (x >> 3)]! |= 0x80 >> (x & 7);
    } else {
      body = Buffer.from(data.map((p) => palette.get(p)!));
    }
    return Buffer.concat([head, await this.compressed(stream, body)]);
  }

  private async compressed(stream: number, data: Buffer): Promise<Buffer> {
    if (data.length < MIN_TO_COMPRESS) return data;
    const z = await (this.streams[stream] ??= new DeflateStream(this.zlibLevel)).compress(data);
    return Buffer.concat([compactLength(z.length), z]);
  }
}

/** Tight's 1-3 byte length: 7 bits per byte, high bit = another byte follows. */
export function compactLength(n: number): Buffer {
  if (n < 0x80) return Buffer.of(n);
  if (n < 0x4000) return Buffer.of((n & 0x7f) | 0x80, n >> 7);
  return Buffer.of((n & 0x7f) | 0x80, ((n >> 7) & 0x7f) | 0x80, n >> 14);
}

/** Colour -> index, or null past `max` colours. */
function paletteOf(data: Uint32Array, max: number): Map<number, number> | null {
  const m = new Map<number, number>();
  for (const p of data) {
    if (m.has(p)) continue;
    if (m.size === max) return null;
    m.set(p, m.size);
  }
  return m;
}

/** Header bytes, then TPIXELs. */
function pixelsAfter(ctl: number, colours: Uint32Array, pf: PixelTranslator, extra: number[] = []): Buffer {
  const out = Buffer.alloc(1 + extra.length + colours.length * 4);
  out[0] = ctl;
  out.set(extra, 1);
  const end = colours.reduce((off, c) => pf.writeTight(out, off, c), 1 + extra.length);
  return out.subarray(0, end);
}

function rgb(data: Uint32Array): Buffer {
  const out = Buffer.alloc(data.length * 3);
  for (let i = 0, o = 0; i < data.length; i++, o += 3) {
    const p = data[i]!;
    out[o] = p >>> 16;
    out[o + 1] = p >>> 8;
    out[o + 2] = p;
  }
  return out;
}

/** JPEG quality for the client's quality level 0-9 (pseudo-encodings -32..-23), as TigerVNC maps it. */
export function jpegQualityForLevel(level: number): number {
  return [15, 29, 41, 42, 62, 77, 79, 86, 92, 100][level]!;
}
