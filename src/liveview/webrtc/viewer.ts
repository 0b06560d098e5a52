import type { WebSocket } from 'ws';
import {
  MediaStreamTrack,
  RTCPeerConnection,
  RtcpPayloadSpecificFeedback,
  type RTCDataChannel,
  type RTCPeerConnectionConfig,
} from 'werift';
import type { ViewerHandle, ViewerSession } from '../types.js';
import type { Logger } from '../../util/logger.js';
import { HandoffError } from '../../util/errors.js';
import type { RtcCredentials } from './credentials.js';
import type { EncodedPacket } from './encoder.js';
import { RtpRewriter } from './rtp.js';
import { playoutDelayId } from './peer-config.js';
import {
  CLOSE_INTERNAL,
  CLOSE_NETWORK_NOT_ALLOWED,
  CLOSE_POLICY,
  CLOSE_SESSION_ENDED,
  CLOSE_TOO_MANY_VIEWERS,
  CLOSE_UNAUTHORIZED,
  CODECS,
  PasteAssembler,
  ProtocolError,
  chooseCodec,
  parseInput,
  parseSignal,
  type Codec,
  type InputMessage,
  type SignalMessage,
} from './protocol.js';
import { ViewerSocket } from '../viewer-socket.js';
import { ViewerInput } from '../viewer-input.js';
import { ViewerPageActions } from '../page-actions.js';
import { ViewerMeter } from '../../metrics/liveview.js';
import type { FrameSubscriber } from '../../display/types.js';

/** A viewer that has not said hello by then is dropped. */
export const HELLO_TIMEOUT_MS = 10_000;
/** From the offer to connected media (ICE + DTLS); past this the viewer falls back to screencast. */
export const CONNECT_TIMEOUT_MS = 30_000;
/** Gathering host candidates takes milliseconds; STUN/TURN servers may take seconds. */
const GATHER_TIMEOUT_MS = 10_000;
/** Trickled candidates accepted per viewer; a browser sends a handful. */
const MAX_CANDIDATES = 64;
/** A viewer's keyframe requests (PLI/FIR) are passed on at most once per this many ms. */
export const KEYFRAME_REQUEST_INTERVAL_MS = 1000;
/** How long a closing socket may take to finish its close handshake before it is cut. */

/** RTCP payload-specific feedback FMT of a Full Intra Request (RFC 5104 4.3.1); werift reports only PLI itself. */
const FMT_FIR = 4;

/** What a viewer needs from the WebRtcHub that owns it. */
export interface ViewerHost {
  readonly session: ViewerSession;
  readonly credentials: RtcCredentials;
  readonly maxViewers: number;
  /** Takes one of the maxViewers places: null, else why there is none (too_many_viewers). */
  reserve(v: WebRtcViewer): string | null;
  /** werift settings for a connection sending `codec`. */
  peerConfig(codec: Codec): Promise<RTCPeerConnectionConfig>;
  /** Runs candidate gathering one connection at a time (werift picks a port, closes it, binds it later). */
  gathering<T>(fn: () => Promise<T>): Promise<T>;
  /** Starts receiving `codec`'s packets (the first subscriber starts its encoder). */
  subscribe(codec: Codec, listener: (p: EncodedPacket) => void): () => void;
  requestKeyframe(codec: Codec): void;
  /** The codec's packets from its last keyframe on (empty when none is held). */
  currentGop(codec: Codec): readonly EncodedPacket[];
  /** The hello's credentials, throttled per source; null when accepted, else the refusal. */
  checkCredentials(sourceIp: string, username: string | null, password: string | null): ProtocolError | null;
  /** The viewer is gone; called exactly once, after its handle was given back. */
  viewerClosed(v: WebRtcViewer): void;
}

type Phase = 'hello' | 'negotiating' | 'live' | 'closed';

/**
 * One WebRTC viewer: its signalling socket, its peer connection with its own track (werift's
 * writeRtp shares packet objects between a track's subscribers, so tracks are never shared),
 * the "input" DataChannel, and its place among the session's viewers. Every protocol
 * violation, refusal or failure goes through fail(); only this viewer closes.
 */
