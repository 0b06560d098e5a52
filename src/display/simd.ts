/**
 * WebAssembly SIMD kernels for frames: B,G,R,X -> packed R,G,B (one `i8x16.swizzle` turns 4
 * pixels, 16 bytes, into 12) and a 16-bytes-at-a-time compare for the tile diff. Measured at
 * 1280x720: the conversion takes about a third of the JavaScript loop's time; the tile diff of
 * two frames with 140 changed tiles takes 0.36 ms against Buffer#compare's 0.64 (its per-call
 * cost on the thousands of tile rows compared).
 *
 * The module is two dozen instructions, assembled here rather than shipped as a binary so that
 * it can be read. In WebAssembly text form:
 *
 *   (func (export "c") (param $src i32) (param $dst i32) (param $n i32)
 *     (loop $next
 *       (v128.store (local.get $dst)
 *         (i8x16.swizzle (v128.load (local.get $src)) (v128.const i8x16 2 1 0 6 5 4 10 9 8 14 13 12 -128 -128 -128 -128)))
 *       (local.set $src (i32.add (local.get $src) (i32.const 16)))
 *       (local.set $dst (i32.add (local.get $dst) (i32.const 12)))
 *       (br_if $next (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
 *
 *   (func (export "e") (param $a i32) (param $b i32) (param $n i32) (result i32)
 *     (loop $next
 *       (if (v128.any_true (v128.xor (v128.load (local.get $a)) (v128.load (local.get $b))))
 *         (then (return (i32.const 0))))
 *       (local.set $a (i32.add (local.get $a) (i32.const 16)))
 *       (local.set $b (i32.add (local.get $b) (i32.const 16)))
 *       (br_if $next (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
 *     (i32.const 1))
 *
 * In "c" each store writes 16 bytes of which the last 4 are overwritten by the next one: the
 * output area has 4 bytes of slack. `$n` counts groups of 4 pixels ("c") or of 16 bytes ("e")
 * and is at least 1.
 *
 * Where frames live: a Framebuffer keeps its two frames in a FrameMemory (module memory of its
 * own), so both kernels work on them in place; any other buffer is copied into a module memory
 * shared by all callers (calls are synchronous: rows in, convert, rows out).
 */

/** The part of the WebAssembly API used here (the daemon's build has no DOM types, where it is declared). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { exports: { c: Convert; e: Equal } };
  Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer };
}
type WasmModule = object;
type Convert = (src: number, dst: number, groups: number) => void;
type Equal = (a: number, b: number, chunks: number) => number;
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const SHUFFLE_BGRX_TO_RGB = [2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, 0x80, 0x80, 0x80, 0x80];
const PAGE = 65536;
/** Module memory at most (a 4096x4096 screen's rows in and out); larger rects use the caller's loop. */
const MAX_BYTES = 128 * 1024 * 1024;

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}
const section = (id: number, bytes: number[]) => [id, ...leb(bytes.length), ...bytes];
const name = (s: string) => [...leb(s.length), ...Buffer.from(s)];
const code = (body: number[]) => [...leb(body.length), ...body];

