import { Encoding } from '../protocol.js';
import type { Pixels, PixelTranslator } from '../pixel-format.js';
import type { EncodeContext, Encoder } from './encoder.js';
import { DeflateStream } from './zlib-stream.js';

const TILE = 64;

/**
 * ZRLE (RFC 6143 7.7.6): U32 length + zlib data of 64x64 tiles, each raw, solid, packed
 * palette, plain RLE or palette RLE, whichever is smallest. One zlib stream per connection.
 */
export class ZrleEncoder implements Encoder {
  readonly encoding = Encoding.ZRLE;
  private readonly zlib: DeflateStream;

  constructor(zlibLevel = 6) {
    this.zlib = new DeflateStream(zlibLevel);
  }

  async encode(px: Pixels, { pf }: EncodeContext): Promise<Buffer> {
    const tiles: Buffer[] = [];
    // One reused tile buffer: copying a 64x64 tile out is cheaper than indexing the rect.
    const tile: Pixels = { width: 0, height: 0, data: new Uint32Array(TILE * TILE) };
    for (let ty = 0; ty < px.height; ty += TILE) {
      for (let tx = 0; tx < px.width; tx += TILE) {
        tiles.push(encodeTile(copyTile(px, tx, ty, Math.min(TILE, px.width - tx), Math.min(TILE, px.height - ty), tile), pf));
      }
    }
    const z = await this.zlib.compress(Buffer.concat(tiles));
    const length = Buffer.alloc(4);
    length.writeUInt32BE(z.length, 0);
    return Buffer.concat([length, z]);
  }

  close(): void {
    this.zlib.close();
  }
}

function copyTile(px: Pixels, x: number, y: number, width: number, height: number, into: Pixels): Pixels {
  const data = into.data.subarray(0, width * height);
  for (let row = 0; row < height; row++) {
    const start = (y + row) * px.width + x;
    data.set(px.data.subarray(start, start + width), row * width);
  }
  into.width = width;
  into.height = height;
  return { width, height, data };
}

/** RLE run lengths are written as length-1 in bytes of 255 plus a final byte < 255. */
const runLengthBytes = (run: number) => Math.floor((run - 1) / 255) + 1;

function encodeTile(tile: Pixels, pf: PixelTranslator): Buffer {
  const { data, width, height } = tile;
  const cp = pf.cpixelBytes;
  const palette = new Map<number, number>();
  let rleSize = 0;
  let paletteRleSize = 0;
  for (let i = 0; i < data.length; ) {
    const p = data[i]!;
    let run = 1;
    while (i + run < data.length && data[i + run] === p) run++;
    i += run;
    if (!palette.has(p) && palette.size < 128) palette.set(p, palette.size);
    rleSize += cp + runLengthBytes(run);
    paletteRleSize += run === 1 ? 1 : 1 + runLengthBytes(run);
  }
  const colours = [...palette.keys()];
  if (colours.length === 1) return pixelsAfter(1, colours, pf);

  const n = colours.length;
  const bits = n <= 2 ? 1 : n <= 4 ? 2 : 4;
  const options: Array<[kind: 'raw' | 'packed' | 'rle' | 'paletteRle', size: number]> = [
    ['raw', data.length * cp],
    ['rle', rleSize],
  ];
  if (n <= 16) options.push(['packed', n * cp + height * Math.ceil((width * bits) / 8)]);
  if (n <= 127) options.push(['paletteRle', n * cp + paletteRleSize]);
  const [kind, size] = options.reduce((a, b) => (b[1] < a[1] ? b : a));

  const out = Buffer.alloc(1 + size);
  let off = 1;
  switch (kind) {
    case 'raw':
      out[0] = 0;
      for (const p of data) off = pf.writeCompact(out, off, p);
      break;
    case 'packed': {
      out[0] = n;
      for (const c of colours) off = pf.writeCompact(out, off, c);
      // Rows start on a byte boundary; indices are packed most significant bit first.
      for (let y = 0; y < height; y++) {
        let acc = 0;
        let used = 0;
        for (let x = 0; x < width; x++) {
          acc = (acc << bits) | palette.get(data[y * width + x]!)!;
          used += bits;
          if (used === 8) {
            out[off++] = acc;
            acc = used = 0;
          }
        }
        if (used) out[off++] = acc << (8 - used);
      }
      break;
    }
    case 'rle':
    case 'paletteRle':
      out[0] = kind === 'rle' ? 128 : 128 + n;
      if (kind === 'paletteRle') for (const c of colours) off = pf.writeCompact(out, off, c);
      for (let i = 0; i < data.length; ) {
        const p = data[i]!;
        let run = 1;
        while (i + run < data.length && data[i + run] === p) run++;
        i += run;
        if (kind === 'rle') off = pf.writeCompact(out, off, p);
        else out[off++] = run === 1 ? palette.get(p)! : 128 | palette.get(p)!;
        if (kind === 'rle' || run > 1) {
          for (let rest = run - 1; ; rest -= 255) {
            out[off++] = Math.min(rest, 255);
            if (rest < 255) break;
          }
        }
      }
      break;
  }
  return out.subarray(0, off);
}

/** A tile header byte followed by CPIXELs. */
function pixelsAfter(header: number, colours: number[], pf: PixelTranslator): Buffer {
  const out = Buffer.alloc(1 + colours.length * pf.cpixelBytes);
  out[0] = header;
  let off = 1;
  for (const c of colours) off = pf.writeCompact(out, off, c);
  return out;
}