export class WebRtcViewer {
  private phase: Phase = 'hello';
  private handle?: ViewerHandle;
  private pc?: RTCPeerConnection;
  private track?: MediaStreamTrack;
  private codec?: Codec;
  private unsubscribe?: () => void;
  private readonly rewriter = new RtpRewriter();
  /** Media flows only once DTLS is up, and then from a keyframe on. */
  private mediaReady = false;
  private awaitingKeyframe = true;
  private generation = -1;
  private lastKeyframeRequest = -Infinity;
  private answered = false;
  private candidates = 0;
  /** The playout-delay extension id the answer accepted (null: the viewer does not do it). */
  private playoutDelayId: number | null = null;
  private readonly input: ViewerInput;
  private readonly paste = new PasteAssembler();
  /** Signalling messages are handled one at a time, in order (some are async). */
  private queue: Promise<void> = Promise.resolve();
  private helloTimer?: NodeJS.Timeout;
  private connectTimer?: NodeJS.Timeout;
  private readonly socket: ViewerSocket;
  private readonly pageActions: ViewerPageActions;
  private stopCopies?: () => void;
  private pcClosed: Promise<void> = Promise.resolve();
  private readonly done: Promise<void>;
  /** /metrics. ffmpeg grabs the screen itself, so the latency probe watches the framebuffer for damage, only for a while after input. */
  private readonly meter: ViewerMeter;
  private damageWatch?: { sub: FrameSubscriber; timer: NodeJS.Timeout };
  private frameBytes = 0;
  private frameStart = 0;

  constructor(
    readonly ws: WebSocket,
    readonly sourceIp: string,
    private readonly join: () => ViewerHandle,
    private readonly host: ViewerHost,
    private readonly log: Logger,
  ) {
    this.input = new ViewerInput(host.session.input, host.session.framebuffer);
    this.meter = new ViewerMeter('webrtc', host.session.sessionId);
    this.socket = new ViewerSocket(ws, 'webrtc', log, { message: (data, isBinary) => this.onMessage(data, isBinary), closed: () => this.onClosed() });
    this.done = this.socket.closed.then(() => this.pcClosed);
    this.pageActions = new ViewerPageActions(() => host.session.pages, { transport: 'webrtc', sourceIp }, (m) => this.sendJson(m));
    this.helloTimer = setTimeout(() => this.fail(new ProtocolError(CLOSE_POLICY, 'timeout', `no hello within ${HELLO_TIMEOUT_MS} ms`)), HELLO_TIMEOUT_MS);
    this.helloTimer.unref();
  }

  get isClosed(): boolean {
    return this.closed;
  }
  /** Whether this viewer holds one of the session's places (it passed the credential check). */
  get holdsPlace(): boolean {
    return this.phase === 'negotiating' || this.phase === 'live';
  }

  /** Sends `state` if anything in it differs from what this viewer was last told. */
  sendState(): void {
    if (this.handle) this.socket.sendState(this.host.session, this.handle);
  }

  /** Tells the viewer why, then closes with `code` (4000: the session ended). Resolves once closed and torn down. */
  end(code: number, reason: string): Promise<void> {
    this.socket.end(code, reason);
    return this.done;
  }

  // -------------------------------------------------------------------------------------------
  // Signalling

  private onMessage(buf: Buffer, isBinary: boolean): void {
    let msg: SignalMessage;
    try {
      msg = parseSignal(buf, isBinary);
    } catch (e) {
      this.failWith(e);
      return;
    }
    this.queue = this.queue
      .then(() => (this.closed ? undefined : this.handleSignal(msg)))
      .catch((e) => this.failWith(e));
  }

