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
import type { Status } from './types.js';

export interface Controls {
  /** Input from `surface` goes to `sink` until stop(). */
  attach(surface: HTMLElement, sink: InputSink, tooLarge: () => void): ControlInput;
  /** Presses and releases a key in the session (the key menu). */
  press(keysym: number): void;
  /** Gives the keyboard back to the attached surface. */
  focus(): void;
  /** Shows the key bar while the viewer has control. */
  render(status: Status): void;
}

/** The phone controls go in `view` (the text proxy) and `bar` (the key bar). */
export function createControls(root: HTMLElement, stage: HTMLElement, view: HTMLElement, bar: HTMLElement): Controls {
  const touch = typeof navigator !== 'undefined' && (navigator.maxTouchPoints > 0 || matchMedia('(pointer: coarse)').matches);
  if (touch) root.dataset.touch = '';
  let sink: InputSink | null = null;
  let zoom: Zoom | null = null;
  const kb = keyboard(() => sink);
  const proxy = textProxy(kb, () => sink, (open) => keys.setKeyboardOpen(open));
  const keys = keyBar(kb, {
    toggleKeyboard: () => (proxy.isOpen ? proxy.close() : proxy.open()),
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
      const gestures = touchInput(surface, to, z);
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
    render(status) {
      bar.hidden = !touch || !sink || status.state !== 'live';
      if (bar.hidden && proxy.isOpen) proxy.close();
    },
  };
}
