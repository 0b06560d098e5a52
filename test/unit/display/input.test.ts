import { describe, expect, it, vi } from 'vitest';
import { KeyboardMap, XInput, keysymForChar, planKey } from '../../../src/display/input.js';
import { silentLogger } from '../../../src/util/logger.js';

// A slice of a US map as GetKeyboardMapping returns it (3 keysyms per keycode), from keycode 8.
const rows: number[][] = [];
const at = (keycode: number, ...ks: number[]) => (rows[keycode - 8] = [ks[0] ?? 0, ks[1] ?? 0, ks[2] ?? 0]);
for (let kc = 8; kc < 30; kc++) at(kc);
at(10, 0x31, 0x21); // 1 !
at(11, 0x32, 0x40); // 2 @
at(12, 0x33, 0x23); // 3 #
at(13, 0x61, 0x41); // a A
at(14, 0x62); // b, implicit B (X11 protocol 5: NoSymbol second => case pair)
at(15, 0x20); // space
at(16, 0xffe1); // Shift_L
at(17, 0xffe3); // Control_L
at(18, 0x61, 0x41); // a second 'a' key: the lower keycode wins
at(19, 0x3c, 0x3e, 0xe9); // < > and é only in a third column (another group)

const map = new KeyboardMap(8, rows);

describe('keyboard map and key planning', () => {
  it('finds unshifted keysyms without Shift', () => {
    expect(planKey(map, 0x61, false)).toEqual({ kind: 'press', keycode: 13, shift: 'keep' });
    expect(planKey(map, 0x20, false)).toEqual({ kind: 'press', keycode: 15, shift: 'keep' });
    expect(planKey(map, 0xffe3, false)).toEqual({ kind: 'press', keycode: 17, shift: 'keep' });
  });

  it('adds Shift for capitals and shifted punctuation unless it is held', () => {
    expect(planKey(map, 0x41, false)).toEqual({ kind: 'press', keycode: 13, shift: 'add' });
    expect(planKey(map, 0x21, false)).toEqual({ kind: 'press', keycode: 10, shift: 'add' });
    expect(planKey(map, 0x40, false)).toEqual({ kind: 'press', keycode: 11, shift: 'add' });
    expect(planKey(map, 0x23, false)).toEqual({ kind: 'press', keycode: 12, shift: 'add' });
    expect(planKey(map, 0x41, true)).toEqual({ kind: 'press', keycode: 13, shift: 'keep' });
  });

  it('lifts a held Shift only when it would change the keysym', () => {
    expect(planKey(map, 0x31, true)).toEqual({ kind: 'press', keycode: 10, shift: 'lift' }); // '1', not '!'
    expect(planKey(map, 0x61, true)).toEqual({ kind: 'press', keycode: 13, shift: 'lift' });
    expect(planKey(map, 0x20, true)).toEqual({ kind: 'press', keycode: 15, shift: 'keep' }); // space either way
    expect(planKey(map, 0xffe3, true)).toEqual({ kind: 'press', keycode: 17, shift: 'keep' });
  });

  it('derives the upper case of a lone lower-case letter', () => {
    expect(planKey(map, 0x62, false)).toEqual({ kind: 'press', keycode: 14, shift: 'keep' });
    expect(planKey(map, 0x42, false)).toEqual({ kind: 'press', keycode: 14, shift: 'add' });
  });

  it('asks for a binding when the keysym has no group 1 keycode', () => {
    expect(planKey(map, 0xe9, false)).toEqual({ kind: 'bind' }); // é: only in group 2
    expect(planKey(map, 0x01000436, false)).toEqual({ kind: 'bind' }); // ж
  });

  it('lists spare keycodes, highest first, and rebinds them', () => {
    const m = new KeyboardMap(8, rows);
    const spare = m.spareKeycodes();
    expect(spare[0]).toBe(29);
    expect(spare).not.toContain(13);
    // ж binds with its capital Ж (0x416) like a real layout key.
    const row = m.bindingRow(0x01000416);
    expect(row).toEqual([0x01000436, 0x01000416, 0]);
    m.setRow(29, row);
    expect(planKey(m, 0x01000436, false)).toEqual({ kind: 'press', keycode: 29, shift: 'keep' });
    expect(planKey(m, 0x01000416, false)).toEqual({ kind: 'press', keycode: 29, shift: 'add' });
    expect(m.spareKeycodes()).not.toContain(29);
    // Caseless keysyms go in at both levels: Shift does not matter.
    const euro = m.bindingRow(0x010020ac);
    expect(euro).toEqual([0x010020ac, 0x010020ac, 0]);
    m.setRow(28, euro);
    expect(planKey(m, 0x010020ac, true)).toEqual({ kind: 'press', keycode: 28, shift: 'keep' });
    expect(m.bindingRow(0xdf)).toEqual([0xdf, 0xdf, 0]); // ß: its upper case is two letters
    expect(m.bindingRow(0xe9)).toEqual([0xe9, 0xc9, 0]); // é É
    m.setRow(29, m.bindingRow(0xe9)); // reused for another keysym: the old one is gone
    expect(planKey(m, 0x01000436, false)).toEqual({ kind: 'bind' });
    expect(planKey(m, 0xe9, false)).toEqual({ kind: 'press', keycode: 29, shift: 'keep' });
  });

  it('maps characters to keysyms', () => {
    expect([...'aZ !é'].map(keysymForChar)).toEqual([0x61, 0x5a, 0x20, 0x21, 0xe9]);
    expect(keysymForChar('ж')).toBe(0x01000436);
    expect(keysymForChar('€')).toBe(0x010020ac);
  });
});

