import type { WebSocket } from 'ws';
import type { Rect } from '../../display/types.js';
import type { ViewerHandle, ViewerSession } from '../types.js';
import type { Logger } from '../../util/logger.js';
import { TileRegion } from './region.js';
import {
  CLOSE_POLICY,
  CLOSE_SESSION_ENDED,
  DEFAULT_QUALITY,
  KIND_LAST_TILE,
  KIND_TILE,
  MAX_UNACKED,
  atlasMessage,
  ProtocolError,
  parseViewerMessage,
  pictureMessage,
  type ViewerMessage,
} from './protocol.js';
import { ViewerSocket } from '../viewer-socket.js';
import { ViewerInput } from '../viewer-input.js';
import { ViewerMeter } from '../../metrics/liveview.js';
import { ViewerPageActions } from '../page-actions.js';
import type { AtlasEntry } from './atlas.js';

/**
 * Beyond this many bytes still queued in the socket no new frame is sent, whatever the acks
 * say: a viewer that acks without reading (acks are guessable) must not make us buffer.
 */
export const MAX_BUFFERED_BYTES = 1 << 20;
/**
 * A quality change costs a full-frame encode inside the tick every viewer waits on, so one
 * viewer (view-only ones included) changes its quality at most once per this many ms; the
 * latest request wins. Quality is per viewer: nobody else's frames change with it.
 */
export const QUALITY_CHANGE_INTERVAL_MS = 1000;

/**
 * Every picture a viewer can get (review M2): a requested quality snaps to the nearest
 * full-size rung (its ceiling), and adaptive quality (slow links) steps a viewer down these
 * rungs when its frames take long to be acked, and back up when they come back fast. Only
 * viewers that take atlas frames adapt (tiles cannot be scaled, and an older viewer keeps its
 * ceiling). So viewers asking 8 different qualities still cost at most these few encodes.
 */
export const QUALITY_LADDER: ReadonlyArray<{ quality: number; scale: 1 | 0.5 }> = [
  { quality: DEFAULT_QUALITY, scale: 1 },
  { quality: 55, scale: 1 },
  { quality: 40, scale: 1 },
  { quality: 25, scale: 1 },
  { quality: 50, scale: 0.5 },
  { quality: 30, scale: 0.5 },
];

/** The full-size rung nearest to a requested quality (a tie goes to the better picture). */
export function rungForQuality(quality: number): number {
  let best = 0;
  QUALITY_LADDER.forEach((r, i) => {
    if (r.scale === 1 && Math.abs(r.quality - quality) < Math.abs(QUALITY_LADDER[best]!.quality - quality)) best = i;
  });
  return best;
}
/**
 * Send-to-ack time (smoothed) above which frames queue on the way: step down. With two frames
 * in flight this bounds what a slow link holds to about this much of picture.
 */
export const SLOW_ACK_MS = 250;
/** Below this the link has room: after STEP_UP_MS of it, step up (and refresh the picture). */
export const FAST_ACK_MS = 120;
const STEP_DOWN_MS = 400;
const STEP_UP_MS = 2000;
/** A step up undone soon after doubles the wait before the next try, up to this. */
const MAX_STEP_UP_MS = 16_000;

/** What one ack told (bench and tests watch the adaptation through it). */
export interface AckInfo {
  /** From ws.send to the ack. */
  delayMs: number;
  /** From reading the pixels to the ack: what the human saw was this old. */
  ageMs: number;
  bytes: number;
  quality: number;
  scale: number;
}

/** What a viewer needs from the Screencast that owns it. */
export interface ViewerHost {
  readonly session: ViewerSession;
  /** Something a frame decision depends on changed (an ack, a quality, a new viewer). */
  pump(): void;
  /** The socket is gone; called exactly once. */
  viewerClosed(v: ScreencastViewer): void;
  /** A frame was acked. */
  acked?(v: ScreencastViewer, info: AckInfo): void;
}

export type SendReadiness = 'ready' | 'window' | 'buffer' | 'closed';

export interface EncodedTile {
  rect: Rect;
  jpeg: Buffer;
}

/**
 * One screencast viewer: its socket, the part of the screen it has not seen, its ack window
 * and its input. Every protocol violation goes through fail(); only this socket closes.
 */
