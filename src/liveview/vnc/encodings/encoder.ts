import type { Pixels, PixelTranslator } from '../pixel-format.js';

/** What an encoder needs besides the pixels. */
export interface EncodeContext {
  pf: PixelTranslator;
  /** JPEG quality 1-100 from the client's quality-level pseudo-encoding, null when it sent none. */
  jpegQuality: number | null;
}

/**
 * One RFB encoding (RFC 6143 7.7): turns a rectangle's pixels into the bytes that follow its
 * rectangle header. One instance per connection, so stateful encodings (ZRLE, Tight zlib
 * streams) keep their state for the connection's lifetime.
 */
export interface Encoder {
  readonly encoding: number;
  /** Larger rectangles are split before they reach encode(). */
  readonly maxRect?: { width: number; height: number };
  encode(px: Pixels, ctx: EncodeContext): Buffer | Promise<Buffer>;
  close?(): void;
}
