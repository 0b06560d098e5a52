/**
 * Live-view quality per transport and session (issue 12 part 4): what each viewer was sent,
 * how long encoding took, what a slow viewer missed, and how long an input took to show.
 * Module-wide like processRestarts: the transports record into it without a handle on the
 * daemon's services, and /metrics renders it. Labels are transport (3 values) and session (at
 * most MAX_SERIES sets, series of sessions that are gone are dropped at scrape time).
 */
import { Counter, Histogram, type Labels } from './prometheus.js';

export type LiveTransport = 'screencast' | 'webrtc' | 'vnc';

/** Three transports for each of many sessions; past it, label sets fold into "other". */
const MAX_SERIES = 192;
/** Encoding a frame: a small tile is well under a millisecond, a 720p JPEG some milliseconds. */
const ENCODE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.5];
/** Input to the frame that shows it: a frame interval to a slow link's seconds. */
const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5];
/** An input whose effect never shows (a click on nothing) stops being probed after this. */
const PROBE_TIMEOUT_MS = 5000;

export const liveViewFrames = new Counter('handoff_liveview_frames_total', 'Frames (updates) delivered to viewers, by transport and session.', [], MAX_SERIES);
export const liveViewBytes = new Counter('handoff_liveview_bytes_total', 'Picture bytes sent to viewers, by transport and session.', [], MAX_SERIES);
export const liveViewDropped = new Counter(
  'handoff_liveview_dropped_frames_total',
  'Changes a viewer did not get as a frame of their own (merged into a later one) because it was still busy with the previous frame or its socket was full, by transport and session.',
  [],
  MAX_SERIES,
);
export const liveViewEncode = new Histogram(
  'handoff_liveview_encode_seconds',
  'Time to encode one frame (screencast: one JPEG, shared by the viewers that need it; vnc: one update for one client). WebRTC frames are encoded by ffmpeg and not timed.',
  ENCODE_BUCKETS,
  MAX_SERIES,
);
export const liveViewInputLatency = new Histogram(
  'handoff_liveview_input_to_frame_seconds',
  "Time from a viewer's input event to the first frame sent to it whose damage came after the input, by transport and session.",
  LATENCY_BUCKETS,
  MAX_SERIES,
);

export const LIVE_VIEW_FAMILIES = [liveViewFrames, liveViewBytes, liveViewDropped, liveViewEncode, liveViewInputLatency];

/** Drops the series of sessions not in `live` (call before rendering). */
export function pruneLiveViewSessions(live: Set<string>): void {
  const gone = (l: Labels) => l.session !== undefined && l.session !== 'other' && !live.has(l.session);
  for (const f of LIVE_VIEW_FAMILIES) f.remove(gone);
}

/**
 * One viewer's recorder. The latency probe: input() starts it (if none is running) at that
 * instant; damage() marks the first framebuffer change seen after it; the first frame sent
 * whose pixels were taken after that change ends it.
 */
export class ViewerMeter {
  private readonly labels: Labels;
  private probeStart: number | null = null;
  private damageAt: number | null = null;

  constructor(transport: LiveTransport, sessionId: string) {
    this.labels = { transport, session: sessionId };
  }

  /** An input event from this viewer reached the session. */
  input(now = performance.now()): void {
    if (this.probeStart !== null && now - this.probeStart < PROBE_TIMEOUT_MS) return;
    this.probeStart = now;
    this.damageAt = null;
  }

  /** Whether a probe waits for damage (a transport may watch the framebuffer only then). */
  get waitingForDamage(): boolean {
    return this.probeStart !== null && this.damageAt === null;
  }

  /** The framebuffer changed (the transport took dirty rects or saw onDirty). */
  damage(now = performance.now()): void {
    if (this.probeStart !== null && this.damageAt === null) this.damageAt = now;
  }

  /**
   * A frame left for this viewer. `takenAt`: when its pixels were read (performance.now());
   * a frame taken before the damage that followed the input does not show the input yet.
   */
  frame(bytes: number, takenAt: number, now = performance.now()): void {
    liveViewFrames.inc(this.labels);
    liveViewBytes.inc(this.labels, bytes);
    if (this.probeStart === null) return;
    if (now - this.probeStart > PROBE_TIMEOUT_MS) {
      this.probeStart = null;
      return;
    }
    if (this.damageAt !== null && takenAt >= this.damageAt) {
      liveViewInputLatency.observe((now - this.probeStart) / 1000, this.labels);
      this.probeStart = null;
    }
  }

  dropped(n = 1): void {
    liveViewDropped.inc(this.labels, n);
  }

  encoded(seconds: number): void {
    liveViewEncode.observe(seconds, this.labels);
  }
}
