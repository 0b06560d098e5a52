// The text proxy: a real (invisible) text field in the viewer, so a phone opens its keyboard.
// What the keyboard does to it (keys, IME composition, insertText, autocorrect, backspace) is
// sent to the remote page as key presses: the difference between what was sent and its value.
import { h } from './dom.js';
import { KEYSYM, type Keyboard, type KeySink } from './keyboard.js';
import { keysymOf } from './util.js';
import type { FocusHint } from './types.js';

/** Past this, the field starts over (autocorrect only looks at the last words). */
const MAX_BUFFER = 200;
/** The phone keyboard for the remote field's type (when it names no inputmode). */
const INPUT_MODE_OF: Record<string, string> = { email: 'email', url: 'url', tel: 'tel', number: 'decimal', search: 'search' };

export interface TextProxy {
  el: HTMLTextAreaElement;
  /** Focuses the field (the phone keyboard opens in a user gesture); starts over if it has it. */
  open(): void;
  /** The remote field's keyboard (inputmode); a password is never kept in the field. */
  setHint(hint: FocusHint): void;
  close(): void;
  readonly isOpen: boolean;
}

export function textProxy(kb: Keyboard, sink: () => KeySink | null, changed: (open: boolean) => void): TextProxy {
  const el = h('textarea', {
    class: 'hk-textproxy', 'aria-label': 'Type into the remote page', autocomplete: 'off', autocapitalize: 'off', spellcheck: 'false', rows: '1',
  });
  let sent = ''; // what the remote field got from this buffer
  let composing = false;
  let secret = false;

  function startOver(): void {
    el.value = '';
    sent = '';
  }

  /** Sends the change from `sent` to the field's value: backspaces for what went, keys for what came. */
  function sync(): void {
    const before = Array.from(sent);
    const now = Array.from(el.value);
    let same = 0;
    while (same < before.length && same < now.length && before[same] === now[same]) same++;
    for (let i = same; i < before.length; i++) kb.press(KEYSYM.BackSpace);
    kb.type(now.slice(same).join(''));
    sent = el.value;
    if (secret || el.value.length > MAX_BUFFER || el.value.endsWith('\n')) startOver();
  }

  el.addEventListener('keydown', (ev) => {
    const s = sink();
    if (!s || !s.canControl()) return;
    // IME at work (Android keyboards send 229 / "Unidentified"): the input event says what changed.
    if (ev.isComposing || ev.keyCode === 229 || ev.key === 'Unidentified' || ev.key === 'Process') return;
    if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && ev.key.toLowerCase() === 'v') return; // the transport's paste
    const keysym = keysymOf(ev.key, ev.code);
    if (keysym === null || (keysym >= 0xffe1 && keysym <= 0xffee)) return; // modifiers ride with the key
    ev.preventDefault();
    const mods = [ev.ctrlKey && KEYSYM.Control, ev.shiftKey && ev.key.length > 1 && KEYSYM.Shift, ev.altKey && 0xffe9, ev.metaKey && 0xffeb].filter((m): m is number => !!m);
    kb.press(keysym, mods);
    startOver(); // a key typed directly: the buffer no longer matches the remote field
  });
  el.addEventListener('compositionstart', () => { composing = true; });
  el.addEventListener('compositionend', () => { composing = false; sync(); });
  el.addEventListener('input', () => {
    const s = sink();
    if (!s || !s.canControl()) return startOver();
    if (!composing) sync();
  });
  el.addEventListener('blur', () => { composing = false; startOver(); changed(false); });
  el.addEventListener('focus', () => changed(true));

  return {
    el,
    open() {
      startOver();
      if (document.activeElement !== el) el.focus({ preventScroll: true });
    },
    setHint(hint) {
      secret = hint.kind === 'password';
      const mode = hint.inputMode || INPUT_MODE_OF[hint.kind || ''] || 'text';
      if (el.getAttribute('inputmode') !== mode) el.setAttribute('inputmode', mode);
    },
    close() {
      el.blur();
    },
    get isOpen() { return document.activeElement === el; },
  };
}
