// Touch gestures on the picture: tap = click, long-press or two-finger tap = right click,
// one-finger swipe = wheel scroll, two fingers = pinch-zoom and pan (the picture, not the page).
import type { InputSink } from './input.js';
import type { Zoom } from './zoom.js';

const TAP_SLOP_PX = 10;
const LONG_PRESS_MS = 500;
const TWO_FINGER_TAP_MS = 400;
/** Finger travel for one wheel notch. */
const SWIPE_NOTCH_PX = 40;
const LEFT = 1;
const RIGHT = 4; // RFB button masks

interface Finger { x0: number; y0: number; x: number; y: number }

/** `tapped` runs inside the tap's own event (a user gesture: the phone keyboard may open there). */
export function touchInput(surface: HTMLElement, sink: InputSink, zoom: Zoom, tapped: () => void = () => {}): { stop(): void } {
  const fingers = new Map<number, Finger>();
  let mode: 'none' | 'press' | 'scroll' | 'held' | 'two' = 'none';
  let pressTimer = 0;
  let scroll = { x: 0, y: 0 }; // finger travel not yet sent as notches
  let two = { started: 0, moved: false, dist: 0, mx: 0, my: 0 };

  function click(cx: number, cy: number, button: number): void {
    const p = sink.canControl() ? sink.point(cx, cy) : null;
    if (!p) return;
    sink.pointer(p.x, p.y, 0);
    sink.pointer(p.x, p.y, button);
    sink.pointer(p.x, p.y, 0);
  }

  function pair(): { dist: number; mx: number; my: number } {
    const [a, b] = [...fingers.values()] as [Finger, Finger];
    return { dist: Math.hypot(a.x - b.x, a.y - b.y), mx: (a.x + b.x) / 2, my: (a.y + b.y) / 2 };
  }

  function down(ev: PointerEvent): void {
    if (ev.pointerType !== 'touch') return;
    ev.preventDefault();
    surface.setPointerCapture?.(ev.pointerId);
    fingers.set(ev.pointerId, { x0: ev.clientX, y0: ev.clientY, x: ev.clientX, y: ev.clientY });
    clearTimeout(pressTimer);
    if (fingers.size === 1 && mode === 'none') {
      mode = 'press';
      scroll = { x: 0, y: 0 };
      pressTimer = window.setTimeout(() => {
        if (mode !== 'press') return;
        mode = 'held';
        const f = [...fingers.values()][0]!;
        click(f.x0, f.y0, RIGHT);
      }, LONG_PRESS_MS);
    } else if (fingers.size === 2) {
      mode = 'two';
      two = { started: Date.now(), moved: false, ...pair() };
    }
  }

  function move(ev: PointerEvent): void {
    const f = fingers.get(ev.pointerId);
    if (!f) return;
    ev.preventDefault();
    const dx = ev.clientX - f.x;
    const dy = ev.clientY - f.y;
    f.x = ev.clientX;
    f.y = ev.clientY;
    if (mode === 'press' && Math.hypot(f.x - f.x0, f.y - f.y0) > TAP_SLOP_PX) {
      clearTimeout(pressTimer);
      mode = 'scroll';
    }
    if (mode === 'scroll') {
      scroll = { x: scroll.x + dx, y: scroll.y + dy };
      // Content follows the finger: a finger moving up scrolls down (+dy).
      const nx = -Math.trunc(scroll.x / SWIPE_NOTCH_PX);
      const ny = -Math.trunc(scroll.y / SWIPE_NOTCH_PX);
      if (!nx && !ny) return;
      scroll = { x: scroll.x + nx * SWIPE_NOTCH_PX, y: scroll.y + ny * SWIPE_NOTCH_PX };
      const p = sink.canControl() ? sink.point(f.x0, f.y0) : null;
      if (p) sink.wheel(p.x, p.y, nx, ny);
    } else if (mode === 'two' && fingers.size === 2) {
      const now = pair();
      if (Math.abs(now.dist - two.dist) > 2 || Math.hypot(now.mx - two.mx, now.my - two.my) > 2) {
        if (!two.moved && Date.now() - two.started < 60 && Math.abs(now.dist - two.dist) < TAP_SLOP_PX) return;
        two.moved = true;
        if (two.dist > 0) zoom.pinch(now.mx, now.my, now.dist / two.dist);
        zoom.pan(now.mx - two.mx, now.my - two.my);
        two = { ...two, ...now };
      }
    }
  }

  function up(ev: PointerEvent): void {
    const f = fingers.get(ev.pointerId);
    if (!f) return;
    ev.preventDefault();
    fingers.delete(ev.pointerId);
    clearTimeout(pressTimer);
    if (ev.type === 'pointerup') {
      if (mode === 'press') {
        click(f.x0, f.y0, LEFT);
        if (sink.canControl()) tapped();
      }
      else if (mode === 'two' && fingers.size === 1 && !two.moved && Date.now() - two.started < TWO_FINGER_TAP_MS) click(two.mx, two.my, RIGHT);
    }
    if (fingers.size === 0) mode = 'none';
  }

  surface.addEventListener('pointerdown', down);
  surface.addEventListener('pointermove', move);
  surface.addEventListener('pointerup', up);
  surface.addEventListener('pointercancel', up);
  return {
    stop() {
      clearTimeout(pressTimer);
      surface.removeEventListener('pointerdown', down);
      surface.removeEventListener('pointermove', move);
      surface.removeEventListener('pointerup', up);
      surface.removeEventListener('pointercancel', up);
    },
  };
}