  private async handleSignal(m: SignalMessage): Promise<void> {
    if (this.phase === 'hello') {
      if (m.type !== 'hello') throw new ProtocolError(CLOSE_POLICY, 'bad_request', 'the first message must be hello');
      clearTimeout(this.helloTimer);
      await this.hello(m);
      return;
    }
    switch (m.type) {
      case 'hello':
        throw new ProtocolError(CLOSE_POLICY, 'bad_request', 'hello was already sent');
      case 'answer':
        if (this.answered) throw new ProtocolError(CLOSE_POLICY, 'bad_request', 'answer was already sent');
        this.answered = true;
        try {
          await this.pc!.setRemoteDescription({ type: 'answer', sdp: m.sdp });
          this.playoutDelayId = playoutDelayId(m.sdp);
        } catch (e) {
          throw new ProtocolError(CLOSE_POLICY, 'bad_request', `answer not accepted: ${(e as Error).message}`);
        }
        return;
      case 'candidate':
        if (++this.candidates > MAX_CANDIDATES) throw new ProtocolError(CLOSE_POLICY, 'bad_request', `more than ${MAX_CANDIDATES} candidates`);
        // Optional (the viewer's checks reach us anyway as peer-reflexive candidates); mDNS
        // `.local` names and the like that werift cannot use are ignored, not errors.
        if (m.candidate) {
          await this.pc!.addIceCandidate({ candidate: m.candidate, sdpMid: m.sdpMid ?? undefined, sdpMLineIndex: m.sdpMLineIndex ?? undefined }).catch((e) =>
            this.log.debug('webrtc candidate ignored', { err: (e as Error).message }),
          );
        }
        return;
      case 'handoff':
        if (!this.handle?.completeHandoff(m.outcome)) this.sendJson({ type: 'error', code: 'forbidden', message: 'a view link cannot end the handoff' });
        return;
      case 'tab':
      case 'file_start':
      case 'file_chunk':
      case 'file_end':
      case 'file_cancel':
        // As on the screencast: only a viewer in control acts, and never with a view link.
        if (!this.handle?.canControl) return;
        if (this.handle.viewLink) return this.sendJson({ type: 'error', code: 'forbidden', message: 'a view link cannot act on tabs or files' });
        return this.pageActions.handle(m);
    }
  }

  /** Credentials, codec and a place, all before join; then the offer. */
  private async hello(m: Extract<SignalMessage, { type: 'hello' }>): Promise<void> {
    const refused = this.host.checkCredentials(this.sourceIp, m.username, m.password);
    if (refused) throw refused;
    const codec = chooseCodec(m.codecs);
    if (!codec) throw new ProtocolError(CLOSE_POLICY, 'bad_request', `no common video codec: the server sends ${CODECS.join(' or ')}`);
    const full = this.host.reserve(this);
    if (full !== null) throw new ProtocolError(CLOSE_TOO_MANY_VIEWERS, 'too_many_viewers', full);
    this.phase = 'negotiating';
    this.codec = codec;
    try {
      this.handle = this.join();
    } catch (e) {
      if (e instanceof HandoffError) {
        const close = e.code === 'network_not_allowed' ? CLOSE_NETWORK_NOT_ALLOWED : e.code === 'unauthorized' ? CLOSE_UNAUTHORIZED : CLOSE_INTERNAL;
        throw new ProtocolError(close, e.code === 'network_not_allowed' || e.code === 'unauthorized' ? e.code : 'internal', e.message);
      }
      throw e;
    }
    const handle = this.handle;
    handle.onControlChange((canControl) => {
      if (!canControl) {
        this.input.reset();
        this.paste.reset();
      }
      this.sendState();
    });
    handle.onEnd((reason) => void this.end(CLOSE_SESSION_ENDED, reason));
    // Text copied in the session reaches the human in control (their viewer offers a copy button).
    this.stopCopies = this.host.session.input.onCopy?.((text) => handle.canControl && !handle.viewLink && this.sendJson({ type: 'clipboard', text }));
    this.sendState();
    await this.negotiate(codec);
  }

