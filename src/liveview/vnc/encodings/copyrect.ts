import type { Rect } from '../../../display/types.js';

/** CopyRect (RFC 6143 7.7.2): the client copies a rectangle it already shows from (srcX, srcY). */
export function encodeCopyRect(srcX: number, srcY: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(srcX, 0);
  b.writeUInt16BE(srcY, 2);
  return b;
}

/** A band of `rect` whose new rows are the client's current rows moved by dy (a scroll). */
export interface Scroll {
  /** Destination rows [y0, y1) in screen coordinates; the source is [y0 + dy, y1 + dy). */
  y0: number;
  y1: number;
  dy: number;
}

const MIN_ROWS = 16;
const MAX_CANDIDATES = 4;

/**
 * Finds the largest vertical scroll inside `rect`: compares the new pixels with what the client
 * has (`shown`, a full-screen 0xRRGGBB copy of everything sent) row by row. Source rows stay
 * inside `rect`, so CopyRects sent before any other rectangle of the update read intact pixels.
 */
export function findScroll(shown: Uint32Array, screenWidth: number, rect: Rect, fresh: Uint32Array): Scroll | null {
  const { x, y, width: w, height: h } = rect;
  if (h < 2 * MIN_ROWS) return null;
  const newRow = (r: number) => fresh.subarray(r * w, r * w + w);
  const oldRow = (r: number) => shown.subarray((y + r) * screenWidth + x, (y + r) * screenWidth + x + w);
  const same = (a: Uint32Array, b: Uint32Array) => Buffer.compare(bytes(a), bytes(b)) === 0;

  let best: Scroll | null = null;
  for (const probe of [h >> 1, h >> 2, (3 * h) >> 2]) {
    const row = newRow(probe);
    if (row.every((p) => p === row[0])) continue; // a flat row matches everywhere
    let candidates = 0;
    for (let r = 0; r < h && candidates < MAX_CANDIDATES; r++) {
      if (r === probe || !same(row, oldRow(r))) continue;
      candidates++;
      const dy = r - probe;
      let a = probe;
      let b = probe + 1;
      while (a > 0 && a + dy > 0 && same(newRow(a - 1), oldRow(a - 1 + dy))) a--;
      while (b < h && b + dy < h && same(newRow(b), oldRow(b + dy))) b++;
      if (b - a >= MIN_ROWS && (!best || b - a > best.y1 - best.y0)) best = { y0: y + a, y1: y + b, dy };
    }
    if (best) return best;
  }
  return null;
}

function bytes(a: Uint32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}
