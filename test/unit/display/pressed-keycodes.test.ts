import { describe, expect, it } from 'vitest';
import { pressedKeycodes } from '../../../src/display/window.js';

describe('pressedKeycodes (QueryKeymap reply)', () => {
  it('lists keycode 8*i + k for bit k of byte i, and nothing past 32 bytes', () => {
    const keys = Buffer.alloc(40);
    keys[6] = 0b0000_0100; // keycode 50: Shift_L on a usual map
    keys[4] = 0b0010_0001; // keycodes 32 and 37
    keys[35] = 0xff; // past the reply's 32 bytes
    expect(pressedKeycodes(keys)).toEqual([32, 37, 50]);
    expect(pressedKeycodes(Buffer.alloc(32))).toEqual([]);
  });
});
