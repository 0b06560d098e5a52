// The viewer's mouse, wheel, keyboard and paste on a surface -> framebuffer input for a transport.
import { keysymOf, rfbButtons, wheelStep, type Point } from './util.js';

/** Where input goes, in framebuffer pixels. */
export interface InputSink {
  canControl(): boolean;
  /** Client coordinates -> framebuffer pixel, or null outside the picture. */
  point(clientX: number, clientY: number): Point | null;
  /** `buttons` is the RFB mask. */
  pointer(x: number, y: number, buttons: number): void;
  /** dx, dy in notches. */
  wheel(x: number, y: number, dx: number, dy: number): void;
  key(keysym: number, down: boolean): void;
  /** False when the text is too large. */
  paste(text: string): boolean;
}

export interface ControlInput {
  /** Lets go of held keys and buttons. */
  release(): void;
  stop(): void;
}

/** Sends `surface`'s input to `sink` while sink.canControl(); `tooLarge` is called for a refused paste. */
export function controlInput(surface: HTMLElement, sink: InputSink, tooLarge: () => void): ControlInput {
  const held = new Map<string, number>(); // KeyboardEvent.code -> keysym sent down
  let last = { x: -1, y: -1, buttons: 0 };
  let wheel = { x: 0, y: 0 };

  /** Outside the picture, the last point: a button let go out there is still let go. */
  function point(ev: MouseEvent): Point | null {
    return sink.point(ev.clientX, ev.clientY) || (last.x < 0 ? null : last);
  }

  function pointer(ev: PointerEvent): void {
    if (ev.type === 'pointerdown') {
      surface.focus({ preventScroll: true });
      ev.preventDefault(); // no text selection or drag from the page around us
      surface.setPointerCapture(ev.pointerId);
    }
    if (!sink.canControl()) return;
    const p = point(ev);
    if (p) sendPointer(p.x, p.y, rfbButtons(ev.buttons));
  }

  function sendPointer(x: number, y: number, buttons: number): void {
    if (x === last.x && y === last.y && buttons === last.buttons) return;
    last = { x, y, buttons };
    sink.pointer(x, y, buttons);
  }

  function onWheel(ev: WheelEvent): void {
    ev.preventDefault();
    if (!sink.canControl()) return;
    const sx = wheelStep(wheel.x, ev.deltaX, ev.deltaMode);
    const sy = wheelStep(wheel.y, ev.deltaY, ev.deltaMode);
    wheel = { x: sx.acc, y: sy.acc };
    const p = point(ev);
    if ((sx.notch || sy.notch) && p) sink.wheel(p.x, p.y, sx.notch, sy.notch);
  }

  function keydown(ev: KeyboardEvent): void {
    if (!sink.canControl() || ev.isComposing) return;
    // Ctrl+V / Cmd+V: let the browser fire `paste`, which carries the local clipboard's text.
    if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && ev.key.toLowerCase() === 'v') return;
    const keysym = keysymOf(ev.key, ev.code);
    if (keysym === null) return;
    ev.preventDefault();
    held.set(ev.code || ev.key, keysym);
    sink.key(keysym, true);
  }

  function keyup(ev: KeyboardEvent): void {
    const id = ev.code || ev.key;
    const keysym = held.get(id); // release what was pressed, even if Shift changed the key since
    if (keysym === undefined) return;
    ev.preventDefault();
    held.delete(id);
    sink.key(keysym, false);
  }

  function release(): void {
    for (const keysym of held.values()) sink.key(keysym, false);
    held.clear();
    if (last.buttons) sendPointer(last.x, last.y, 0);
  }

  function onPaste(ev: ClipboardEvent): void {
    if (document.activeElement !== surface || !sink.canControl()) return;
    const text = ev.clipboardData ? ev.clipboardData.getData('text/plain') : '';
    ev.preventDefault();
    if (text && !sink.paste(text)) tooLarge();
  }

  for (const t of ['pointerdown', 'pointermove', 'pointerup'] as const) surface.addEventListener(t, pointer);
  surface.addEventListener('wheel', onWheel, { passive: false });
  surface.addEventListener('contextmenu', (ev) => ev.preventDefault());
  surface.addEventListener('keydown', keydown);
  surface.addEventListener('keyup', keyup);
  surface.addEventListener('blur', release);
  document.addEventListener('paste', onPaste);
  return {
    release,
    stop() {
      release();
      document.removeEventListener('paste', onPaste);
    },
  };
}

export interface Fitter {
  (): void;
  stop(): void;
}

/** Sizes `surface` to fit `stage` keeping its aspect ratio; call it again when the picture size changes. */
export function fitter(stage: HTMLElement, surface: HTMLElement, size: () => [number, number]): Fitter {
  const fit = (() => {
    const [w, hgt] = size();
    const scale = Math.min(stage.clientWidth / w, stage.clientHeight / hgt) || 0;
    surface.style.width = Math.floor(w * scale) + 'px';
    surface.style.height = Math.floor(hgt * scale) + 'px';
  }) as Fitter;
  const ro = new ResizeObserver(fit);
  ro.observe(stage);
  fit.stop = () => ro.disconnect();
  return fit;
}