export class ScreencastViewer {
  /** Tiles changed since this viewer's last frame (everything, for a new viewer). */
  readonly pending: TileRegion;
  /** The quality this viewer asked for (or the default), snapped to a full-size rung. */
  quality = DEFAULT_QUALITY;
  /** That quality's rung: the best picture this viewer gets. */
  private ceiling = 0;
  /** Takes kind-3 atlas frames (it said so); otherwise tiles of kind 1 and 2. */
  atlas = false;
  /** The adaptive rung (QUALITY_LADDER); 0 on a link that keeps up; the ceiling still applies. */
  private rung = 0;
  private ackDelay = 0;
  private lastStep = -Infinity;
  private fastSince = -Infinity;
  private stepUpWait = STEP_UP_MS;
  private lastStepUp = -Infinity;
  /** Frames sent and not yet acked (at most MAX_UNACKED). */
  private readonly inFlight = new Map<number, { sentAt: number; takenAt: number; bytes: number; quality: number; scale: number }>();
  /** Sequence number of the last frame sent; frames are numbered 1, 2, 3... per viewer. */
  private seq = 0;
  private acked = 0;
  private readonly input: ViewerInput;
  private readonly socket: ViewerSocket;
  private readonly pageActions: ViewerPageActions;
  private readonly stopCopies?: () => void;
  private wantedQuality = DEFAULT_QUALITY;
  private lastQualityChange = -Infinity;
  private qualityTimer?: NodeJS.Timeout;
  /** /metrics: frames, bytes, merged changes and input-to-frame latency of this viewer. */
  readonly meter: ViewerMeter;

  constructor(
    readonly ws: WebSocket,
    private readonly handle: ViewerHandle,
    private readonly host: ViewerHost,
    private readonly log: Logger,
    width: number,
    height: number,
  ) {
    this.input = new ViewerInput(host.session.input, host.session.framebuffer);
    this.meter = new ViewerMeter('screencast', host.session.sessionId);
    this.pending = new TileRegion(width, height);
    this.pending.addAll();
    this.socket = new ViewerSocket(ws, 'screencast', log, { message: (data, isBinary) => this.onMessage(data, isBinary), closed: () => this.onClosed() });
    this.pageActions = new ViewerPageActions(() => host.session.pages, { transport: 'screencast', sourceIp: handle.sourceIp ?? '' }, (m) => this.socket.sendJson(m));
    // Text copied in the session reaches the human in control (their viewer offers a copy button).
    this.stopCopies = host.session.input.onCopy?.((text) => this.handle.canControl && !this.handle.viewLink && this.socket.sendJson({ type: 'clipboard', text }));
    handle.onControlChange((canControl) => {
      if (!canControl) this.input.reset();
      this.sendState();
    });
    handle.onEnd((reason) => void this.end(CLOSE_SESSION_ENDED, reason));
  }

  get isClosed(): boolean {
    return this.socket.isClosed;
  }
  get unacked(): number {
    return this.seq - this.acked;
  }

  /** The rung (QUALITY_LADDER) this viewer's frames are encoded at now. */
  get encodeRung(): number {
    return this.atlas ? Math.max(this.rung, this.ceiling) : this.ceiling;
  }
  /** The JPEG quality frames for this viewer are encoded at now. */
  get encodeQuality(): number {
    return QUALITY_LADDER[this.encodeRung]!.quality;
  }
  /** 1, or 0.5 on a link too slow for the full picture. */
  get scale(): 1 | 0.5 {
    return QUALITY_LADDER[this.encodeRung]!.scale;
  }
  /**
   * Whose encode setting is planned first (higher first): a viewer of a control link, then one
   * with input now. A view link (which may get input during a handoff) never comes first.
   */
  get priority(): number {
    return (this.handle.viewLink ? 0 : 2) + (this.handle.canControl ? 1 : 0);
  }

  /** Whether a frame may go out now: open, ack window not full, socket not backed up. */
  readiness(): SendReadiness {
    if (this.socket.isClosed || this.ws.readyState !== this.ws.OPEN) return 'closed';
    if (this.seq - this.acked >= MAX_UNACKED) return 'window';
    if (this.ws.bufferedAmount > MAX_BUFFERED_BYTES) return 'buffer';
    return 'ready';
  }