function moduleBytes(): Uint8Array {
  const get = (i: number) => [0x20, i];
  const add = (i: number, n: number) => [...get(i), 0x41, n, 0x6a, 0x21, i]; // local i += n
  const load = [0xfd, 0x00, 0x00, 0x00]; // v128.load align=0 offset=0
  const countDown = [...get(2), 0x41, 1, 0x6b, 0x22, 2, 0x0d, 0]; // br_if loop (n = n - 1)
  const convert = [
    0x00, // no locals
    0x03, 0x40, // loop
    ...get(1),
    ...get(0), ...load,
    0xfd, 0x0c, ...SHUFFLE_BGRX_TO_RGB, // v128.const
    0xfd, 0x0e, // i8x16.swizzle
    0xfd, 0x0b, 0x00, 0x00, // v128.store
    ...add(0, 16),
    ...add(1, 12),
    ...countDown,
    0x0b, // end loop
    0x0b, // end func
  ];
  const equal = [
    0x00, // no locals
    0x03, 0x40, // loop
    ...get(0), ...load,
    ...get(1), ...load,
    0xfd, 0x51, // v128.xor
    0xfd, 0x53, // v128.any_true
    0x04, 0x40, 0x41, 0, 0x0f, 0x0b, // if: return 0
    ...add(0, 16),
    ...add(1, 16),
    ...countDown,
    0x0b, // end loop
    0x41, 1, // 1
    0x0b, // end func
  ];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    // types: 0 (i32 i32 i32) -> (), 1 (i32 i32 i32) -> i32
    ...section(1, [2, 0x60, 3, 0x7f, 0x7f, 0x7f, 0, 0x60, 3, 0x7f, 0x7f, 0x7f, 1, 0x7f]),
    ...section(2, [1, ...name('e'), ...name('m'), 0x02, 0x00, 0x01]), // import memory e.m, min 1 page
    ...section(3, [2, 0, 1]),
    ...section(7, [2, ...name('c'), 0x00, 0, ...name('e'), 0x00, 1]),
    ...section(10, [2, ...code(convert), ...code(equal)]),
  ]);
}

