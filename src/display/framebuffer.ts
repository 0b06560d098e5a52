import { openSync, readSync, closeSync, fstatSync } from 'node:fs';
import type { FrameSource, FrameSubscriber, FrameView, Rect } from './types.js';
import { X11Connection, type DisplayAddress, type XEvent } from './x11client.js';
import { XCursorTracker } from './x-cursor.js';
import type { Logger } from '../util/logger.js';
import { HandoffError } from '../util/errors.js';
import { FrameMemory } from './simd.js';

/** Side of the square tiles the dirty region is made of. */
export const TILE = 64;
/** At most one read per this many ms while damage keeps coming (~60 reads/s at most). */
const MIN_READ_INTERVAL_MS = 12;

// ---------------------------------------------------------------------------------------------
// XWD header (X11 XWDFile.h, file_version 7): 25 big-endian CARD32 fields, then the window name
// up to header_size, then ncolors XWDColor entries of 12 bytes each, then the pixels.

export interface XwdLayout {
  width: number;
  height: number;
  bitsPerPixel: number;
  bytesPerLine: number;
  /** header_size + ncolors * sizeof(XWDColor) (12). */
  pixelOffset: number;
}

const XWD_HEADER_BYTES = 100;
const XWD_COLOR_BYTES = 12;
const XWD_FILE_VERSION = 7;
const Z_PIXMAP = 2;
const LSB_FIRST = 0;

/** Parses and validates an Xvfb XWD header; only the layout we can serve (24/32, B,G,R,X). */
export function parseXwdHeader(buf: Buffer): XwdLayout {
  const fail = (why: string): never => {
    throw new HandoffError('browser_failed', 'the display framebuffer is not usable', {}, `XWD: ${why}`);
  };
  if (buf.length < XWD_HEADER_BYTES) fail(`header is ${buf.length} bytes, need ${XWD_HEADER_BYTES}`);
  const f = (i: number) => buf.readUInt32BE(i * 4);
  const headerSize = f(0);
  const version = f(1);
  const format = f(2);
  const depth = f(3);
  const width = f(4);
  const height = f(5);
  const byteOrder = f(7);
  const bitsPerPixel = f(11);
  const bytesPerLine = f(12);
  const redMask = f(14);
  const greenMask = f(15);
  const blueMask = f(16);
  const ncolors = f(19);
  if (version !== XWD_FILE_VERSION) fail(`file_version ${version}, expected ${XWD_FILE_VERSION}`);
  if (headerSize < XWD_HEADER_BYTES || headerSize > 4096) fail(`header_size ${headerSize}`);
  if (format !== Z_PIXMAP) fail(`pixmap_format ${format}, expected ZPixmap (2)`);
  if (depth !== 24 || bitsPerPixel !== 32) fail(`depth ${depth} at ${bitsPerPixel} bpp, expected depth 24 at 32 bpp`);
  // LSBFirst 32-bit pixels with these masks are bytes B, G, R, X in memory (FrameView's promise).
  if (byteOrder !== LSB_FIRST) fail(`byte_order ${byteOrder}, expected LSBFirst (0)`);
  if (redMask !== 0xff0000 || greenMask !== 0xff00 || blueMask !== 0xff) {
    fail(`masks r=${redMask.toString(16)} g=${greenMask.toString(16)} b=${blueMask.toString(16)}`);
  }
  if (width < 1 || height < 1 || width > 16384 || height > 16384) fail(`size ${width}x${height}`);
  if (bytesPerLine < width * 4) fail(`bytes_per_line ${bytesPerLine} < ${width * 4}`);
  if (ncolors > 65536) fail(`ncolors ${ncolors}`);
  return { width, height, bitsPerPixel, bytesPerLine, pixelOffset: headerSize + ncolors * XWD_COLOR_BYTES };
}

// ---------------------------------------------------------------------------------------------
// Tiles

export interface TileGrid {
  width: number;
  height: number;
  stride: number;
  tile: number;
  cols: number;
  rows: number;
}

export function tileGrid(width: number, height: number, stride: number, tile = TILE): TileGrid {
  return { width, height, stride, tile, cols: Math.ceil(width / tile), rows: Math.ceil(height / tile) };
}

/**
 * Sets `changed[row * cols + col] = 1` for every tile whose pixels differ between `a` and `b`
 * and returns how many tiles changed. A whole scanline is compared first (one memcmp), so an
 * unchanged screen costs one pass; only differing lines are compared tile by tile.
 */