  hello(width: number, height: number): void {
    this.sendJson({ type: 'hello', sessionId: this.host.session.sessionId, width, height, transport: 'screencast', quality: this.quality });
    this.sendState();
  }

  /** Sends `state` if anything in it differs from what this viewer was last told. */
  sendState(): void {
    this.socket.sendState(this.host.session, this.handle);
  }

  /**
   * One frame: tiles of kind 1, the last of kind 2, all under the next sequence number.
   * `quality` is what they were encoded at (the viewer's own, unless the per-session cap on
   * encodes put it in a neighbouring group).
   */
  sendFrame(tiles: EncodedTile[], takenAt = performance.now(), quality = this.encodeQuality): void {
    if (this.socket.isClosed || tiles.length === 0) return;
    const seq = ++this.seq;
    const bytes = tiles.reduce((n, t) => n + t.jpeg.length, 0);
    this.meter.frame(bytes, takenAt);
    this.inFlight.set(seq, { sentAt: performance.now(), takenAt, bytes, quality, scale: 1 });
    tiles.forEach((t, i) => {
      const kind = i === tiles.length - 1 ? KIND_LAST_TILE : KIND_TILE;
      this.ws.send(pictureMessage(kind, seq, t.rect.x, t.rect.y, t.rect.width, t.rect.height, t.jpeg), { binary: true }, () => {});
    });
  }

  /** One frame as one kind-3 message: the rects and the atlas JPEG that holds them. */
  sendAtlas(entries: readonly AtlasEntry[], jpeg: Buffer, takenAt = performance.now(), quality = this.encodeQuality, scale: number = this.scale): void {
    if (this.socket.isClosed) return;
    const seq = ++this.seq;
    this.meter.frame(jpeg.length, takenAt);
    this.inFlight.set(seq, { sentAt: performance.now(), takenAt, bytes: jpeg.length, quality, scale });
    this.ws.send(atlasMessage(seq, entries, jpeg), { binary: true }, () => {});
  }

  /**
   * Steps the rung from the ack times. The window (2 frames) already keeps a slow link from
   * queueing more than two frames; smaller frames make those two frames (so the picture's age)
   * short again and let more of them through.
   */
  private adapt(delayMs: number, now: number): void {
    // Only viewers that speak the newer protocol (atlas frames, `adapt` messages) adapt: a tile
    // viewer keeps exactly the quality it asked for.
    if (!this.atlas) return;
    this.ackDelay = this.ackDelay === 0 ? delayMs : this.ackDelay * 0.7 + delayMs * 0.3;
    const lowest = QUALITY_LADDER.length - 1;
    if (this.ackDelay > SLOW_ACK_MS) {
      this.fastSince = -Infinity;
      if (this.encodeRung < lowest && now - this.lastStep >= STEP_DOWN_MS) {
        // Undoing a recent step up: the link was not ready, probe less often.
        if (now - this.lastStepUp < STEP_UP_MS + STEP_DOWN_MS * 2) this.stepUpWait = Math.min(MAX_STEP_UP_MS, this.stepUpWait * 2);
        this.setRung(this.encodeRung + 1, now);
      }
      return;
    }
    if (this.ackDelay >= FAST_ACK_MS) {
      this.fastSince = -Infinity;
      return;
    }
    if (this.fastSince === -Infinity) this.fastSince = now;
    if (this.rung > this.ceiling && now - this.fastSince >= this.stepUpWait && now - this.lastStep >= this.stepUpWait) {
      this.lastStepUp = now;
      this.setRung(this.rung - 1, now);
      // The better picture everywhere, not just where it changes from now on.
      this.pending.addAll();
    }
  }

  private setRung(rung: number, now: number): void {
    this.rung = rung;
    this.lastStep = now;
    this.fastSince = -Infinity;
    // A new rung is judged on its own frames.
    this.ackDelay = 0;
    this.sendJson({ type: 'adapt', quality: this.encodeQuality, scale: this.scale });
  }

  /** Tells the viewer why, then closes with `code` (4000: the session ended). Resolves once closed. */
  end(code: number, reason: string): Promise<void> {
    this.socket.end(code, reason);
    return this.socket.closed;
  }

