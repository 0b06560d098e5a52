import sharp from 'sharp';
import type { FrameView, Rect } from '../../display/types.js';
import { simdBgrxToRgb } from '../../display/simd.js';

/**
 * Packed R,G,B pixels of one rectangle, copied out of a frame. The copy is needed anyway:
 * FrameView.data is only valid until the next event-loop turn, and sharp reads it later on
 * a libuv thread.
 */
export interface RgbPixels {
  width: number;
  height: number;
  data: Buffer;
}

/** Encodes packed RGB to JPEG. The Screencast takes one so tests can count encodes. */
export type JpegEncoder = (pixels: RgbPixels, quality: number) => Promise<Buffer>;

/**
 * Copies `rect` of a B,G,R,X frame into packed R,G,B.
 *
 * Measured here at 1280x720: this 4-pixels-per-step loop (16 bytes in, 12 out, as 32-bit
 * words) takes ~2.4 ms (display/simd.ts does it in a third of that where it can), then sharp encodes the 3-band
 * raw. The alternatives cost more in total: Buffer#swap32 plus a 1-byte offset view gives
 * R,G,B,X in ~1.2 ms, but sharp's removeAlpha() on 4-band input adds ~2.5 ms to the encode;
 * recomb() doubles the encode; a byte-per-byte loop takes ~4.5 ms.
 */
export function bgrxToRgb(frame: FrameView, rect: Rect): RgbPixels {
  const out = Buffer.allocUnsafeSlow(rect.width * rect.height * 3);
  copyRgb(frame, rect, out, rect.width * 3, 0, 0);
  return { width: rect.width, height: rect.height, data: out };
}

/**
 * Copies `rect` of a B,G,R,X frame as packed R,G,B into `out` (rows of `outStride` bytes) at
 * pixel (ox, oy): one tile of an atlas (atlas.ts), or a whole picture.
 */
export function copyRgb(frame: FrameView, rect: Rect, out: Buffer, outStride: number, ox: number, oy: number): void {
  // In WebAssembly SIMD (display/simd.ts) where it can: about a third of the loop's time.
  if (simdBgrxToRgb(frame.data, rect.y * frame.stride + rect.x * 4, frame.stride, rect.width, rect.height, out, oy * outStride + ox * 3, outStride)) return;
  copyRgbLoop(frame, rect, out, outStride, ox, oy);
}

/** copyRgb in JavaScript: where WebAssembly SIMD cannot (and what tests compare it with). */
export function copyRgbLoop(frame: FrameView, rect: Rect, out: Buffer, outStride: number, ox: number, oy: number): void {
  const { x, y, width, height } = rect;
  const src = frame.data;
  const aligned = (src.byteOffset & 3) === 0 && (frame.stride & 3) === 0 && (width & 3) === 0 && (out.byteOffset & 3) === 0 && (outStride & 3) === 0 && (ox & 3) === 0;
  if (aligned) {
    const s32 = new Uint32Array(src.buffer, src.byteOffset, src.length >>> 2);
    const o32 = new Uint32Array(out.buffer, out.byteOffset, out.length >>> 2);
    const rowWords = frame.stride >>> 2;
    const outWords = outStride >>> 2;
    for (let row = 0; row < height; row++) {
      let i = (y + row) * rowWords + x;
      const end = i + width;
      let j = (oy + row) * outWords + (ox * 3) / 4;
      // Little-endian words: a pixel reads as X<<24 | R<<16 | G<<8 | B. Four pixels become
      // bytes Ra Ga Ba Rb | Gb Bb Rc Gc | Bc Rd Gd Bd, i.e. three output words.
      for (; i < end; i += 4) {
        const a = s32[i]!;
        const b = s32[i + 1]!;
        const c = s32[i + 2]!;
        const d = s32[i + 3]!;
        o32[j++] = ((a >>> 16) & 0xff) | (a & 0xff00) | ((a & 0xff) << 16) | (((b >>> 16) & 0xff) << 24);
        o32[j++] = ((b >>> 8) & 0xff) | ((b & 0xff) << 8) | (c & 0xff0000) | ((c & 0xff00) << 16);
        o32[j++] = (c & 0xff) | (((d >>> 16) & 0xff) << 8) | ((d & 0xff00) << 8) | ((d & 0xff) << 24);
      }
    }
  } else {
    // Odd widths (never on a 64-tile grid of a screen whose width is a multiple of 4).
    for (let row = 0; row < height; row++) {
      let o = (y + row) * frame.stride + x * 4;
      let j = (oy + row) * outStride + ox * 3;
      for (let col = 0; col < width; col++, o += 4) {
        out[j++] = src[o + 2]!;
        out[j++] = src[o + 1]!;
        out[j++] = src[o]!;
      }
    }
  }
}