export function diffTiles(a: Buffer, b: Buffer, g: TileGrid, changed: Uint8Array): number {
  const rowBytes = g.width * 4;
  const tileBytes = g.tile * 4;
  // Frames in one FrameMemory compare in place, 16 bytes at a time (display/simd.ts).
  const m = FrameMemory.of(a);
  const equal: (s: number, e: number) => boolean =
    m && FrameMemory.of(b) === m && (rowBytes & 15) === 0 && (tileBytes & 15) === 0
      ? (s, e) => m.equal(a.byteOffset + s, b.byteOffset + s, (e - s) >>> 4)
      : (s, e) => a.compare(b, s, e, s, e) === 0;
  let count = 0;
  for (let ty = 0; ty < g.rows; ty++) {
    const yEnd = Math.min(g.height, (ty + 1) * g.tile);
    let pending = g.cols; // tiles of this band not yet known to differ
    for (let y = ty * g.tile; y < yEnd && pending > 0; y++) {
      const line = y * g.stride;
      if (equal(line, line + rowBytes)) continue;
      for (let tx = 0; tx < g.cols; tx++) {
        const i = ty * g.cols + tx;
        if (changed[i]) continue;
        const s = line + tx * tileBytes;
        const e = Math.min(line + rowBytes, s + tileBytes);
        if (!equal(s, e)) {
          changed[i] = 1;
          pending--;
          count++;
        }
      }
    }
  }
  return count;
}

/**
 * Turns a tile bitmap into pixel rects: runs of dirty tiles in a tile row become one rect,
 * and a run identical to the one right above it extends that rect downwards. Edge tiles are
 * clipped to the screen.
 */
export function tilesToRects(dirty: Uint8Array, g: TileGrid): Rect[] {
  const rects: Rect[] = [];
  let above = new Map<number, Rect>(); // start column -> rect ending on the previous tile row
  for (let ty = 0; ty < g.rows; ty++) {
    const current = new Map<number, Rect>();
    for (let tx = 0; tx < g.cols; tx++) {
      if (!dirty[ty * g.cols + tx]) continue;
      const start = tx;
      while (tx + 1 < g.cols && dirty[ty * g.cols + tx + 1]) tx++;
      const x = start * g.tile;
      const width = Math.min(g.width, (tx + 1) * g.tile) - x;
      const y = ty * g.tile;
      const height = Math.min(g.height, y + g.tile) - y;
      const prev = above.get(start);
      if (prev && prev.width === width) {
        prev.height += height;
        current.set(start, prev);
      } else {
        const r = { x, y, width, height };
        rects.push(r);
        current.set(start, r);
      }
    }
    above = current;
  }
  return rects;
}

// ---------------------------------------------------------------------------------------------

export interface FramebufferOptions {
  /** The XWD file Xvfb keeps current (-fbdir). */
  fbPath: string;
  /** The display whose DAMAGE events say when to look. */
  display: DisplayAddress;
  logger: Logger;
}

interface DamageExt {
  majorOpcode: number;
  firstEvent: number;
  ReportLevel: { NonEmpty: number };
  Create(damage: number, drawable: number, level: number): void;
  Destroy(damage: number): void;
  Subtract(damage: number, repair: number, parts: number): void;
}

/**
 * The display's pixels, read straight from Xvfb's framebuffer file. DAMAGE (report level
 * NonEmpty) only wakes us up; what changed is found by comparing tiles with the previous read,
 * so every subscriber gets exact tile-aligned dirty rects. Nothing is read and no damage is
 * tracked while nobody subscribes.
 */
export class Framebuffer implements FrameSource {
  readonly width: number;
  readonly height: number;
  /** The pointer shape (XFIXES, on this connection) for viewers that draw the pointer themselves. */
  readonly cursor: XCursorTracker;
  private readonly grid: TileGrid;
  private readonly frameBytes: number;
  /** The latest pixels (what frame() shows) and the buffer the next read goes into. */
  private current: Buffer;
  private spare: Buffer;
  private readonly changed: Uint8Array;
  private readonly subscribers = new Set<Subscriber>();
  private damage = 0;
  private timer?: NodeJS.Timeout;
  private reading = false;
  /** Damage arrived while a read was under way: look again when it ends. */
  private again = false;
  private lastRead = 0;
  private closed = false;
  private stopped = false;
  private onEvent = (ev: XEvent) => this.handleEvent(ev);

