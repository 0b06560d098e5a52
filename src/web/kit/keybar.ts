// The key bar under the picture on touch devices: keys a phone keyboard lacks, the keyboard
// toggle (the text proxy) and the zoom reset.
import { h } from './dom.js';
import { KEYSYM, type Keyboard } from './keyboard.js';

export interface KeyBar {
  el: HTMLElement;
  setZoomed(zoomed: boolean): void;
  setKeyboardOpen(open: boolean): void;
}

export function keyBar(kb: Keyboard, actions: { toggleKeyboard(): void; resetZoom(): void }): KeyBar {
  // A tap on the bar must not take the focus from the text proxy (that closes the phone's keyboard).
  const keep = (ev: Event) => ev.preventDefault();
  const button = (label: string, text: string, onclick: () => void, extra: Record<string, unknown> = {}) =>
    h('button', { type: 'button', class: 'hk-key', 'aria-label': label, text, onclick, onpointerdown: keep, onmousedown: keep, ...extra });
  const key = (label: string, text: string, keysym: number, mods: number[] = []) => button(label, text, () => kb.press(keysym, mods));

  const keyboardBtn = button('Keyboard', '⌨', actions.toggleKeyboard, { 'aria-pressed': 'false', 'data-key': 'keyboard' });
  const ctrlBtn = button('Ctrl (for the next key)', 'Ctrl', () => {
    kb.ctrl = !kb.ctrl;
    kb.onCtrl(kb.ctrl);
  }, { 'aria-pressed': 'false', 'data-key': 'ctrl' });
  kb.onCtrl = (on) => ctrlBtn.setAttribute('aria-pressed', String(on));
  const resetBtn = button('Reset zoom', '1:1', actions.resetZoom, { hidden: true, 'data-key': 'reset-zoom' });
  const el = h('div', { class: 'hk-keys', role: 'toolbar', 'aria-label': 'Keys' }, [
    keyboardBtn,
    key('Escape', 'Esc', KEYSYM.Escape),
    key('Tab', 'Tab', KEYSYM.Tab),
    key('Shift+Tab', '⇧Tab', KEYSYM.Tab, [KEYSYM.Shift]),
    key('Left', '←', KEYSYM.Left),
    key('Up', '↑', KEYSYM.Up),
    key('Down', '↓', KEYSYM.Down),
    key('Right', '→', KEYSYM.Right),
    key('Enter', '⏎', KEYSYM.Enter),
    ctrlBtn,
    resetBtn,
  ]);
  return {
    el,
    setZoomed(zoomed) { resetBtn.hidden = !zoomed; },
    setKeyboardOpen(open) { keyboardBtn.setAttribute('aria-pressed', String(open)); },
  };
}
