import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { runInNewContext } from 'node:vm';

// The kit is a classic browser script; its pure helpers are HandoffKit.util. Loading it in a bare
// context also proves it touches no DOM until mount() is called.
const source = readFileSync(new URL('../../../dist/http/assets/hitl-kit.js', import.meta.url), 'utf8');
const sandbox: { window: Record<string, any>; URL: typeof URL } = { window: {}, URL };
runInNewContext(source, sandbox);
const util = sandbox.window.HandoffKit.util;

describe('keysymOf', () => {
  it('maps Latin-1 characters to themselves', () => {
    expect(util.keysymOf('a', 'KeyA')).toBe(0x61);
    expect(util.keysymOf('A', 'KeyA')).toBe(0x41);
    expect(util.keysymOf(' ', 'Space')).toBe(0x20);
    expect(util.keysymOf('~', 'Backquote')).toBe(0x7e);
    expect(util.keysymOf('é', 'Digit2')).toBe(0xe9);
    expect(util.keysymOf('ÿ', '')).toBe(0xff);
  });

  it('maps other Unicode to 0x01000000 | code point, astral planes included', () => {
    expect(util.keysymOf('€', 'KeyE')).toBe(0x010020ac);
    expect(util.keysymOf('ж', 'Semicolon')).toBe(0x01000436);
    expect(util.keysymOf('😀', '')).toBe(0x0101f600);
  });

  it('maps named keys', () => {
    const expected: Record<string, number> = {
      Enter: 0xff0d, Backspace: 0xff08, Tab: 0xff09, Escape: 0xff1b, Delete: 0xffff, Insert: 0xff63,
      Home: 0xff50, ArrowLeft: 0xff51, ArrowUp: 0xff52, ArrowRight: 0xff53, ArrowDown: 0xff54,
      PageUp: 0xff55, PageDown: 0xff56, End: 0xff57, CapsLock: 0xffe5,
      F1: 0xffbe, F2: 0xffbf, F12: 0xffc9,
    };
    for (const [key, keysym] of Object.entries(expected)) expect(util.keysymOf(key, ''), key).toBe(keysym);
  });

  it('tells left and right modifiers apart by code', () => {
    expect(util.keysymOf('Shift', 'ShiftLeft')).toBe(0xffe1);
    expect(util.keysymOf('Shift', 'ShiftRight')).toBe(0xffe2);
    expect(util.keysymOf('Control', 'ControlLeft')).toBe(0xffe3);
    expect(util.keysymOf('Control', 'ControlRight')).toBe(0xffe4);
    expect(util.keysymOf('Alt', 'AltLeft')).toBe(0xffe9);
    expect(util.keysymOf('Alt', 'AltRight')).toBe(0xffea);
    expect(util.keysymOf('Meta', 'MetaLeft')).toBe(0xffeb);
    expect(util.keysymOf('Meta', 'MetaRight')).toBe(0xffec);
    // A right-side code does not turn a non-modifier into a modifier.
    expect(util.keysymOf('Enter', 'ShiftRight')).toBe(0xff0d);
  });

  it('sends nothing for keys it cannot name', () => {
    for (const key of ['Dead', 'Process', 'Unidentified', 'F36', 'Fn', '', '\u0007', '\u0085']) {
      expect(util.keysymOf(key, ''), JSON.stringify(key)).toBeNull();
    }
  });
});

describe('toFramebuffer', () => {
  const rect = { left: 100, top: 50, width: 640, height: 360 }; // 1280x720 shown at half size

  it('scales from the displayed surface to framebuffer pixels', () => {
    expect(util.toFramebuffer(100, 50, rect, 1280, 720)).toEqual({ x: 0, y: 0 });
    expect(util.toFramebuffer(420, 230, rect, 1280, 720)).toEqual({ x: 640, y: 360 });
    expect(util.toFramebuffer(100.75, 50.75, rect, 1280, 720)).toEqual({ x: 1, y: 1 });
  });

  it('clamps points outside the surface (captured drags) to the screen', () => {
    expect(util.toFramebuffer(0, 0, rect, 1280, 720)).toEqual({ x: 0, y: 0 });
    expect(util.toFramebuffer(740, 410, rect, 1280, 720)).toEqual({ x: 1279, y: 719 });
    expect(util.toFramebuffer(5000, 5000, rect, 1280, 720)).toEqual({ x: 1279, y: 719 });
  });
});