  private constructor(
    private readonly fd: number,
    private readonly layout: XwdLayout,
    private readonly conn: X11Connection,
    private readonly damageExt: DamageExt,
    private readonly logger: Logger,
  ) {
    this.width = layout.width;
    this.height = layout.height;
    this.grid = tileGrid(layout.width, layout.height, layout.bytesPerLine);
    this.frameBytes = layout.bytesPerLine * layout.height;
    this.current = Buffer.alloc(this.frameBytes);
    this.spare = Buffer.alloc(this.frameBytes);
    this.changed = new Uint8Array(this.grid.cols * this.grid.rows);
    this.cursor = new XCursorTracker(conn, logger);
    conn.client.on('event', this.onEvent);
    conn.onDead((reason) => {
      // The X server is gone: keep the last frame for whoever still holds it, stop looking.
      this.logger.warn('framebuffer stopped: X server gone', { reason });
      this.stopped = true;
      this.stopWork();
    });
  }

  static async open(opts: FramebufferOptions): Promise<Framebuffer> {
    const fd = openSync(opts.fbPath, 'r');
    let conn: X11Connection | undefined;
    try {
      const header = Buffer.alloc(4096);
      const n = readSync(fd, header, 0, header.length, 0);
      const layout = parseXwdHeader(header.subarray(0, n));
      const size = fstatSync(fd).size;
      if (size < layout.pixelOffset + layout.bytesPerLine * layout.height) {
        throw new HandoffError('browser_failed', 'the display framebuffer is not usable', {},
          `XWD file is ${size} bytes, its header needs ${layout.pixelOffset + layout.bytesPerLine * layout.height}`);
      }
      conn = await X11Connection.open(opts.display, opts.logger);
      if (conn.width !== layout.width || conn.height !== layout.height) {
        throw new HandoffError('browser_failed', 'the display framebuffer is not usable', {},
          `XWD is ${layout.width}x${layout.height}, screen is ${conn.width}x${conn.height}`);
      }
      const damage = await conn.extension<DamageExt>('damage');
      return new Framebuffer(fd, layout, conn, damage, opts.logger);
    } catch (e) {
      await conn?.close();
      closeSync(fd);
      throw e;
    }
  }

  subscribe(): FrameSubscriber {
    if (this.closed) throw new HandoffError('internal', 'framebuffer is closed');
    const sub = new Subscriber(this, this.changed.length, this.logger);
    if (this.subscribers.size === 0) this.startWork();
    this.subscribers.add(sub);
    return sub;
  }

  /** True while DAMAGE is tracked and reads happen: only while someone subscribes. */
  get watching(): boolean {
    return this.damage !== 0;
  }

  /** @internal */
  view(): FrameView {
    return { width: this.width, height: this.height, stride: this.layout.bytesPerLine, data: this.current };
  }
  /** @internal */
  gridInfo(): TileGrid {
    return this.grid;
  }
  /** @internal */
  unsubscribe(sub: Subscriber): void {
    if (this.subscribers.delete(sub) && this.subscribers.size === 0) this.stopWork();
  }

  /**
   * First subscriber: bring the frame up to date and ask for damage on the root window (which
   * covers its inferiors). DamageCreate: damageproto "DamageCreate" request.
   */
  private startWork(): void {
    if (this.stopped) return;
    this.useFrameMemory();
    if (!this.read(this.current)) return;
    this.damage = this.conn.client.AllocID();
    this.damageExt.Create(this.damage, this.conn.root, this.damageExt.ReportLevel.NonEmpty);
  }

  /**
   * From the first subscriber on, the frames live in module memory (display/simd.ts): the tile
   * compare and the R,G,B conversion then work on them in place. A session never watched keeps
   * plain buffers; once made, the memory stays with the Framebuffer (about 7.7 MB at 720p, as
   * the two plain buffers). Where it cannot be had, plain buffers and the loops go on.
   */
  private useFrameMemory(): void {
    if (FrameMemory.of(this.current)) return;
    const m = FrameMemory.create(this.frameBytes, 2);
    if (!m) return;
    this.current.copy(m.frames[0]!);
    this.current = m.frames[0]!;
    this.spare = m.frames[1]!;
  }

  private stopWork(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.again = false;
    if (this.damage && this.conn.alive) this.damageExt.Destroy(this.damage);
    this.damage = 0;
  }

  private handleEvent(ev: XEvent): void {
    if (ev.type !== this.damageExt.firstEvent || ev.damage !== this.damage || !this.damage) return;
    this.schedule();
  }

