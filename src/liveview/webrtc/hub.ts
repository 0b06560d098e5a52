import type { WebSocket } from 'ws';
import type { RTCPeerConnectionConfig } from 'werift';
import type { ViewerHandle, ViewerSession } from '../types.js';
import type { Logger } from '../../util/logger.js';
import { CredentialThrottle } from '../../util/throttle.js';
import { DEFAULT_FPS, FfmpegEncoder, type EncodedPacket } from './encoder.js';
import { codecParameters, peerConfig, resolveHost } from './peer-config.js';
import { CLOSE_SESSION_ENDED, CLOSE_UNAUTHORIZED, ProtocolError, type Codec } from './protocol.js';
import { credentialsMatch, type RtcCredentials } from './credentials.js';
import { WebRtcViewer, type ViewerHost } from './viewer.js';
import { noPlaceMessage, placesFor } from '../viewer-socket.js';
import type { LinkKind } from '../tokens.js';

export interface WebRtcOptions {
  /** For ffmpeg x11grab (DISPLAY / XAUTHORITY). */
  display: { name: string; authFile: string };
  width: number;
  height: number;
  /** The session's rtc_username / rtc_password (username null: not checked; both unset: open). */
  credentials: RtcCredentials;
  /** Address host candidates are gathered on (the daemon's --host). */
  host: string;
  /** --rtc-ports; null: ephemeral ports. */
  portRange: { min: number; max: number } | null;
  /** --stun / --turn; empty by default (no external server on an air-gapped host). */
  iceServers: { urls: string; username?: string; credential?: string }[];
  /** 10 by default (API.md 5). */
  maxViewers?: number;
  /**
   * A hello with wrong credentials: the daemon audits auth_failed. `detail` is what the
   * failure did to the source's throttle (attempts refused unchecked get no row of their own).
   */
  onAuthFailed(sourceIp: string, detail: { failures: number; locked_ms: number; refused_unchecked: number }): void;
  /** Per-source guessing limits (util/throttle.ts); one per hub otherwise. */
  throttle?: CredentialThrottle;
  logger: Logger;
  /** Frames per second of the encoders; 30 by default. */
  fps?: number;
  /** The ffmpeg binary; 'ffmpeg' on PATH by default. */
  ffmpegPath?: string;
  /** Told when an encoder's ffmpeg starts (pid) or exits (null): a pid registry or a test may watch it. */
  onEncoderProcess?(codec: Codec, pid: number | null): void;
}

export const DEFAULT_MAX_VIEWERS = 10;
/** API.md 3.5 close codes are 4000 + the status's last digits: 429 too_many_requests. */
const CLOSE_TOO_MANY_REQUESTS = 4029;

/**
 * The WebRTC transport of one session (API.md 5, issue 5): up to maxViewers viewers, each
 * with its own werift peer connection and track, fed by one ffmpeg encoder per codec that
 * runs only while someone watches that codec.
 *
 * A viewer's signalling socket goes through: hello (credentials checked in constant time,
 * codec chosen, a place taken, then session.join) -> the server's offer (all candidates in
 * it) -> the viewer's answer -> media from the next keyframe. State, ended and handoff
 * messages travel on the same socket; input on the "input" DataChannel.
 */
export class WebRtcHub implements ViewerHost {
  readonly credentials: RtcCredentials;
  readonly maxViewers: number;
  readonly throttle: CredentialThrottle;
  /** Every open socket, whatever its phase. */
  private readonly viewers = new Set<WebRtcViewer>();
  /** Viewers that passed the hello and hold a place. */
  private readonly placed = new Set<WebRtcViewer>();
  /** The kind of link each open socket came with (a view link leaves the last places free). */
  private readonly links = new Map<WebRtcViewer, LinkKind>();
  private readonly encoders = new Map<Codec, FfmpegEncoder>();
  /** Encoders whose last viewer left, still being reaped. */
  private readonly stopping = new Set<Promise<void>>();
  private readonly fps: number;
  private hostIp?: Promise<string>;
  private gatherQueue: Promise<unknown> = Promise.resolve();
  private stopStateListener?: () => void;
  private nextViewerId = 1;
  private closing?: Promise<void>;

  constructor(
    readonly session: ViewerSession,
    private readonly opts: WebRtcOptions,
  ) {
    this.credentials = opts.credentials;
    this.maxViewers = opts.maxViewers ?? DEFAULT_MAX_VIEWERS;
    this.throttle = opts.throttle ?? new CredentialThrottle();
    this.fps = opts.fps ?? DEFAULT_FPS;
  }

  /** Viewers holding a place (past a correct hello), connecting or connected. */
  get viewerCount(): number {
    return this.placed.size;
  }

  /** The pid of the codec's running ffmpeg, if any (tests, diagnostics). */
  encoderPid(codec: Codec): number | null {
    return this.encoders.get(codec)?.pid ?? null;
  }

