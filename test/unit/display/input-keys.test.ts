import { describe, expect, it } from 'vitest';
import { KeyboardMap, XInput, planKey } from '../../../src/display/input.js';
import { silentLogger } from '../../../src/util/logger.js';

/** Issue 11 item 5: Shift+Tab stays Shift+Tab; a key released under another keysym is released. */

// Xvfb's default US map, the keys that matter here (3 keysyms per keycode, from keycode 8).
const rows: number[][] = [];
for (let kc = 8; kc < 40; kc++) rows[kc - 8] = [0, 0, 0];
const at = (keycode: number, ...ks: number[]) => (rows[keycode - 8] = [ks[0] ?? 0, ks[1] ?? 0, ks[2] ?? 0]);
at(23, 0xff09, 0xfe20); // Tab, ISO_Left_Tab
at(32, 0x6f, 0x4f); // o O
at(33, 0x31, 0x21); // 1 !
at(37, 0xffe3); // Control_L
at(38, 0xff51); // Left
at(39, 0xffe1); // Shift_L
const map = new KeyboardMap(8, rows);

function fakeInput() {
  const sent: string[] = [];
  const names: Record<number, string> = { 2: 'key+', 3: 'key-' };
  const xtest = {
    KeyPress: 2, KeyRelease: 3, ButtonPress: 4, ButtonRelease: 5, MotionNotify: 6,
    FakeInput: (type: number, detail: number) => sent.push(`${names[type]} ${detail}`),
  };
  const client = { on: () => {}, ChangeKeyboardMapping: () => {}, SetSelectionOwner: () => {}, DestroyWindow: () => {} };
  const conn = { client, alive: true, width: 800, height: 600, root: 1, close: async () => {} };
  const XInputCtor = XInput as unknown as new (...args: unknown[]) => XInput;
  const input = new XInputCtor(conn, xtest, new KeyboardMap(8, rows), 99, { CLIPBOARD: 100, TARGETS: 101, UTF8_STRING: 102, TEXT: 103, HANDOFF_COPY: 104 }, silentLogger);
  return { input, sent };
}

describe('keys', () => {
  it('keeps a held Shift for Tab (X gives ISO_Left_Tab) and for keys that are not characters', () => {
    expect(planKey(map, 0xff09, true)).toEqual({ kind: 'press', keycode: 23, shift: 'keep' });
    expect(planKey(map, 0xff51, true)).toEqual({ kind: 'press', keycode: 38, shift: 'keep' });
    // A character still gets the Shift it needs lifted ('1' typed with Shift held by the client's layout).
    expect(planKey(map, 0x31, true)).toEqual({ kind: 'press', keycode: 33, shift: 'lift' });
    // ISO_Left_Tab sent as such: Shift added when not held.
    expect(planKey(map, 0xfe20, false)).toEqual({ kind: 'press', keycode: 23, shift: 'add' });

    const { input, sent } = fakeInput();
    input.key(0xffe1, true);
    input.key(0xff09, true);
    input.key(0xff09, false);
    input.key(0xffe1, false);
    expect(sent).toEqual(['key+ 39', 'key+ 23', 'key- 23', 'key- 39']);
  });

  it('releases by keycode when the release names another keysym of the same key (xtightvncviewer: O down, o up)', () => {
    const { input, sent } = fakeInput();
    input.key(0xffe1, true);
    input.key(0x4f, true); // 'O'
    input.key(0xffe1, false);
    input.key(0x6f, false); // released as 'o'
    expect(sent).toEqual(['key+ 39', 'key+ 32', 'key- 39', 'key- 32']);
    // Nothing is left held: a release of a key never pressed stays a no-op.
    sent.length = 0;
    input.key(0x6f, false);
    input.releaseAll();
    expect(sent).toEqual([]);
  });
});