  /** Coalesces bursts: at most one look per MIN_READ_INTERVAL_MS, and never two at once. */
  private schedule(): void {
    if (this.reading) {
      this.again = true;
      return;
    }
    if (this.timer) return;
    const wait = Math.max(0, this.lastRead + MIN_READ_INTERVAL_MS - performance.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.look();
    }, wait);
  }

  /**
   * With NonEmpty the server reports only the empty -> non-empty transition, so the damage is
   * emptied (DamageSubtract with repair None) before reading. Waiting for that to be processed
   * (a round trip) before reading guarantees that any drawing we do not see in this read
   * raises a fresh DamageNotify.
   */
  private async look(): Promise<void> {
    if (!this.damage || this.stopped) return;
    this.reading = true;
    try {
      this.damageExt.Subtract(this.damage, 0, 0);
      await this.conn.sync();
      if (!this.damage || this.stopped) return;
      this.lastRead = performance.now();
      this.readAndDiff();
    } catch (e) {
      if (this.conn.alive) this.logger.warn('framebuffer update failed', { err: (e as Error).message });
    } finally {
      this.reading = false;
      if (this.again) {
        this.again = false;
        this.schedule();
      }
    }
  }

  private readAndDiff(): void {
    const next = this.spare;
    if (!this.read(next)) return;
    this.changed.fill(0);
    if (diffTiles(this.current, next, this.grid, this.changed) === 0) return;
    this.spare = this.current;
    this.current = next;
    for (const sub of this.subscribers) sub.addTiles(this.changed);
  }

  /** One positioned read of all the pixels into `into`; false (logged) if the file is gone. */
  private read(into: Buffer): boolean {
    try {
      let off = 0;
      while (off < this.frameBytes) {
        const n = readSync(this.fd, into, off, this.frameBytes - off, this.layout.pixelOffset + off);
        if (n === 0) throw new Error('framebuffer file is shorter than its header says');
        off += n;
      }
      return true;
    } catch (e) {
      this.logger.warn('framebuffer read failed', { err: (e as Error).message });
      this.stopped = true;
      this.stopWork();
      return false;
    }
  }

  /** Idempotent; subscribers keep their last frame but see no more changes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopWork();
    this.subscribers.clear();
    await this.conn.close();
    closeSync(this.fd);
  }
}

class Subscriber implements FrameSubscriber {
  private readonly tiles: Uint8Array;
  private count: number;
  private listeners: (() => void)[] = [];
  private notifyQueued = false;
  private closed = false;

  constructor(
    private readonly fb: Framebuffer,
    tileCount: number,
    private readonly logger: Logger,
  ) {
    // A new subscriber has seen nothing yet: everything is dirty for it.
    this.tiles = new Uint8Array(tileCount).fill(1);
    this.count = tileCount;
    this.queueNotify();
  }

  get dirty(): boolean {
    return this.count > 0;
  }

  /** A listener added while already dirty hears about it too (nobody waits on a missed edge). */
  onDirty(listener: () => void): void {
    this.listeners.push(listener);
    if (this.count > 0) this.queueNotify();
  }

  takeDirty(): Rect[] {
    if (this.count === 0) return [];
    const rects = tilesToRects(this.tiles, this.fb.gridInfo());
    this.tiles.fill(0);
    this.count = 0;
    return rects;
  }

  frame(): FrameView {
    return this.fb.view();
  }

  invalidate(): void {
    if (this.closed) return;
    const was = this.count;
    this.tiles.fill(1);
    this.count = this.tiles.length;
    if (was === 0) this.queueNotify();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.listeners = [];
    this.fb.unsubscribe(this);
  }

  /** @internal */
  addTiles(changed: Uint8Array): void {
    const was = this.count;
    for (let i = 0; i < changed.length; i++) {
      if (changed[i] && !this.tiles[i]) {
        this.tiles[i] = 1;
        this.count++;
      }
    }
    if (was === 0 && this.count > 0) this.queueNotify();
  }

  /** Listeners run from a microtask: never inside the caller's own invalidate(), once per turn. */
  private queueNotify(): void {
    if (this.notifyQueued) return;
    this.notifyQueued = true;
    queueMicrotask(() => {
      this.notifyQueued = false;
      if (this.closed || this.count === 0) return;
      for (const l of this.listeners) {
        try {
          l();
        } catch (e) {
          this.logger.warn('frame listener threw', { err: (e as Error).message });
        }
      }
    });
  }
}
