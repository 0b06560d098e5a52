// Pure helpers of the viewer kit (published as HandoffKit.util): no DOM, unit-tested.

/** KeyboardEvent.key -> X keysym for keys that are not characters (X11 keysymdef.h). */
const NAMED_KEYS: Record<string, number> = {
  Backspace: 0xff08, Tab: 0xff09, Enter: 0xff0d, Pause: 0xff13, ScrollLock: 0xff14, Escape: 0xff1b,
  Home: 0xff50, ArrowLeft: 0xff51, ArrowUp: 0xff52, ArrowRight: 0xff53, ArrowDown: 0xff54,
  PageUp: 0xff55, PageDown: 0xff56, End: 0xff57, PrintScreen: 0xff61, Insert: 0xff63,
  ContextMenu: 0xff67, NumLock: 0xff7f, Delete: 0xffff, CapsLock: 0xffe5, AltGraph: 0xfe03,
  Shift: 0xffe1, Control: 0xffe3, Alt: 0xffe9, Meta: 0xffeb, OS: 0xffeb, Super: 0xffeb, Hyper: 0xffed,
};
/** The right-hand modifiers, told apart by KeyboardEvent.code. */
const RIGHT_MODIFIERS: Record<string, number> = { ShiftRight: 0xffe2, ControlRight: 0xffe4, AltRight: 0xffea, MetaRight: 0xffec, OSRight: 0xffec };

/** X keysym for a KeyboardEvent's key (and code), or null for keys not sent (dead keys, IME). */
export function keysymOf(key: unknown, code?: string): number | null {
  if (typeof key !== 'string' || key === '') return null;
  if (Object.prototype.hasOwnProperty.call(NAMED_KEYS, key)) {
    const named = NAMED_KEYS[key]!;
    return named >= 0xffe1 && code !== undefined && code in RIGHT_MODIFIERS ? RIGHT_MODIFIERS[code]! : named;
  }
  const f = /^F([1-9]|[12]\d|3[0-5])$/.exec(key);
  if (f) return 0xffbe + Number(f[1]) - 1; // F1..F35
  const cp = key.codePointAt(0)!;
  if (key.length !== (cp > 0xffff ? 2 : 1)) return null; // a name such as "Dead" or "Process"
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return null; // control characters
  return cp <= 0xff ? cp : 0x01000000 | cp; // Latin-1 keysyms are the code points; Unicode keysyms
}

export interface Rect { left: number; top: number; width: number; height: number }
export interface Point { x: number; y: number }

/** A point on the scaled surface (client coordinates) -> framebuffer pixel, clamped to the screen. */
export function toFramebuffer(clientX: number, clientY: number, rect: Rect, width: number, height: number): Point {
  const clamp = (v: number, max: number) => Math.min(max - 1, Math.max(0, Math.floor(v)));
  return {
    x: clamp(((clientX - rect.left) / rect.width) * width, width),
    y: clamp(((clientY - rect.top) / rect.height) * height, height),
  };
}

/** DOM MouseEvent.buttons (1 left, 2 right, 4 middle) -> RFB mask (1 left, 2 middle, 4 right). */
export function rfbButtons(domButtons: number): number {
  return (domButtons & 1) | ((domButtons & 4) >> 1) | ((domButtons & 2) << 1);
}

const WHEEL_STEP_PX = 50;
const WHEEL_MODE_PX = [1, 19, 400]; // deltaMode pixel, line, page

/**
 * Wheel deltas -> notches, one axis: accumulates small (touchpad) deltas and gives at most one
 * notch per event, so a mouse notch is one notch whatever pixel size the platform reports.
 */
export function wheelStep(acc: number, delta: number, deltaMode: number): { acc: number; notch: number } {
  let next = Math.sign(acc) === -Math.sign(delta) ? 0 : acc; // a change of direction starts over
  next += delta * (WHEEL_MODE_PX[deltaMode] || 1);
  if (Math.abs(next) < WHEEL_STEP_PX) return { acc: next, notch: 0 };
  return { acc: 0, notch: Math.sign(next) };
}

/** Reconnect delay in ms after `attempt` consecutive failures: 0.5 s doubling up to 10 s. */
export function backoffDelay(attempt: number): number {
  return Math.min(10000, 500 * Math.pow(2, Math.max(0, attempt)));
}

/** The largest paste a transport carries (its UTF-8 bytes). */
export const MAX_PASTE = 1024 * 1024;

const TILE_HEADER = 14;

export interface Tile { kind: 1 | 2; seq: number; x: number; y: number; width: number; height: number; jpeg: Uint8Array }

/** The 14-byte big-endian tile header of a binary screencast message, or null if malformed. */
export function parseTile(buffer: ArrayBuffer | null | undefined): Tile | null {
  if (!buffer || !(buffer.byteLength > TILE_HEADER)) return null;
  const v = new DataView(buffer);
  const kind = v.getUint8(0);
  if (kind !== 1 && kind !== 2) return null;
  return {
    kind,
    seq: v.getUint32(1),
    x: v.getUint16(5),
    y: v.getUint16(7),
    width: v.getUint16(9),
    height: v.getUint16(11),
    jpeg: new Uint8Array(buffer, TILE_HEADER),
  };
}

export interface Endpoints { origin: string; base: string; ws: string }

/** `http://HOST/live/TOKEN[/...][?...]` -> the page base, the WebSocket base and the origin. */
export function liveEndpoints(url: string): Endpoints {
  const loc = (globalThis as { location?: Location }).location;
  const u = new URL(url, loc ? loc.href : undefined);
  const m = /^\/live\/[^/]+/.exec(u.pathname);
  if (!m || !/^https?:$/.test(u.protocol)) throw new Error('HandoffKit: url must be a live view URL http(s)://HOST/live/TOKEN');
  const base = u.origin + m[0];
  return { origin: u.origin, base, ws: base.replace(/^http/, 'ws') };
}

export function formatSize(n: number): string {
  if (n < 1024) return n + ' B';
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KB';
  return (n / 1024 / 1024).toFixed(1) + ' MB';
}
