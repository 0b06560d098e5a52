// Keyboard focus on the picture (issue 11 item 5): the picture takes the focus when it appears,
// and while it has none the view says "Click the picture to type" (keys would go nowhere).
import { h } from './dom.js';

export interface TypingHint {
  /** Focuses `surface` and follows its focus until the returned stop(). */
  attach(surface: HTMLElement): () => void;
  /** Gives the focus back to the picture (after a click on the viewer's own buttons). */
  focus(): void;
}

export function typingHint(view: HTMLElement): TypingHint {
  let target: HTMLElement | null = null;
  const hint = h('button', {
    type: 'button', class: 'hk-typehint', text: 'Click the picture to type',
    onclick: () => focus(),
  });
  view.append(hint);
  const focus = () => target?.focus({ preventScroll: true });
  const sync = () => view.toggleAttribute('data-typing', !!target && document.activeElement === target);
  return {
    focus,
    attach(surface) {
      target = surface;
      surface.addEventListener('focus', sync);
      surface.addEventListener('blur', sync);
      surface.focus({ preventScroll: true });
      sync();
      return () => {
        surface.removeEventListener('focus', sync);
        surface.removeEventListener('blur', sync);
        if (target === surface) target = null;
        sync();
      };
    },
  };
}
