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
  ProtocolError,
  parseViewerMessage,
  pictureMessage,
  type ViewerMessage,
} from './protocol.js';
import { ViewerSocket } from '../viewer-socket.js';
import { ViewerInput } from '../viewer-input.js';
import { ViewerMeter } from '../../metrics/liveview.js';
import { ViewerPageActions } from '../page-actions.js';

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
/** How long a closing socket may take to finish its close handshake before it is cut. */


/** What a viewer needs from the Screencast that owns it. */
export interface ViewerHost {
  readonly session: ViewerSession;
  /** Something a frame decision depends on changed (an ack, a quality, a new viewer). */
  pump(): void;
  /** The socket is gone; called exactly once. */
  viewerClosed(v: ScreencastViewer): void;
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
  quality = DEFAULT_QUALITY;
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

  /** One frame: tiles of kind 1, the last of kind 2, all under the next sequence number. */
  sendFrame(tiles: EncodedTile[], takenAt = performance.now()): void {
    if (this.socket.isClosed || tiles.length === 0) return;
    const seq = ++this.seq;
    this.meter.frame(tiles.reduce((n, t) => n + t.jpeg.length, 0), takenAt);
    tiles.forEach((t, i) => {
      const kind = i === tiles.length - 1 ? KIND_LAST_TILE : KIND_TILE;
      this.ws.send(pictureMessage(kind, seq, t.rect.x, t.rect.y, t.rect.width, t.rect.height, t.jpeg), { binary: true }, () => {});
    });
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
          this.acked = m.seq;
          this.host.pump();
        }
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
    if (this.socket.isClosed || this.wantedQuality === this.quality) return;
    this.quality = this.wantedQuality;
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
