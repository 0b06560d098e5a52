// What the status line says about the picture: frames per second, and the time from an input
// to the next frame drawn (the viewer's side of /metrics' input-to-frame probe).
import type { Status } from './types.js';

export interface FrameClock {
  /** An input left for the host: the next frame drawn ends the latency probe. */
  input(): void;
  /** A frame was drawn. */
  frame(): void;
  stop(): void;
}

/** An input with no frame after it stops being probed after this. */
const PROBE_TIMEOUT_MS = 5000;

export function frameClock(update: (patch: Partial<Status>) => void, current: () => Status): FrameClock {
  let frames = 0;
  let probe: number | null = null;
  const timer = window.setInterval(() => {
    if (current().fps !== frames) update({ fps: frames });
    frames = 0;
  }, 1000);
  return {
    input() {
      const now = performance.now();
      if (probe === null || now - probe > PROBE_TIMEOUT_MS) probe = now;
    },
    frame() {
      frames++;
      if (probe === null) return;
      const ms = Math.round(performance.now() - probe);
      probe = null;
      if (ms <= PROBE_TIMEOUT_MS) update({ latencyMs: ms });
    },
    stop: () => clearInterval(timer),
  };
}
