// Key presses for the phone controls (key bar and text proxy), with the key bar's latched Ctrl.
import { keysymOf } from './util.js';

export const KEYSYM = { BackSpace: 0xff08, Tab: 0xff09, Enter: 0xff0d, Escape: 0xff1b, Left: 0xff51, Up: 0xff52, Right: 0xff53, Down: 0xff54, Shift: 0xffe1, Control: 0xffe3 } as const;

export interface KeySink {
  canControl(): boolean;
  key(keysym: number, down: boolean): void;
}

export interface Keyboard {
  /** Presses and releases `keysym` with `mods` (and Ctrl when latched, which then unlatches). */
  press(keysym: number, mods?: number[]): void;
  /** Types `text` as key presses (a line break is Enter). */
  type(text: string): void;
  ctrl: boolean;
  onCtrl: (on: boolean) => void;
}

/** `sink()` is the current transport's input, or null when none takes keys. */
export function keyboard(sink: () => KeySink | null): Keyboard {
  const kb: Keyboard = {
    ctrl: false,
    onCtrl: () => {},
    press(keysym, mods = []) {
      const s = sink();
      if (!s || !s.canControl()) return;
      const all = kb.ctrl ? [KEYSYM.Control, ...mods] : mods;
      for (const m of all) s.key(m, true);
      s.key(keysym, true);
      s.key(keysym, false);
      for (const m of all.slice().reverse()) s.key(m, false);
      if (kb.ctrl) {
        kb.ctrl = false;
        kb.onCtrl(false);
      }
    },
    type(text) {
      for (const ch of text) {
        const keysym = ch === '\n' ? KEYSYM.Enter : keysymOf(ch);
        if (keysym !== null) kb.press(keysym);
      }
    },
  };
  return kb;
}
