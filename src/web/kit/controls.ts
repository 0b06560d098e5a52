// The viewer's input, whatever the transport: mouse and keyboard (input.ts) and, on touch
// devices, gestures (touch.ts), zoom (zoom.ts), the key bar and the text proxy. A transport
// attaches its surface and sink; the phone controls follow the attached one.
import { controlInput, type ControlInput, type InputSink } from './input.js';
import { keyBar } from './keybar.js';
import { keyboard } from './keyboard.js';
import { textProxy } from './textproxy.js';
import { touchInput } from './touch.js';
import { typingHint } from './focus.js';
import { zoomer, type Zoom } from './zoom.js';
import type { FocusHint, Status } from './types.js';

/** A focus hint this soon after a tap opens the keyboard (the tap's user activation still holds). */
const TAP_FOCUS_MS = 2000;

export interface Controls {
  /** Input from `surface` goes to `sink` until stop(). */
  attach(surface: HTMLElement, sink: InputSink, tooLarge: () => void): ControlInput;
  /** Presses and releases a key in the session (the key menu). */
  press(keysym: number): void;
  /** Gives the keyboard back to the attached surface. */
  focus(): void;
  /** Shows the key bar while the viewer has control. */
  render(status: Status): void;
  /** The remote page's focused field after a tap (issue 12: the keyboard opens by itself). */
  remoteFocus(hint: FocusHint): void;
}

/**
 * The phone controls go in `view` (the text proxy) and `bar` (the key bar). `probeFocus` asks
 * the daemon which field a tap focused; its answers come to remoteFocus().
 */
export function createControls(root: HTMLElement, stage: HTMLElement, view: HTMLElement, bar: HTMLElement, probeFocus: () => void = () => {}): Controls {
  const touch = typeof navigator !== 'undefined' && (navigator.maxTouchPoints > 0 || matchMedia('(pointer: coarse)').matches);
  if (touch) root.dataset.touch = '';
  let sink: InputSink | null = null;
  let zoom: Zoom | null = null;
  const kb = keyboard(() => sink);
  const proxy = textProxy(kb, () => sink, (open) => keys.setKeyboardOpen(open));
  // The remote focus, and whether a tap (not the keyboard button) opened the proxy: a tap away
  // from a text field closes only a keyboard a tap opened.
  let focusHint: FocusHint = { editable: false };
  let tapAt = -Infinity;
  let byTap = false;
  const openProxy = (tap: boolean) => {
    if (!proxy.isOpen) byTap = tap;
    proxy.open();
  };
  /** In the tap's own event: opening the keyboard needs a user gesture (iOS: this very event). */
  function tapped(): void {
    tapAt = performance.now();
    // The last hint says a text field has the focus: the tap is most likely on it (a tap
    // elsewhere closes it again once the probe answers). Open, or start over: the caret moved.
    if (proxy.isOpen || focusHint.editable === true) openProxy(true);
    probeFocus();
  }
  const keys = keyBar(kb, {
    toggleKeyboard: () => (proxy.isOpen ? proxy.close() : openProxy(false)),
    resetZoom: () => zoom?.reset(),
  });
  view.append(proxy.el);
  bar.replaceChildren(keys.el);
  bar.hidden = true;
  const hint = typingHint(view);

  return {
    attach(surface, to, tooLarge) {
      const base = controlInput(surface, to, tooLarge);
      const z = zoomer(stage, surface, (scale) => {
        keys.setZoomed(scale > 1);
        root.toggleAttribute('data-zoomed', scale > 1);
      });
      const gestures = touchInput(surface, to, z, tapped);
      const unfocus = hint.attach(surface);
      sink = to;
      zoom = z;
      return {
        release: base.release,
        stop() {
          base.stop();
          gestures.stop();
          unfocus();
          z.reset();
          z.stop();
          if (sink !== to) return;
          sink = null;
          zoom = null;
          proxy.close();
        },
      };
    },
    press: (keysym) => kb.press(keysym),
    focus: () => hint.focus(),
    remoteFocus(next) {
      focusHint = next;
      proxy.setHint(next);
      if (!touch || !sink || !sink.canControl()) return;
      // Chromium opens the keyboard for a focus within the tap's activation (a few seconds).
      if (next.editable === true && !proxy.isOpen && performance.now() - tapAt < TAP_FOCUS_MS) openProxy(true);
      else if (next.editable === false && proxy.isOpen && byTap) proxy.close();
    },
    render(status) {
      bar.hidden = !touch || !sink || status.state !== 'live';
      if (bar.hidden && proxy.isOpen) proxy.close();
    },
  };
}
