// Text copied inside the session (issue 11 item 4): shown with a Copy button, because a page may
// write the human's clipboard only in a click (a user gesture), never when the copy arrives.
import { h } from './dom.js';

export interface ClipboardPanel {
  el: HTMLElement;
  show(text: string): void;
  hide(): void;
}

export function clipboardPanel(): ClipboardPanel {
  const text = h('textarea', { class: 'hk-clip-text', readonly: true, rows: '2', 'aria-label': 'Text copied in the session' });
  const note = h('span', { class: 'hk-clip-note', role: 'status' });
  const copy = h('button', { type: 'button', class: 'hk-btn hk-primary', text: 'Copy', onclick: () => void copyOut() });
  const close = h('button', { type: 'button', class: 'hk-btn', text: 'Dismiss', onclick: () => hide() });
  const el = h('section', { class: 'hk-clip', 'aria-label': 'Copied in the session', hidden: true }, [
    h('p', { class: 'hk-clip-title', text: 'Copied in the session:' }), text,
    h('div', { class: 'hk-actions' }, [copy, close, note]),
  ]);

  async function copyOut(): Promise<void> {
    try {
      await navigator.clipboard.writeText(text.value);
      note.textContent = 'Copied to your clipboard.';
    } catch {
      // No Clipboard API (plain http on another host): select it for the human's own Ctrl+C.
      text.select();
      note.textContent = document.execCommand('copy') ? 'Copied to your clipboard.' : 'Select the text and copy it yourself.';
    }
  }
  function hide(): void {
    el.hidden = true;
    text.value = '';
  }

  return {
    el,
    show(t) {
      text.value = t;
      note.textContent = '';
      el.hidden = false;
    },
    hide,
  };
}