describe('XInput event planning (fake X connection)', () => {
  type Sent = string;
  function fakeInput() {
    const sent: Sent[] = [];
    const names: Record<number, string> = { 2: 'key+', 3: 'key-', 4: 'btn+', 5: 'btn-', 6: 'move' };
    const xtest = {
      KeyPress: 2, KeyRelease: 3, ButtonPress: 4, ButtonRelease: 5, MotionNotify: 6,
      FakeInput: (type: number, detail: number, _t: number, _root: number, x: number, y: number) =>
        sent.push(type === 6 ? `move ${x},${y}` : `${names[type]} ${detail}`),
    };
    const client = {
      on: () => {},
      ChangeKeyboardMapping: (kc: number, _n: number, ks: number[]) => sent.push(`bind ${kc}=${ks.slice(0, 2).map((k) => k.toString(16)).join('/')}`),
      SetSelectionOwner: () => {},
      DestroyWindow: () => {},
    };
    const conn = { client, alive: true, width: 800, height: 600, root: 1, close: async () => {} };
    const XInputCtor = XInput as unknown as new (...args: unknown[]) => XInput;
    const input = new XInputCtor(conn, xtest, new KeyboardMap(8, rows), 99, { CLIPBOARD: 100, TARGETS: 101, UTF8_STRING: 102, TEXT: 103 }, silentLogger);
    return { input, sent };
  }

  it('presses and releases only the buttons that changed, wheel as clicks, clamped', () => {
    const { input, sent } = fakeInput();
    input.pointer(10, 20, 0);
    input.pointer(10, 20, 0b1); // left down
    input.pointer(900, -5, 0b101); // drag off screen, right down too
    input.pointer(900, -5, 0b100); // left up
    input.pointer(900, -5, 0b1_0000 | 0b100); // wheel down while right held
    input.pointer(900, -5, 0b100); // the wheel "release" from RFB: nothing
    input.releaseAll();
    expect(sent).toEqual([
      'move 10,20', 'btn+ 1',
      'move 799,0', 'btn+ 3',
      'btn- 1',
      'btn+ 5', 'btn- 5',
      'btn- 3',
    ]);
  });

  it('adds Shift for shifted keysyms, lifts a held Shift when it would change the keysym', () => {
    const { input, sent } = fakeInput();
    input.key(0x21, true); // '!'
    input.key(0x21, false);
    input.key(0xffe1, true); // user holds Shift
    input.key(0x41, true); // 'A': Shift already held
    input.key(0x41, false);
    input.key(0x31, true); // '1' while Shift is held
    input.key(0x31, false);
    input.key(0xffe1, false);
    expect(sent).toEqual([
      'key+ 16', 'key+ 10', 'key- 16', 'key- 10',
      'key+ 16',
      'key+ 13', 'key- 13',
      'key- 16', 'key+ 10', 'key+ 16', 'key- 10',
      'key- 16',
    ]);
  });

  it('binds an unmapped keysym to a spare keycode, presses it once settled, releases what it pressed', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
      const { input, sent } = fakeInput();
      input.key(0x01000436, true); // ж: bound to a spare keycode, pressed after the bind settles
      expect(sent).toEqual(['bind 29=1000436/1000416']);
      vi.advanceTimersByTime(50);
      expect(sent.slice(1)).toEqual(['key+ 29']);
      input.key(0x61, true); // nothing queued any more: goes straight out
      input.key(0x01000436, false);
      expect(sent.slice(2)).toEqual(['key+ 13', 'key- 29']);
      input.releaseAll();
      expect(sent.slice(4)).toEqual(['key- 13']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('keeps input in order while a binding settles; releaseAll drops what is still queued', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
      const { input, sent } = fakeInput();
      input.key(0xe9, true); // é: needs a binding
      input.key(0xe9, false);
      input.key(0x61, true); // must not overtake é
      input.key(0x61, false);
      expect(sent).toEqual(['bind 29=e9/c9']);
      vi.advanceTimersByTime(50);
      expect(sent.slice(1)).toEqual(['key+ 29', 'key- 29', 'key+ 13', 'key- 13']);
      sent.length = 0;
      input.key(0x01000436, true);
      input.key(0x61, true);
      input.releaseAll(); // a detach: the queued 'a' is dropped, nothing stays down
      vi.advanceTimersByTime(50);
      expect(sent).toEqual(['bind 28=1000436/1000416']);
    } finally {
      vi.useRealTimers();
    }
  });
});