  private async negotiate(codec: Codec): Promise<void> {
    const config = await this.host.peerConfig(codec);
    if (this.closed) return;
    const pc = new RTCPeerConnection(config);
    this.pc = pc;
    this.pcClosed = new Promise<void>((resolve) => {
      pc.connectionStateChange.subscribe((state) => {
        if (state === 'closed') resolve();
      });
    });
    const track = new MediaStreamTrack({ kind: 'video' });
    this.track = track;
    const transceiver = pc.addTransceiver(track, { direction: 'sendonly' });
    transceiver.sender.onPictureLossIndication.subscribe(() => this.keyframeRequested());
    transceiver.sender.onRtcp.subscribe((p) => {
      if (p.type === RtcpPayloadSpecificFeedback.type && (p as RtcpPayloadSpecificFeedback).feedback.count === FMT_FIR) this.keyframeRequested();
    });
    const dc = pc.createDataChannel('input', { ordered: true });
    this.watchInput(dc);
    pc.connectionStateChange.subscribe((state) => this.onConnectionState(state));
    // The encoder starts now, while ICE and DTLS run: its first keyframe is ready when they are.
    this.unsubscribe = this.host.subscribe(codec, (p) => this.onPacket(p));

    const sdp = await this.host.gathering(async () => {
      await pc.setLocalDescription(await pc.createOffer());
      await gatheringComplete(pc);
      return pc.localDescription?.sdp ?? '';
    });
    if (this.closed) return;
    if (!/^a=candidate:/m.test(sdp)) {
      throw new ProtocolError(CLOSE_INTERNAL, 'internal', 'no address or UDP port available for WebRTC media (see --host and --rtc-ports)');
    }
    const { width, height } = this.host.session.framebuffer;
    this.sendJson({ type: 'offer', sdp, codec, sessionId: this.host.session.sessionId, width, height });
    this.connectTimer = setTimeout(
      () => this.fail(new ProtocolError(CLOSE_INTERNAL, 'connection_failed', `WebRTC media did not connect within ${CONNECT_TIMEOUT_MS / 1000} s`)),
      CONNECT_TIMEOUT_MS,
    );
    this.connectTimer.unref();
  }

  private onConnectionState(state: string): void {
    if (this.closed) return;
    this.log.debug('webrtc connection state', { state });
    if (state === 'connected') {
      clearTimeout(this.connectTimer);
      if (this.mediaReady) return;
      this.log.info('webrtc viewer connected', { codec: this.codec, sourceIp: this.sourceIp });
      this.mediaReady = true;
      this.phase = 'live';
      this.replayGop();
    } else if (state === 'failed') {
      this.fail(new ProtocolError(CLOSE_INTERNAL, 'connection_failed', 'WebRTC media connection failed'));
    } else if (state === 'closed') {
      this.socket.close(CLOSE_INTERNAL, 'connection closed');
    }
  }

  // -------------------------------------------------------------------------------------------
  // Media

  /**
   * One encoded packet, shared with the other viewers of the codec: forwarded as this
   * viewer's own copy, from the first keyframe after DTLS is up (and again after an encoder
   * restart), so the decoder never starts on a delta frame.
   */
  private onPacket(p: EncodedPacket): void {
    if (!this.mediaReady || this.closed || !this.track) return;
    if (p.generation !== this.generation) {
      this.generation = p.generation;
      this.awaitingKeyframe = true;
    }
    if (this.awaitingKeyframe) {
      if (!p.keyframeStart) {
        if (p.info.marker) this.meter.dropped();
        return;
      }
      this.awaitingKeyframe = false;
    }
    this.track.writeRtp(this.rewriter.rewrite(p.data, p.info, p.generation, this.playoutDelayId));
    if (this.frameBytes === 0) this.frameStart = performance.now();
    this.frameBytes += p.data.length;
    // The marker bit ends a frame (RFC 6184 5.1, RFC 7741 4.1).
    if (p.info.marker) {
      this.meter.frame(this.frameBytes, this.frameStart);
      this.frameBytes = 0;
    }
  }

