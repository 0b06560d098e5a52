/**
 * PIXEL_FORMAT (RFC 6143 7.4) and the translation from the framebuffer's 0xRRGGBB pixels to
 * whatever true-colour format the client asked for.
 */

export interface PixelFormat {
  bitsPerPixel: number;
  depth: number;
  bigEndian: boolean;
  trueColour: boolean;
  redMax: number;
  greenMax: number;
  blueMax: number;
  redShift: number;
  greenShift: number;
  blueShift: number;
}

/** What ServerInit announces: the X server's own layout, so Raw is a plain copy for most clients. */
export const SERVER_PIXEL_FORMAT: Readonly<PixelFormat> = Object.freeze({
  bitsPerPixel: 32,
  depth: 24,
  bigEndian: false,
  trueColour: true,
  redMax: 255,
  greenMax: 255,
  blueMax: 255,
  redShift: 16,
  greenShift: 8,
  blueShift: 0,
});

/**
 * Colour-map mode at 8 bpp (RFC 6143 7.6.2): we install a fixed BGR233 map and then translate
 * as if the client had asked for this true-colour layout.
 */
export const BGR233: Readonly<PixelFormat> = Object.freeze({
  bitsPerPixel: 8,
  depth: 8,
  bigEndian: false,
  trueColour: true,
  redMax: 7,
  greenMax: 7,
  blueMax: 3,
  redShift: 0,
  greenShift: 3,
  blueShift: 6,
});

/** RFC 6143 7.4: 16 bytes. */
export function readPixelFormat(b: Buffer, off: number): PixelFormat {
  return {
    bitsPerPixel: b[off]!,
    depth: b[off + 1]!,
    bigEndian: b[off + 2] !== 0,
    trueColour: b[off + 3] !== 0,
    redMax: b.readUInt16BE(off + 4),
    greenMax: b.readUInt16BE(off + 6),
    blueMax: b.readUInt16BE(off + 8),
    redShift: b[off + 10]!,
    greenShift: b[off + 11]!,
    blueShift: b[off + 12]!,
  };
}

export function writePixelFormat(pf: PixelFormat): Buffer {
  const b = Buffer.alloc(16);
  b[0] = pf.bitsPerPixel;
  b[1] = pf.depth;
  b[2] = pf.bigEndian ? 1 : 0;
  b[3] = pf.trueColour ? 1 : 0;
  b.writeUInt16BE(pf.redMax, 4);
  b.writeUInt16BE(pf.greenMax, 6);
  b.writeUInt16BE(pf.blueMax, 8);
  b[10] = pf.redShift;
  b[11] = pf.greenShift;
  b[12] = pf.blueShift;
  return b;
}

/** Why a true-colour format cannot be served, or null when it can. */
export function pixelFormatProblem(pf: PixelFormat): string | null {
  if (![8, 16, 32].includes(pf.bitsPerPixel)) return `bits-per-pixel ${pf.bitsPerPixel}`;
  for (const [max, shift] of [
    [pf.redMax, pf.redShift],
    [pf.greenMax, pf.greenShift],
    [pf.blueMax, pf.blueShift],
  ] as const) {
    if (max === 0 || (max & (max + 1)) !== 0) return `colour max ${max} is not 2^n-1`;
    if (max * 2 ** shift >= 2 ** pf.bitsPerPixel) return `colour max ${max} << ${shift} overflows the pixel`;
  }
  return null;
}

/** Pixels of one rectangle as 0xRRGGBB, row-major: what every encoder consumes. */
export interface Pixels {
  width: number;
  height: number;
  data: Uint32Array;
}

export class PixelTranslator {
  readonly bytesPerPixel: number;
  /** ZRLE CPIXEL size (RFC 6143 7.7.6). */
  readonly cpixelBytes: number;
  /** Tight TPIXEL is R,G,B only at 32 bpp, depth 24, 8-bit channels (rfbproto Tight). */
  readonly tight24: boolean;
  private readonly red: Uint32Array;
  private readonly green: Uint32Array;
  private readonly blue: Uint32Array;
  /** Whether the CPIXEL is the high 3 bytes of the 32-bit value. */
  private readonly cpixelHigh: boolean;
  /** The client's pixel value is 0xRRGGBB itself (8-bit channels at 16/8/0), so no table lookups. */
  private readonly identity: boolean;

  constructor(readonly format: Readonly<PixelFormat>) {
    this.bytesPerPixel = format.bitsPerPixel / 8;
    this.red = channelTable(format.redMax, format.redShift);
    this.green = channelTable(format.greenMax, format.greenShift);
    this.blue = channelTable(format.blueMax, format.blueShift);
    const used =
      ((format.redMax << format.redShift) | (format.greenMax << format.greenShift) | (format.blueMax << format.blueShift)) >>> 0;
    const compact = format.bitsPerPixel === 32 && format.depth <= 24 && format.trueColour;
    this.cpixelHigh = compact && (used & 0xff000000) !== 0 && (used & 0xff) === 0;
    this.cpixelBytes = compact && ((used & 0xff000000) === 0 || this.cpixelHigh) ? 3 : this.bytesPerPixel;
    this.tight24 =
      format.bitsPerPixel === 32 && format.depth === 24 && format.redMax === 255 && format.greenMax === 255 && format.blueMax === 255;
    this.identity =
      format.bitsPerPixel === 32 &&
      format.redMax === 255 &&
      format.greenMax === 255 &&
      format.blueMax === 255 &&
      format.redShift === 16 &&
      format.greenShift === 8 &&
      format.blueShift === 0;
  }