/**
 * Like copyRgb at half size: each output pixel is the mean of a 2x2 block (the last row or
 * column repeats on an odd edge). For a link too slow for the full picture: a quarter of the
 * pixels to encode and send.
 */
export function copyRgbHalf(frame: FrameView, rect: Rect, out: Buffer, outStride: number, ox: number, oy: number): void {
  const src = frame.data;
  const s32 = (src.byteOffset & 3) === 0 && (frame.stride & 3) === 0 ? new Uint32Array(src.buffer, src.byteOffset, src.length >>> 2) : null;
  const rowWords = frame.stride >>> 2;
  const ow = (rect.width + 1) >> 1;
  const oh = (rect.height + 1) >> 1;
  const lastX = rect.x + rect.width - 1;
  const lastY = rect.y + rect.height - 1;
  const px = (xx: number, yy: number) => (s32 ? s32[yy * rowWords + xx]! : src.readUInt32LE(yy * frame.stride + xx * 4));
  for (let row = 0; row < oh; row++) {
    const y0 = rect.y + row * 2;
    const y1 = Math.min(lastY, y0 + 1);
    let j = (oy + row) * outStride + ox * 3;
    for (let col = 0; col < ow; col++) {
      const x0 = rect.x + col * 2;
      const x1 = Math.min(lastX, x0 + 1);
      const a = px(x0, y0);
      const b = px(x1, y0);
      const c = px(x0, y1);
      const d = px(x1, y1);
      out[j++] = (((a >>> 16) & 0xff) + ((b >>> 16) & 0xff) + ((c >>> 16) & 0xff) + ((d >>> 16) & 0xff) + 2) >> 2;
      out[j++] = (((a >>> 8) & 0xff) + ((b >>> 8) & 0xff) + ((c >>> 8) & 0xff) + ((d >>> 8) & 0xff) + 2) >> 2;
      out[j++] = ((a & 0xff) + (b & 0xff) + (c & 0xff) + (d & 0xff) + 2) >> 2;
    }
  }
}

/** Below this many pixels a JPEG gets optimised Huffman tables (see sharpJpeg). */
const OPTIMISE_BELOW_PIXELS = 256 * 256;

/**
 * sharp with baseline libjpeg-turbo settings: mozjpeg's trellis quantisation is several times
 * slower for a few percent fewer bytes, and 4:2:0 halves the chroma a viewer barely sees.
 * Optimised Huffman tables are a second pass: on a 720p frame they cost ~6 ms (4.5 -> 10.8 ms)
 * to save ~5%, but on a small tile they save about half the bytes (the standard tables are
 * ~400 bytes of header) for next to no time, so only tiles get them.
 */
export const sharpJpeg: JpegEncoder = (p, quality) =>
  sharp(p.data, { raw: { width: p.width, height: p.height, channels: 3 } })
    .jpeg({ quality, mozjpeg: false, chromaSubsampling: '4:2:0', optimiseCoding: p.width * p.height < OPTIMISE_BELOW_PIXELS })
    .toBuffer();