  private onMessage(buf: Buffer, isBinary: boolean): void {
    let msg: ViewerMessage;
    try {
      msg = parseViewerMessage(buf, isBinary);
      this.apply(msg);
    } catch (e) {
      if (e instanceof ProtocolError) this.fail(e);
      else this.log.warn('screencast message failed', { err: (e as Error).message });
    }
  }

  private apply(m: ViewerMessage): void {
    switch (m.type) {
      case 'ack':
        // Cumulative: acking N acks every frame up to N. An ack for a frame never sent is a
        // broken viewer that would otherwise open its own window.
        if (m.seq > this.seq) throw new ProtocolError(CLOSE_POLICY, 'bad_request', `ack ${m.seq} for a frame not sent (last ${this.seq})`);
        if (m.seq > this.acked) {
          const now = performance.now();
          for (let seq = this.acked + 1; seq <= m.seq; seq++) {
            const f = this.inFlight.get(seq);
            if (!f) continue;
            this.inFlight.delete(seq);
            const info = { delayMs: now - f.sentAt, ageMs: now - f.takenAt, bytes: f.bytes, quality: f.quality, scale: f.scale };
            this.adapt(info.delayMs, now);
            this.host.acked?.(this, info);
          }
          this.acked = m.seq;
          this.host.pump();
        }
        return;
      case 'format':
        if (m.atlas === this.atlas) return;
        this.atlas = m.atlas;
        // A viewer back on tiles no longer adapts: the quality it asked for, in full.
        if (!this.atlas && this.rung !== 0) {
          this.setRung(0, performance.now());
          this.pending.addAll();
        }
        this.host.pump();
        return;
      case 'quality':
        this.wantedQuality = m.value;
        if (this.qualityTimer) return;
        {
          const wait = this.lastQualityChange + QUALITY_CHANGE_INTERVAL_MS - performance.now();
          if (wait <= 0) return this.applyQuality();
          this.qualityTimer = setTimeout(() => {
            this.qualityTimer = undefined;
            this.applyQuality();
          }, wait);
        }
        return;
    }
    // Everything else is input: only a viewer in control may act (API.md 3.4), silently.
    if (!this.handle.canControl) return;
    if (m.type === 'pointer' || m.type === 'wheel' || m.type === 'key' || m.type === 'paste') this.meter.input();
    switch (m.type) {
      case 'pointer':
        return this.input.pointer(m.x, m.y, m.buttons);
      case 'wheel':
        return this.input.wheel(m.x, m.y, m.dx, m.dy);
      case 'key':
        return this.input.key(m.keysym, m.down);
      case 'paste':
        return this.input.paste(m.text);
      case 'tab':
      case 'file_start':
      case 'file_chunk':
      case 'file_end':
      case 'file_cancel':
        if (this.handle.viewLink) return this.socket.sendJson({ type: 'error', code: 'forbidden', message: 'a view link cannot act on tabs or files' });
        return this.pageActions.handle(m);
      case 'handoff':
        if (!this.handle.completeHandoff(m.outcome)) this.socket.sendJson({ type: 'error', code: 'forbidden', message: 'a view link cannot end the handoff' });
        return;
    }
  }

  private applyQuality(): void {
    const ceiling = rungForQuality(this.wantedQuality);
    if (this.socket.isClosed || ceiling === this.ceiling) return;
    this.ceiling = ceiling;
    this.quality = QUALITY_LADDER[ceiling]!.quality;
    this.lastQualityChange = performance.now();
    // The whole picture at the new quality, not just what changes from now on.
    this.pending.addAll();
    this.host.pump();
  }

  /** The one way out for a protocol error: say what, close this socket only. */
  private fail(e: ProtocolError): void {
    this.log.info('screencast viewer protocol error', { code: e.closeCode, err: e.message });
    this.socket.fail(e);
  }

  /** Runs once, whichever way the viewer goes: stop counting it, give the handle back. */
  private onClosed(): void {
    clearTimeout(this.qualityTimer);
    this.stopCopies?.();
    this.handle.leave();
    this.host.viewerClosed(this);
  }

  private sendJson(m: object): void {
    this.socket.sendJson(m);
  }
}