  /** The client's pixel value for 0xRRGGBB. */
  value(rgb: number): number {
    if (this.identity) return rgb;
    return (this.red[(rgb >>> 16) & 0xff]! | this.green[(rgb >>> 8) & 0xff]! | this.blue[rgb & 0xff]!) >>> 0;
  }

  /** Writes one PIXEL in the client's byte order; returns the next offset. */
  write(out: Buffer, off: number, rgb: number): number {
    const v = this.value(rgb);
    switch (this.bytesPerPixel) {
      case 1:
        out[off] = v;
        return off + 1;
      case 2:
        if (this.format.bigEndian) out.writeUInt16BE(v, off);
        else out.writeUInt16LE(v, off);
        return off + 2;
      default:
        if (this.format.bigEndian) out.writeUInt32BE(v, off);
        else out.writeUInt32LE(v, off);
        return off + 4;
    }
  }

  /** Writes one CPIXEL (RFC 6143 7.7.6): the 3 significant bytes when they hold all colour bits. */
  writeCompact(out: Buffer, off: number, rgb: number): number {
    if (this.cpixelBytes !== 3) return this.write(out, off, rgb);
    const v = this.cpixelHigh ? this.value(rgb) >>> 8 : this.value(rgb);
    if (this.format.bigEndian) {
      out[off] = v >>> 16;
      out[off + 1] = v >>> 8;
      out[off + 2] = v;
    } else {
      out[off] = v;
      out[off + 1] = v >>> 8;
      out[off + 2] = v >>> 16;
    }
    return off + 3;
  }

  /** Writes one Tight TPIXEL: R,G,B when tight24, else a PIXEL. */
  writeTight(out: Buffer, off: number, rgb: number): number {
    if (!this.tight24) return this.write(out, off, rgb);
    out[off] = rgb >>> 16;
    out[off + 1] = rgb >>> 8;
    out[off + 2] = rgb;
    return off + 3;
  }

  /**
   * Every pixel of `px` as PIXELs: the Raw encoding's body (RFC 6143 7.7.1). Values go into a
   * typed array in host order, swapped once if the client wants the other byte order; for the
   * X server's own layout on a little-endian host the pixels are the bytes already.
   */
  pixels(px: Pixels): Buffer {
    const n = px.data.length;
    const swap = this.format.bigEndian === HOST_LITTLE_ENDIAN;
    if (this.bytesPerPixel === 4) {
      if (this.identity && !swap) return Buffer.from(px.data.buffer, px.data.byteOffset, px.data.byteLength);
      const out = new Uint32Array(n);
      for (let i = 0; i < n; i++) out[i] = this.value(px.data[i]!);
      const b = Buffer.from(out.buffer);
      return swap ? b.swap32() : b;
    }
    if (this.bytesPerPixel === 2) {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = this.value(px.data[i]!);
      const b = Buffer.from(out.buffer);
      return swap ? b.swap16() : b;
    }
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.value(px.data[i]!);
    return out;
  }
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Maps an 8-bit intensity to max (rounded) placed at shift. */
function channelTable(max: number, shift: number): Uint32Array {
  const t = new Uint32Array(256);
  for (let v = 0; v < 256; v++) t[v] = (Math.round((v * max) / 255) * 2 ** shift) >>> 0;
  return t;
}

/** Copies `rect` out of a B,G,R,X framebuffer as 0xRRGGBB (frames are only valid this turn). */
export function readPixels(
  frame: { stride: number; data: Buffer },
  rect: { x: number; y: number; width: number; height: number },
): Pixels {
  const data = new Uint32Array(rect.width * rect.height);
  const src = frame.data;
  let i = 0;
  if (HOST_LITTLE_ENDIAN && src.byteOffset % 4 === 0 && frame.stride % 4 === 0) {
    // B,G,R,X read as a little-endian U32 is 0xXXRRGGBB: one load and a mask per pixel.
    const words = new Uint32Array(src.buffer, src.byteOffset, src.length >>> 2);
    const stride = frame.stride >>> 2;
    for (let y = rect.y; y < rect.y + rect.height; y++) {
      let o = y * stride + rect.x;
      for (let x = 0; x < rect.width; x++) data[i++] = words[o++]! & 0xffffff;
    }
    return { width: rect.width, height: rect.height, data };
  }
  for (let y = rect.y; y < rect.y + rect.height; y++) {
    let o = y * frame.stride + rect.x * 4;
    for (let x = 0; x < rect.width; x++, o += 4) data[i++] = (src[o + 2]! << 16) | (src[o + 1]! << 8) | src[o]!;
  }
  return { width: rect.width, height: rect.height, data };
}

/** A sub-rectangle of already-read pixels (encoders split into tiles). */
export function subPixels(px: Pixels, x: number, y: number, width: number, height: number): Pixels {
  if (x === 0 && y === 0 && width === px.width && height === px.height) return px;
  const data = new Uint32Array(width * height);
  for (let row = 0; row < height; row++) {
    const start = (y + row) * px.width + x;
    data.set(px.data.subarray(start, start + width), row * width);
  }
  return { width, height, data };
}
