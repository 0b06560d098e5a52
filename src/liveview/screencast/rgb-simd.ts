/**
 * B,G,R,X -> packed R,G,B for large rectangles, with WebAssembly SIMD: one `i8x16.swizzle`
 * turns 4 pixels (16 bytes) into 12. Measured at 1280x720 (bench/RESULTS.md, Screencast): about
 * a third of the JavaScript loop's time with both copies in and out of the module's memory,
 * which is what a full-screen animation pays on every frame.
 *
 * The module is a dozen instructions, assembled here rather than shipped as a binary so that
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
 * Each store writes 16 bytes of which the last 4 are overwritten by the next one: the output
 * area has 4 bytes of slack. `$n` counts groups of 4 pixels and is at least 1.
 */

/** The part of the WebAssembly API used here (the daemon's build has no DOM types, where it is declared). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { exports: { c: Convert } };
  Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer };
}
type WasmModule = object;
type Convert = (src: number, dst: number, groups: number) => void;
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

function moduleBytes(): Uint8Array {
  const get = (i: number) => [0x20, i];
  const body = [
    0x00, // no locals
    0x03, 0x40, // loop
    ...get(1),
    ...get(0), 0xfd, 0x00, 0x00, 0x00, // v128.load
    0xfd, 0x0c, ...SHUFFLE_BGRX_TO_RGB, // v128.const
    0xfd, 0x0e, // i8x16.swizzle
    0xfd, 0x0b, 0x00, 0x00, // v128.store
    ...get(0), 0x41, 16, 0x6a, 0x21, 0, // src += 16
    ...get(1), 0x41, 12, 0x6a, 0x21, 1, // dst += 12
    ...get(2), 0x41, 1, 0x6b, 0x22, 2, // n -= 1 (tee)
    0x0d, 0, // br_if loop
    0x0b, // end loop
    0x0b, // end func
  ];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 3, 0x7f, 0x7f, 0x7f, 0]), // type: (i32 i32 i32) -> ()
    ...section(2, [1, ...name('e'), ...name('m'), 0x02, 0x00, 0x01]), // import memory e.m, min 1 page
    ...section(3, [1, 0]),
    ...section(7, [1, ...name('c'), 0x00, 0]),
    ...section(10, [1, ...leb(body.length), ...body]),
  ]);
}

let compiled: WasmModule | null | undefined;
/** The compiled module, or null where WebAssembly SIMD is missing (the caller's loop is used). */
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

/**
 * The module's memory, shared by every screencast (calls are synchronous: rows in, convert,
 * rows out) and replaced by a larger one when a larger rect comes.
 */
let memory: { view: Buffer; convert: Convert } | undefined;

/**
 * Converts the `width` x `rows` pixels at `src[srcOffset]` (rows `srcStride` bytes apart) into
 * `out` at `outOffset` (rows `outStride` apart). False when it cannot (no SIMD, a width not a
 * multiple of 4, or too large): the caller converts.
 */
export function simdBgrxToRgb(src: Buffer, srcOffset: number, srcStride: number, width: number, rows: number, out: Buffer, outOffset: number, outStride: number): boolean {
  const module = simdModule();
  const rowIn = width * 4;
  const rowOut = width * 3;
  const inBytes = (rows - 1) * srcStride + rowIn;
  const outBytes = rowOut * rows;
  const need = inBytes + outBytes + 16;
  if (!module || rows < 1 || width < 4 || (width & 3) !== 0 || need > MAX_BYTES) return false;
  // Bounds of both sides (Buffer#copy would silently copy less, and the shared memory would
  // still hold an earlier frame, maybe another session's, where the rest should be).
  if (srcOffset < 0 || srcOffset + inBytes > src.length || outOffset < 0 || outOffset + (rows - 1) * outStride + rowOut > out.length) return false;
  if (!memory || memory.view.length < need) {
    try {
      const m = new wasm.Memory({ initial: Math.ceil(need / PAGE) });
      memory = { view: Buffer.from(m.buffer), convert: new wasm.Instance(module, { e: { m } }).exports.c };
    } catch {
      return false; // no memory for it now: the caller's loop
    }
  }
  const { view, convert } = memory;
  // The rows in as one block, the rows out as one block copied to the caller's rows.
  src.copy(view, 0, srcOffset, srcOffset + inBytes);
  if (srcStride === rowIn) convert(0, inBytes, (width * rows) >>> 2);
  else for (let r = 0; r < rows; r++) convert(r * srcStride, inBytes + r * rowOut, width >>> 2);
  if (outStride === rowOut) view.copy(out, outOffset, inBytes, inBytes + outBytes);
  else for (let r = 0; r < rows; r++) view.copy(out, outOffset + r * outStride, inBytes + r * rowOut, inBytes + (r + 1) * rowOut);
  return true;
}