  /** Input arms the latency probe; damage is watched for 5 s after the last input. */
  private inputMetered(): void {
    this.meter.input();
    if (!this.damageWatch) {
      try {
        const sub = this.host.session.framebuffer.subscribe();
        sub.onDirty(() => {
          sub.takeDirty();
          this.meter.damage();
        });
        this.damageWatch = { sub, timer: setTimeout(() => this.stopDamageWatch(), 5000) };
      } catch {
        return; // the framebuffer is closing: no probe
      }
    }
    this.damageWatch.timer.refresh();
  }

  private stopDamageWatch(): void {
    clearTimeout(this.damageWatch?.timer);
    this.damageWatch?.sub.close();
    this.damageWatch = undefined;
  }

  /**
   * A viewer joining a running encoder starts from the current GOP at once. Only with the
   * zero playout delay its answer accepted: the decoder then shows the burst as it decodes
   * it; without it, the jitter buffer would hold the picture a GOP behind, so it waits for
   * the next keyframe instead.
   */
  private replayGop(): void {
    if (!this.codec || this.playoutDelayId === null) return;
    for (const p of this.host.currentGop(this.codec)) this.onPacket(p);
  }

  private keyframeRequested(): void {
    const now = performance.now();
    if (now - this.lastKeyframeRequest < KEYFRAME_REQUEST_INTERVAL_MS) return;
    this.lastKeyframeRequest = now;
    if (this.codec) this.host.requestKeyframe(this.codec);
  }

  // -------------------------------------------------------------------------------------------
  // Input

  private watchInput(dc: RTCDataChannel): void {
    dc.onMessage.subscribe((data) => {
      if (this.closed) return;
      try {
        this.applyInput(parseInput(data));
      } catch (e) {
        this.failWith(e);
      }
    });
  }

  private applyInput(m: InputMessage): void {
    // Only a viewer in control may act (API.md 3.4); the rest is dropped silently.
    if (!this.handle?.canControl) {
      this.paste.reset();
      return;
    }
    this.inputMetered();
    switch (m.type) {
      case 'pointer':
        return this.input.pointer(m.x, m.y, m.buttons);
      case 'wheel':
        return this.input.wheel(m.x, m.y, m.dx, m.dy);
      case 'key':
        return this.input.key(m.keysym, m.down);
      case 'paste': {
        const text = this.paste.push(m.last, m.bytes);
        if (text !== null) this.input.paste(text);
        return;
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // The way out

  private failWith(e: unknown): void {
    if (e instanceof ProtocolError) {
      this.fail(e);
      return;
    }
    this.log.warn('webrtc viewer failed', { err: (e as Error).message });
    this.fail(new ProtocolError(CLOSE_INTERNAL, 'internal', 'internal error'));
  }

  /** The one way out for an error: say what, close this viewer only. */
  private fail(e: ProtocolError): void {
    if (this.closed) return;
    if (e.code !== 'unauthorized' && e.code !== 'too_many_viewers' && e.code !== 'too_many_requests') this.log.info('webrtc viewer closed on error', { code: e.code, err: e.message });
    this.socket.fail(e);
  }

  private get closed(): boolean {
    return this.socket.isClosed;
  }

  /** Runs once, whichever way the viewer goes: stop the media, give the handle and the place back. */
  private onClosed(): void {
    this.phase = 'closed';
    clearTimeout(this.helloTimer);
    clearTimeout(this.connectTimer);
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.stopCopies?.();
    this.stopDamageWatch();
    this.track?.stop();
    if (this.pc) {
      const pc = this.pc;
      const closing = pc.close().catch((e) => this.log.debug('webrtc peer close failed', { err: (e as Error).message }));
      this.pcClosed = Promise.race([closing, this.pcClosed]).then(() => undefined);
    }
    this.handle?.leave();
    this.host.viewerClosed(this);
  }

  private sendJson(m: object): void {
    this.socket.sendJson(m);
  }
}

function gatheringComplete(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, GATHER_TIMEOUT_MS);
    const sub = pc.iceGatheringStateChange.subscribe((s) => {
      if (s === 'complete') done();
    });
    function done() {
      clearTimeout(timer);
      sub.unSubscribe();
      resolve();
    }
  });
}
