import { Encoding } from '../protocol.js';
import type { Pixels } from '../pixel-format.js';
import type { EncodeContext, Encoder } from './encoder.js';

/** Raw (RFC 6143 7.7.1): width*height PIXELs, left to right, top to bottom. */
export class RawEncoder implements Encoder {
  readonly encoding = Encoding.Raw;
  encode(px: Pixels, ctx: EncodeContext): Buffer {
    return ctx.pf.pixels(px);
  }
}