  /**
   * Runs one viewer's signalling socket. Nothing is joined or started before the viewer's
   * hello passed the credential check; `join` registers the viewer with the session (it
   * throws HandoffError for network_not_allowed).
   */
  addViewer(ws: WebSocket, sourceIp: string, join: () => ViewerHandle, link: LinkKind = 'control'): void {
    if (this.closing || ws.readyState !== ws.OPEN) {
      if (ws.readyState === ws.OPEN) {
        ws.send(JSON.stringify({ type: 'ended', reason: 'session stopped' }));
        ws.close(CLOSE_SESSION_ENDED, 'session stopped');
      }
      return;
    }
    const id = this.nextViewerId++;
    const v = new WebRtcViewer(ws, sourceIp, join, this, this.opts.logger.child({ viewer: id }));
    this.viewers.add(v);
    this.links.set(v, link);
  }

  /** @internal ViewerHost */
  reserve(v: WebRtcViewer): string | null {
    const link = this.links.get(v) ?? 'view';
    if (this.closing || this.placed.size >= placesFor(link, this.maxViewers)) return noPlaceMessage(link, this.maxViewers, 'WebRTC');
    this.placed.add(v);
    if (this.placed.size === 1) {
      this.stopStateListener = this.session.onViewerStateChange(() => {
        for (const p of this.placed) p.sendState();
      });
    }
    return null;
  }

  /** @internal ViewerHost */
  viewerClosed(v: WebRtcViewer): void {
    this.viewers.delete(v);
    this.links.delete(v);
    if (this.placed.delete(v) && this.placed.size === 0) {
      this.stopStateListener?.();
      this.stopStateListener = undefined;
    }
  }

  /**
   * @internal ViewerHost: a hello's credentials, through the per-source throttle (issue 8
   * item 6): a locked-out source is refused before they are compared. Null: accepted.
   */
  checkCredentials(sourceIp: string, username: string | null, password: string | null): ProtocolError | null {
    const open = this.credentials.username === null && this.credentials.password === '';
    if (open) return null;
    const admission = this.throttle.begin(sourceIp);
    if (!admission.ok) return new ProtocolError(CLOSE_TOO_MANY_REQUESTS, 'too_many_requests', admission.message);
    if (credentialsMatch(this.credentials, username, password)) {
      admission.ticket.succeeded();
      return null;
    }
    const r = admission.ticket.failed();
    this.opts.logger.info('webrtc viewer refused: wrong credentials', { sourceIp, failures: r.failures, lockedMs: r.lockedForMs });
    try {
      this.opts.onAuthFailed(sourceIp, { failures: r.failures, locked_ms: r.lockedForMs, refused_unchecked: r.refusedUnchecked });
    } catch (e) {
      this.opts.logger.warn('webrtc onAuthFailed failed', { err: (e as Error).message });
    }
    return new ProtocolError(CLOSE_UNAUTHORIZED, 'unauthorized', 'wrong rtc_username or rtc_password');
  }

  /** @internal ViewerHost */
  async peerConfig(codec: Codec): Promise<RTCPeerConnectionConfig> {
    this.hostIp ??= resolveHost(this.opts.host);
    const host = await this.hostIp;
    return peerConfig(
      { host, portRange: this.opts.portRange, iceServers: this.opts.iceServers },
      codecParameters(codec, this.opts.width, this.opts.height, this.fps),
    );
  }

  /** @internal ViewerHost: one gathering at a time, so two connections never pick the same free port. */
  gathering<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.gatherQueue.then(fn, fn);
    this.gatherQueue = run.catch(() => undefined);
    return run;
  }

  /** @internal ViewerHost: the codec's first subscriber starts its encoder, the last one stops it. */
  subscribe(codec: Codec, listener: (p: EncodedPacket) => void): () => void {
    let enc = this.encoders.get(codec);
    if (!enc) {
      enc = new FfmpegEncoder({
        codec,
        display: this.opts.display,
        width: this.opts.width,
        height: this.opts.height,
        fps: this.fps,
        ffmpegPath: this.opts.ffmpegPath,
        logger: this.opts.logger,
        onProcess: (pid) => this.opts.onEncoderProcess?.(codec, pid),
      });
      this.encoders.set(codec, enc);
    }
    const encoder = enc;
    const unsubscribe = encoder.subscribe(listener);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      unsubscribe();
      if (encoder.listenerCount === 0 && this.encoders.get(codec) === encoder) {
        this.encoders.delete(codec);
        const p = encoder.close();
        this.stopping.add(p);
        void p.finally(() => this.stopping.delete(p));
      }
    };
  }

  /** @internal ViewerHost */
  currentGop(codec: Codec): readonly EncodedPacket[] {
    return this.encoders.get(codec)?.currentGop() ?? [];
  }

  /** @internal ViewerHost */
  requestKeyframe(codec: Codec): void {
    this.encoders.get(codec)?.requestKeyframe();
  }

  /**
   * Closes every viewer (an `ended` message and close code 4000 with `reason` by default),
   * then reaps the encoders. Idempotent.
   */
  close(code: number = CLOSE_SESSION_ENDED, reason = 'session stopped'): Promise<void> {
    this.closing ??= (async () => {
      // Viewers of one session are peers: they close together.
      await Promise.all([...this.viewers].map((v) => v.end(code, reason)));
      const encoders = [...this.encoders.values()];
      this.encoders.clear();
      await Promise.all([...encoders.map((e) => e.close()), ...this.stopping]);
      this.stopStateListener?.();
      this.stopStateListener = undefined;
    })();
    return this.closing;
  }
}
