// The session's pages in the viewer (issue 11): the tab strip, the file request and the remote
// clipboard, fed by the transport (PageEvents) and answered over its page channel.
import { h } from './dom.js';
import { clipboardPanel } from './clipboard.js';
import { filePanel } from './filerequest.js';
import { tabStrip } from './tabstrip.js';
import type { FileRequest, FocusHint, PageChannel, PageEvents, PageTab, Status } from './types.js';

export interface Pages {
  /** The strip and panels, to go above the picture. */
  el: HTMLElement;
  events: PageEvents;
  /** The open transport's channel (null: none, or one without tab and file messages). */
  setChannel(ch: PageChannel | null): void;
  render(status: Status): void;
  /** Forgets everything shown (the connection ended). */
  reset(): void;
  /** After a tap: asks which field has the remote focus (answered through `focused`). */
  probeFocus(): void;
}

/**
 * `dropZone`: where files are dropped; `escape` presses Esc in the session; `refocus` gives the
 * picture the keyboard; `focused` gets the remote focus hints.
 */
export function createPages(dropZone: HTMLElement, escape: () => void, refocus: () => void, focused: (hint: FocusHint) => void): Pages {
  let channel: PageChannel | null = null;
  let tabs: PageTab[] = [];
  let request: FileRequest | null = null;
  let control = false;
  const strip = tabStrip({ tab: (action, id) => channel?.send(id ? { type: 'tab', action, id } : { type: 'tab', action }), escape, refocus });
  const files = filePanel(dropZone);
  const clip = clipboardPanel();
  const el = h('div', { class: 'hk-pagesui' }, [strip.el, files.el, clip.el]);

  function draw(): void {
    strip.render(tabs, control && !!channel);
    files.render(request, channel, control);
  }

  return {
    el,
    events: {
      state(t, r) {
        tabs = Array.isArray(t) ? t : [];
        request = r && typeof r.id === 'string' ? r : null;
        draw();
      },
      clipboard(text) { if (typeof text === 'string') clip.show(text); },
      fileAnswer: (msg) => files.answer(msg),
      focus(hint) { if (hint && (hint.editable === true || hint.editable === false || hint.editable === null)) focused(hint); },
    },
    setChannel(ch) {
      channel = ch;
      draw();
    },
    render(status) {
      const c = status.state === 'live';
      if (c === control) return;
      control = c;
      draw();
    },
    probeFocus() {
      if (control) channel?.send({ type: 'tab', action: 'focus' });
    },
    reset() {
      tabs = [];
      request = null;
      channel = null;
      clip.hide();
      draw();
    },
  };
}