let compiled: WasmModule | null | undefined;
/** The compiled module, or null where WebAssembly SIMD is missing (callers use their loops). */
function simdModule(): WasmModule | null {
  if (compiled === undefined) {
    try {
      compiled = new wasm.Module(moduleBytes());
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

/** A module memory and the kernels bound to it. */
interface Kernels {
  view: Buffer;
  convert: Convert;
  equal: Equal;
}

/**
 * After a memory could not be had, no new one is tried for this long (review H1), by any
 * session: the cause (an address-space limit) is the process's, and the loops give the same
 * pixels meanwhile.
 */
const RETRY_AFTER_MS = 60_000;
let failedAt = -Infinity;

function instantiate(bytes: number): Kernels | null {
  const module = simdModule();
  // A failed attempt costs V8 a garbage collection and a retry (~250 ms measured under an
  // address-space limit): not on every frame.
  if (!module || bytes > MAX_BYTES || performance.now() - failedAt < RETRY_AFTER_MS) return null;
  try {
    const m = new wasm.Memory({ initial: Math.ceil(bytes / PAGE) });
    const { c, e } = new wasm.Instance(module, { e: { m } }).exports;
    return { view: Buffer.from(m.buffer), convert: c, equal: e };
  } catch {
    failedAt = performance.now();
    return null; // no memory for it now: the callers' loops
  }
}

/** FrameMemory by the ArrayBuffer its frames are views of. */
const frameMemories = new WeakMap<ArrayBufferLike, FrameMemory>();

/** R,G,B room of a FrameMemory: rects are converted through it this many bytes of rows at a time. */
const RGB_ROOM_BYTES = 256 * 1024;

/**
 * Frames of one display in module memory: `count` buffers of `frameBytes`, then a fixed room
 * for R,G,B rows. Null where WebAssembly SIMD is missing or the memory cannot be had (the
 * caller keeps plain buffers, and every kernel falls back to its loop).
 */
export class FrameMemory {
  readonly frames: Buffer[];
  /** Where the R,G,B room starts: after the frames. */
  private readonly roomAt: number;

  private constructor(
    private readonly k: Kernels,
    frameBytes: number,
    stride: number,
    count: number,
    private readonly room: number,
  ) {
    this.frames = Array.from({ length: count }, (_, i) => k.view.subarray(i * stride, i * stride + frameBytes));
    this.roomAt = stride * count;
  }

  static create(frameBytes: number, count: number): FrameMemory | null {
    // Every frame starts 16-byte aligned; the R,G,B room has 16 bytes of slack after it.
    const stride = Math.ceil(frameBytes / 16) * 16;
    const room = Math.min(RGB_ROOM_BYTES, Math.ceil((frameBytes * 3) / 4));
    const k = instantiate(stride * count + room + 16);
    if (!k) return null;
    const m = new FrameMemory(k, frameBytes, stride, count, room);
    frameMemories.set(k.view.buffer, m);
    return m;
  }

  static of(buf: Buffer): FrameMemory | undefined {
    return frameMemories.get(buf.buffer);
  }

  /** Whether `chunks` x 16 bytes at byte offsets `a` and `b` of the memory are equal. */
  equal(a: number, b: number, chunks: number): boolean {
    return chunks < 1 || this.k.equal(a, b, chunks) === 1;
  }

  /**
   * R,G,B of `rows` rows of `width` pixels (a multiple of 4) at byte `src` of the memory (rows
   * `srcStride` apart), into `out` rows `outStride` apart; false if a row does not fit the room.
   */
  toRgb(src: number, srcStride: number, width: number, rows: number, out: Buffer, outOffset: number, outStride: number): boolean {
    const { view, convert } = this.k;
    const rowOut = width * 3;
    const perPass = Math.floor(this.room / rowOut);
    if (perPass < 1 || width < 4 || rows < 1) return false;
    const at = this.roomAt;
    for (let done = 0; done < rows; done += perPass) {
      const n = Math.min(perPass, rows - done);
      if (srcStride === width * 4) convert(src + done * srcStride, at, (width * n) >>> 2);
      else for (let r = 0; r < n; r++) convert(src + (done + r) * srcStride, at + r * rowOut, width >>> 2);
      copyRows(view, at, rowOut, rowOut, n, out, outOffset + done * outStride, outStride);
    }
    return true;
  }
}

/** `rows` rows of `rowBytes` from `from` (rows `fromStride` apart) to `out` (rows `outStride` apart): one copy when both are packed. */
function copyRows(from: Buffer, at: number, fromStride: number, rowBytes: number, rows: number, out: Buffer, outOffset: number, outStride: number): void {
  if (fromStride === rowBytes && outStride === rowBytes) from.copy(out, outOffset, at, at + rowBytes * rows);
  else for (let r = 0; r < rows; r++) from.copy(out, outOffset + r * outStride, at + r * fromStride, at + r * fromStride + rowBytes);
}

/** The memory for buffers outside any FrameMemory, replaced by a larger one when a larger rect comes. */
let shared: Kernels | undefined;

/**
 * Converts the `width` x `rows` B,G,R,X pixels at `src[srcOffset]` (rows `srcStride` bytes
 * apart) into `out` at `outOffset` (rows `outStride` apart). False when it cannot (no SIMD, a
 * width not a multiple of 4, or too large): the caller converts.
 */
export function simdBgrxToRgb(src: Buffer, srcOffset: number, srcStride: number, width: number, rows: number, out: Buffer, outOffset: number, outStride: number): boolean {
  const rowIn = width * 4;
  const rowOut = width * 3;
  if (rows < 1 || width < 4 || (width & 3) !== 0) return false;
  // Bounds of both sides (Buffer#copy would silently copy less, and the shared memory would
  // still hold an earlier frame, maybe another session's, where the rest should be).
  if (srcOffset < 0 || srcOffset + (rows - 1) * srcStride + rowIn > src.length || outOffset < 0 || outOffset + (rows - 1) * outStride + rowOut > out.length) return false;
  const frames = FrameMemory.of(src);
  if (frames?.toRgb(src.byteOffset + srcOffset, srcStride, width, rows, out, outOffset, outStride)) return true;
  const inBytes = rowIn * rows;
  const outBytes = rowOut * rows;
  const need = inBytes + outBytes + 16;
  if (!shared || shared.view.length < need) {
    const k = instantiate(need);
    if (!k) return false;
    shared = k;
  }
  const { view, convert } = shared;
  // The rows in packed together (one block when they are whole screen rows), one convert,
  // the rows out to the caller's rows.
  copyRows(src, srcOffset, srcStride, rowIn, rows, view, 0, rowIn);
  convert(0, inBytes, (width * rows) >>> 2);
  copyRows(view, inBytes, rowOut, rowOut, rows, out, outOffset, outStride);
  return true;
}