describe('rfbButtons', () => {
  it('swaps DOM right (2) and middle (4) into RFB middle (2) and right (4)', () => {
    expect(util.rfbButtons(0)).toBe(0);
    expect(util.rfbButtons(1)).toBe(1);
    expect(util.rfbButtons(2)).toBe(4);
    expect(util.rfbButtons(4)).toBe(2);
    expect(util.rfbButtons(7)).toBe(7);
    expect(util.rfbButtons(1 | 2)).toBe(1 | 4);
  });
});

describe('wheelStep', () => {
  const run = (deltas: number[], mode = 0) => {
    let acc = 0;
    return deltas.map((d) => {
      const s = util.wheelStep(acc, d, mode);
      acc = s.acc;
      return s.notch;
    });
  };

  it('gives one notch per mouse notch whatever its pixel size', () => {
    expect(run([100, 100, -100])).toEqual([1, 1, -1]);
    expect(run([53, 53])).toEqual([1, 1]);
    expect(run([120])).toEqual([1]);
  });

  it('accumulates small touchpad deltas and starts over on a change of direction', () => {
    expect(run([10, 10, 10, 10, 10, 10])).toEqual([0, 0, 0, 0, 1, 0]);
    expect(run([30, -30, -30])).toEqual([0, 0, -1]);
  });

  it('normalises line and page modes', () => {
    expect(run([3], 1)).toEqual([1]);
    expect(run([1, 1, 1], 1)).toEqual([0, 0, 1]);
    expect(run([-1], 2)).toEqual([-1]);
    expect(run([0])).toEqual([0]);
  });
});

describe('backoffDelay', () => {
  it('doubles from 0.5 s up to 10 s', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 20].map(util.backoffDelay)).toEqual([500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
  });
});

describe('parseTile', () => {
  const tile = (kind: number, body = [0xff, 0xd8]) => {
    const b = Buffer.alloc(14 + body.length);
    b[0] = kind;
    b.writeUInt32BE(0x01020304, 1);
    b.writeUInt16BE(16, 5);
    b.writeUInt16BE(32, 7);
    b.writeUInt16BE(640, 9);
    b.writeUInt16BE(360, 11);
    Buffer.from(body).copy(b, 14);
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.length);
  };

  it('reads the big-endian header and leaves the JPEG bytes', () => {
    const t = util.parseTile(tile(2));
    expect({ ...t, jpeg: [...t.jpeg] }).toEqual({ kind: 2, seq: 0x01020304, x: 16, y: 32, width: 640, height: 360, jpeg: [0xff, 0xd8] });
    expect(util.parseTile(tile(1)).kind).toBe(1);
  });

  it('refuses unknown kinds and short messages', () => {
    expect(util.parseTile(tile(3))).toBeNull();
    expect(util.parseTile(tile(0))).toBeNull();
    expect(util.parseTile(tile(2, []))).toBeNull();
    expect(util.parseTile(new ArrayBuffer(5))).toBeNull();
  });
});

describe('liveEndpoints', () => {
  it('derives the page base and the WebSocket base, keeping TLS', () => {
    expect(util.liveEndpoints('http://h:9222/live/abc.def')).toEqual({ origin: 'http://h:9222', base: 'http://h:9222/live/abc.def', ws: 'ws://h:9222/live/abc.def' });
    expect(util.liveEndpoints('https://h/live/T/?transport=vnc#x')).toEqual({ origin: 'https://h', base: 'https://h/live/T', ws: 'wss://h/live/T' });
    expect(util.liveEndpoints('http://[::1]:9222/live/T/screencast').ws).toBe('ws://[::1]:9222/live/T');
  });

  it('refuses URLs that are not live view URLs', () => {
    expect(() => util.liveEndpoints('http://h/session/x')).toThrow(/live view URL/);
    expect(() => util.liveEndpoints('ftp://h/live/T')).toThrow(/live view URL/);
  });
});
