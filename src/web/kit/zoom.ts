// Pinch-zoom and pan of the picture (a CSS transform on the surface). Input stays right because
// the transports map points through getBoundingClientRect, which includes the transform.

const MAX_SCALE = 5;

export interface Zoom {
  readonly scale: number;
  /** Scales by `factor` around the client point (cx, cy). */
  pinch(cx: number, cy: number, factor: number): void;
  /** Moves the picture by (dx, dy) client pixels. */
  pan(dx: number, dy: number): void;
  reset(): void;
  stop(): void;
}

/** `changed(scale)` after every change; a resized stage (rotation) resets the zoom. */
export function zoomer(stage: HTMLElement, surface: HTMLElement, changed: (scale: number) => void): Zoom {
  let s = 1;
  let tx = 0;
  let ty = 0;

  function apply(): void {
    // The picture always covers its unzoomed box: no panning it out of sight.
    const w = surface.offsetWidth;
    const hgt = surface.offsetHeight;
    tx = Math.min(0, Math.max(w - w * s, tx));
    ty = Math.min(0, Math.max(hgt - hgt * s, ty));
    if (s === 1) tx = ty = 0;
    surface.style.transformOrigin = '0 0';
    surface.style.transform = s === 1 ? '' : `translate(${tx}px, ${ty}px) scale(${s})`;
    changed(s);
  }

  const zoom: Zoom = {
    get scale() { return s; },
    pinch(cx, cy, factor) {
      if (!Number.isFinite(factor) || factor <= 0) return;
      const r = surface.getBoundingClientRect();
      const left = r.left - tx; // the untransformed box (transform origin is its top left)
      const top = r.top - ty;
      const px = (cx - left - tx) / s; // the picture point under the fingers stays under them
      const py = (cy - top - ty) / s;
      const next = Math.min(MAX_SCALE, Math.max(1, s * factor));
      tx = cx - left - next * px;
      ty = cy - top - next * py;
      s = next;
      apply();
    },
    pan(dx, dy) {
      if (s === 1) return;
      tx += dx;
      ty += dy;
      apply();
    },
    reset() {
      s = 1;
      apply();
    },
    stop() {
      ro.disconnect();
    },
  };
  let size = '';
  const ro = new ResizeObserver(() => {
    const now = stage.clientWidth + 'x' + stage.clientHeight;
    if (size && now !== size && s !== 1) zoom.reset();
    size = now;
  });
  ro.observe(stage);
  return zoom;
}
