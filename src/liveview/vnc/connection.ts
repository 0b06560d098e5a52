import crypto from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { FrameSubscriber, FrameView, Rect } from '../../display/types.js';
import type { ViewerHandle, ViewerSession } from '../types.js';
import { isHandoffError } from '../../util/errors.js';
import type { Logger } from '../../util/logger.js';
import type { Admission, AttemptTicket, Refusal } from '../../util/throttle.js';
import { identifySession } from './auth.js';
import { RfbParser, type ClientMsg } from './parser.js';
import {
  BGR233,
  PixelTranslator,
  SERVER_PIXEL_FORMAT,
  pixelFormatProblem,
  readPixels,
  subPixels,
  writePixelFormat,
  type PixelFormat,
  type Pixels,
} from './pixel-format.js';
import { Encoding, FenceFlag, SecurityType, ServerMessage, lengthPrefixed, rectHeader } from './protocol.js';
import { cursorRect } from './cursor.js';
import { ViewerMeter } from '../../metrics/liveview.js';
import type { VncDirectory } from './types.js';
import type { Encoder } from './encodings/encoder.js';
import { RawEncoder } from './encodings/raw.js';
import { HextileEncoder } from './encodings/hextile.js';
import { ZrleEncoder } from './encodings/zrle.js';
import { TightEncoder, jpegQualityForLevel } from './encodings/tight.js';
import { encodeCopyRect, findScroll } from './encodings/copyrect.js';

/**
 * `zlibLevel` is the client's CompressLevel pseudo-encoding (rfbproto, -256 = 0 ... -247 = 9) or
 * null. Without one ZRLE uses zlib level 1: on the LANs VNC mostly runs on, level 6 costs about
 * a third more time per frame for some 7% fewer bytes. Tight keeps level 6 (its bytes matter
 * more: it is what clients pick for slow links).
 */
const ENCODERS: Record<number, (zlibLevel: number | null) => Encoder> = {
  [Encoding.Raw]: () => new RawEncoder(),
  [Encoding.Hextile]: () => new HextileEncoder(),
  [Encoding.ZRLE]: (level) => new ZrleEncoder(level ?? 1),
  [Encoding.Tight]: (level) => new TightEncoder(level ?? 6),
};

/** Stop encoding for a client whose socket buffer holds more than this. */
const WRITE_BUFFER_CAP = 8 * 1024 * 1024;
/** Control answers (fences, end of continuous updates) waiting for the update being written. */
const MAX_QUEUED_CONTROL = 64;
/** ...and drop it when the buffer has not drained for this long. */
const STUCK_MS = 30_000;
const HANDSHAKE_MS = 30_000;
/** A connection refused at once only has to say its version. */
const REFUSED_HANDSHAKE_MS = 10_000;
/** Our own not-yet-sent dirty rects are merged into one past this count. */
const MAX_PENDING_RECTS = 64;

export interface ConnectionOptions {
  socket: Duplex;
  sourceIp: string;
  directory: VncDirectory;
  /** The credential throttle's answer for this source, taken when the connection arrived. */
  admission: Admission;
  logger: Logger;
  onClose(conn: VncConnection): void;
}

/**
 * One RFB client (RFC 6143) on any Duplex stream: handshake and VNC Authentication, then
 * framebuffer updates paced by the client's requests and input forwarded while it may control.
 */
export class VncConnection {
  private readonly socket: Duplex;
  private readonly log: Logger;
  private readonly parser: RfbParser;
  private readonly challenge = crypto.randomBytes(16);
  /** This unauthenticated attempt's place in the throttle, until it has an outcome. */
  private ticket: AttemptTicket | null;
  /** Refused before any check (locked out or too many attempts): told after the version. */
  private readonly refusal: Refusal | null;
  private minor: 3 | 7 | 8 = 3;
  private session: ViewerSession | null = null;
  private handle: ViewerHandle | null = null;
  private subscriber: FrameSubscriber | null = null;
  private closing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;

  private pf = new PixelTranslator(SERVER_PIXEL_FORMAT);
  /** RFC 6143 7.5.2: pixel encodings in the client's order of preference, Raw always allowed. */
  private preferred: number = Encoding.Raw;
  private listed = new Set<number>();
  private jpegQuality: number | null = null;
  /** Applies to zlib streams created afterwards (they are created on first use and kept). */
  private zlibLevel: number | null = null;
  private readonly encoders = new Map<number, Encoder>();

  /** The area the client's outstanding FramebufferUpdateRequests cover (RFC 6143 7.5.3). */
  private request: Rect | null = null;
  /** rfbproto ContinuousUpdates: the area sent whenever it changes, without requests; null when off. */
  private continuous: Rect | null = null;
  /** Fence responses and EndOfContinuousUpdates, sent in order between updates. */
  private control: Buffer[] = [];
  /** Changed or requested areas not yet sent (outside an earlier request). */
  private pending: Rect[] = [];
  /** Pseudo-encoding rectangles (RFC 6143 7.8), header included, waiting for the next update. */
  private pseudo: Buffer[] = [];
  private busy = false;
  private size = { width: 0, height: 0 };
  /** What the client shows, as 0xRRGGBB, kept only for CopyRect scroll detection. */
  private shown: Uint32Array | null = null;
  private stopCopies: (() => void) | null = null;
  /** A copy that came while an update was being written: sent right after it. */
  private pendingCut: string | null = null;
  /** The Cursor shape waits in `pseudo` for the next update (it is in the client's pixel format). */
  private cursorQueued = false;
  /** Ends following the session's pointer shape (while the client lists the Cursor encoding). */
  private stopCursor: (() => void) | null = null;
  /** /metrics: frames, bytes, encode time, merged changes and input-to-frame latency. */
  private meter: ViewerMeter | null = null;

  constructor(private readonly opts: ConnectionOptions) {
    this.socket = opts.socket;
    this.log = opts.logger.child({ sourceIp: opts.sourceIp });
    this.ticket = opts.admission.ok ? opts.admission.ticket : null;
    this.refusal = opts.admission.ok ? null : opts.admission;
    this.parser = new RfbParser(
      (msg) => this.onMessage(msg),
      (reason) => this.fail(reason),
    );
    this.socket.on('data', (chunk: Buffer) => this.parser.push(chunk));
    this.socket.on('error', (err) => this.fail(`socket: ${err.message}`));
    this.socket.on('close', () => void this.close());
    (this.socket as Partial<import('node:net').Socket>).setNoDelay?.(true);
    this.setTimer(this.refusal ? REFUSED_HANDSHAKE_MS : HANDSHAKE_MS, () => this.fail('handshake timeout'));
    // RFC 6143 7.1.1: the server speaks first, offering its highest version.
    this.send(Buffer.from('RFB 003.008\n', 'latin1'));
  }

  /** Refused by the throttle on arrival: it only waits for the client's version. */
  get refused(): boolean {
    return this.refusal !== null;
  }

  /** The session this connection has joined, once authenticated. */
  get sessionId(): string | null {
    return this.handle ? this.session!.sessionId : null;
  }

  /** Idempotent: ends the socket, leaves the session and releases the framebuffer. */
  close(): Promise<void> {
    if (!this.closing) {
      const socket = this.socket;
      this.closing = new Promise((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())));
      this.parser.stop();
      this.setTimer(null);
      this.ticket?.release();
      this.subscriber?.close();
      this.stopCopies?.();
      this.stopCursor?.();
      this.handle?.leave();
      for (const encoder of this.encoders.values()) encoder.close?.();
      socket.end();
      // A peer that never reads would keep the socket half-closed forever.
      const kill = setTimeout(() => socket.destroy(), 1000);
      socket.once('close', () => clearTimeout(kill));
      this.opts.onClose(this);
    }
    return this.closing;
  }

  /** The one failure path: logs once and closes only this connection. */
  private fail(reason: string): void {
    if (this.closing) return;
    this.log.info('vnc connection failed', { reason, sessionId: this.sessionId });
    void this.close();
  }

  private onMessage(msg: ClientMsg): void {
    if (this.closing) return;
    switch (msg.type) {
      case 'version':
        this.minor = msg.minor;
        if (this.refusal) return this.connectionFailed(this.refusal.message);
        // RFC 6143 7.1.2: 3.3 has the server pick the type (a U32); 3.7+ offers a list.
        if (this.minor === 3) this.send(u32(SecurityType.VncAuthentication), this.challenge);
        else this.send(Buffer.of(1, SecurityType.VncAuthentication));
        return;
      case 'securityType':
        if (msg.securityType !== SecurityType.VncAuthentication) return this.refuse('security type not supported');
        this.send(this.challenge); // RFC 6143 7.2.2
        return;
      case 'authResponse':
        return this.authenticate(msg.response);
      case 'clientInit':
        // RFC 6143 7.3.1: the shared flag is ignored, every connection is shared.
        if (!this.handle) return this.fail('ClientInit before authentication');
        return this.serverInit();
    }
    if (!this.subscriber) return this.fail(`${msg.type} before initialisation`);
    const input = this.session!.input;
    const control = this.handle!.canControl; // view-only input is dropped
    switch (msg.type) {
      case 'setPixelFormat':
        return this.setPixelFormat(msg.format);
      case 'setEncodings':
        return this.setEncodings(msg.encodings);
      case 'updateRequest':
        return this.updateRequest(msg.incremental, msg.rect);
      case 'key':
        if (control) input.key(msg.keysym, msg.down);
        if (control) this.meter?.input();
        return;
      case 'pointer':
        if (control) input.pointer(msg.x, msg.y, msg.buttonMask);
        if (control) this.meter?.input();
        return;
      case 'cutText':
        if (control) input.setClipboard(msg.text);
        return;
      case 'enableContinuousUpdates':
        return this.enableContinuousUpdates(msg.enable, msg.rect);
      case 'fence':
        return this.fence(msg.flags, msg.payload);
      case 'setDesktopSize':
        // rfbproto ExtendedDesktopSize: the size is the session's; answer "prohibited" (status 1).
        if (this.listed.has(Encoding.ExtendedDesktopSize)) this.queueExtendedDesktopSize(1, 1);
        return this.pump();
    }
  }

  /**
   * Checks the response unless the source got locked out meanwhile (a parallel attempt
   * failed). A right password from a network outside the session's hitl_allowed_networks
   * gets exactly the wrong password's answer, at once like it, and counts as a failure:
   * nothing tells a guesser there that it found the password.
   */
  private authenticate(response: Buffer): void {
    const ticket = this.ticket;
    if (!ticket) return this.refuse('authentication failed');
    const locked = ticket.recheck();
    if (locked) return this.refuse(locked.message);
    const session = identifySession(this.opts.directory, this.challenge, response);
    if (!session) return this.authFailed(ticket, true);
    try {
      this.handle = session.join({ transport: 'vnc', sourceIp: this.opts.sourceIp });
    } catch (err) {
      // join audited network_denied itself.
      if (isHandoffError(err) && err.code === 'network_not_allowed') return this.authFailed(ticket, false);
      ticket.release();
      if (isHandoffError(err)) return this.refuse(err.message);
      this.log.error('vnc join failed', { error: String(err) });
      return this.refuse('internal error');
    }
    ticket.succeeded();
    this.session = session;
    this.handle.onEnd((reason) => this.fail(`session ended: ${reason}`));
    this.handle.onControlChange(() => {
      // rfbproto DesktopName: tell clients that understand it; others keep the old name.
      if (!this.listed.has(Encoding.DesktopName)) return;
      this.pseudo.push(Buffer.concat([rectHeader(0, 0, 0, 0, Encoding.DesktopName), lengthPrefixed(this.desktopName())]));
      this.pump();
    });
    this.send(u32(0)); // SecurityResult OK (RFC 6143 7.1.3)
  }

  private authFailed(ticket: AttemptTicket, wrongPassword: boolean): void {
    const r = ticket.failed();
    if (r.lockedForMs > 0) this.log.warn('vnc source locked out', { failures: r.failures, lockedMs: r.lockedForMs, refusedUnchecked: r.refusedUnchecked });
    try {
      if (wrongPassword) this.opts.directory.authFailed(this.opts.sourceIp, { failures: r.failures, locked_ms: r.lockedForMs, refused_unchecked: r.refusedUnchecked });
    } catch (err) {
      // The audit being unavailable must not end the daemon from a socket handler.
      this.log.error('vnc auth_failed audit failed', { error: String(err) });
    }
    this.refuse('authentication failed');
  }

  /**
   * Refused before authentication (RFC 6143 7.1.2): 3.3 names security type 0 (Invalid), 3.7+
   * offers no security type; both followed by the reason, then the connection closes.
   */
  private connectionFailed(reason: string): void {
    // Debug: a guesser's flood of refusals must not flood the log.
    this.log.debug('vnc refused before authentication', { reason });
    this.send(this.minor === 3 ? u32(SecurityType.Invalid) : Buffer.of(0), lengthPrefixed(reason));
    this.parser.stop();
    void this.close();
  }

  /** SecurityResult failed: 3.8 adds a reason, older versions just close (RFC 6143 7.1.3). */
  private refuse(reason: string): void {
    this.log.info('vnc refused', { reason });
    this.send(u32(1), ...(this.minor === 8 ? [lengthPrefixed(reason)] : []));
    this.parser.stop();
    void this.close();
  }

  private serverInit(): void {
    this.setTimer(null);
    const fb = this.session!.framebuffer;
    this.size = { width: fb.width, height: fb.height };
    const head = Buffer.alloc(4);
    head.writeUInt16BE(fb.width, 0);
    head.writeUInt16BE(fb.height, 2);
    // RFC 6143 7.3.2
    this.send(head, writePixelFormat(SERVER_PIXEL_FORMAT), lengthPrefixed(this.desktopName()));
    this.subscriber = fb.subscribe();
    this.meter = new ViewerMeter('vnc', this.session!.sessionId);
    this.subscriber.onDirty(() => {
      // A change that cannot go out now is merged into a later update: a frame this viewer misses.
      if (this.busy || !(this.request || this.continuous) || this.socket.writableLength > this.writeCap()) this.meter?.dropped();
      this.pump();
    });
    // Text copied in the session goes to a client in control (RFC 6143 7.6.4 ServerCutText).
    this.stopCopies = this.session!.input.onCopy?.((text) => {
      if (!this.handle?.canControl || this.closing) return;
      this.pendingCut = text;
      if (!this.busy) this.flushCut();
    }) ?? null;
  }

  /** ServerCutText between updates only: an update is written across awaits. */
  private flushCut(): void {
    const text = this.pendingCut;
    if (text === null) return;
    this.pendingCut = null;
    // RFC 6143 7.6.4: the text is Latin-1; what it cannot carry becomes '?'.
    const body = Buffer.from(text.replace(/[^\u0000-\u00ff]/gu, '?'), 'latin1');
    const head = Buffer.alloc(8);
    head[0] = ServerMessage.ServerCutText;
    head.writeUInt32BE(body.length, 4);
    this.send(head, body);
  }

  private desktopName(): string {
    return `handoff ${this.session!.sessionId}${this.handle!.canControl ? '' : ' (view only)'}`;
  }

  private setPixelFormat(format: PixelFormat): void {
    if (!format.trueColour) {
      if (format.bitsPerPixel !== 8) return this.fail('colour map mode above 8 bpp');
      this.sendBgr233ColourMap();
      format = BGR233;
    }
    const problem = pixelFormatProblem(format);
    if (problem) return this.fail(`unsupported pixel format: ${problem}`);
    this.pf = new PixelTranslator(format);
    // The cursor's pixels are in the client's format: a new format needs them again.
    if (this.listed.has(Encoding.Cursor)) this.queueCursor();
  }

  private queueCursor(): void {
    if (this.cursorQueued) this.pseudo = this.pseudo.filter((p) => p.readInt32BE(8) !== Encoding.Cursor);
    this.pseudo.push(cursorRect(this.pf, this.session!.framebuffer.cursor?.current() ?? null));
    this.cursorQueued = true;
  }

  /** RFC 6143 7.6.2: index = b<<6 | g<<3 | r, colours as U16 intensities. */
  private sendBgr233ColourMap(): void {
    const msg = Buffer.alloc(6 + 256 * 6);
    msg[0] = ServerMessage.SetColourMapEntries;
    msg.writeUInt16BE(0, 2);
    msg.writeUInt16BE(256, 4);
    for (let i = 0; i < 256; i++) {
      const off = 6 + i * 6;
      msg.writeUInt16BE(Math.round(((i & 7) * 65535) / 7), off);
      msg.writeUInt16BE(Math.round((((i >> 3) & 7) * 65535) / 7), off + 2);
      msg.writeUInt16BE(Math.round(((i >> 6) * 65535) / 3), off + 4);
    }
    this.send(msg);
  }

  private setEncodings(encodings: number[]): void {
    const had = this.listed;
    const hadExtendedSize = this.listed.has(Encoding.ExtendedDesktopSize);
    this.listed = new Set(encodings);
    this.preferred = encodings.find((e) => e in ENCODERS) ?? Encoding.Raw;
    const level = encodings.find((e) => e >= Encoding.QualityLevel0 && e <= Encoding.QualityLevel9);
    this.jpegQuality = level === undefined ? null : jpegQualityForLevel(level - Encoding.QualityLevel0);
    const compress = encodings.find((e) => e >= Encoding.CompressLevel0 && e <= Encoding.CompressLevel9);
    this.zlibLevel = compress === undefined ? null : compress - Encoding.CompressLevel0;
    if (!this.listed.has(Encoding.CopyRect)) this.shown = null;
    else this.shown ??= new Uint32Array(this.size.width * this.size.height);
    // Announcing the screen layout is how a client learns it may ask for SetDesktopSize.
    if (!hadExtendedSize && this.listed.has(Encoding.ExtendedDesktopSize)) this.queueExtendedDesktopSize(0, 0);
    if (!had.has(Encoding.Cursor) && this.listed.has(Encoding.Cursor)) {
      this.queueCursor();
      // Each change of the session's pointer shape goes out with the next update.
      this.stopCursor = this.session!.framebuffer.cursor?.onChange(() => {
        if (this.closing) return;
        this.queueCursor();
        this.pump();
      }) ?? null;
    } else if (had.has(Encoding.Cursor) && !this.listed.has(Encoding.Cursor)) {
      this.stopCursor?.();
      this.stopCursor = null;
      this.pseudo = this.pseudo.filter((p) => p.readInt32BE(8) !== Encoding.Cursor);
      this.cursorQueued = false;
    }
    // rfbproto: a server says it supports Fence with a fence request, and ContinuousUpdates
    // with an EndOfContinuousUpdates, the first time the client lists them.
    if (!had.has(Encoding.Fence) && this.listed.has(Encoding.Fence)) this.queueFence(FenceFlag.Request, Buffer.alloc(0));
    if (!had.has(Encoding.ContinuousUpdates) && this.listed.has(Encoding.ContinuousUpdates)) this.queueControl(Buffer.of(ServerMessage.EndOfContinuousUpdates));
  }

  /**
   * rfbproto EnableContinuousUpdates: while on, every change inside `rect` is sent without a
   * request, paced by the socket draining. Turning it off is confirmed with
   * EndOfContinuousUpdates after the last update.
   */
  private enableContinuousUpdates(enable: boolean, rect: Rect): void {
    if (!this.listed.has(Encoding.ContinuousUpdates)) return this.fail('EnableContinuousUpdates without the pseudo-encoding');
    if (!enable) {
      const was = this.continuous !== null;
      this.continuous = null;
      if (was) this.queueControl(Buffer.of(ServerMessage.EndOfContinuousUpdates));
      return;
    }
    this.continuous = intersect(rect, { x: 0, y: 0, ...this.size });
    this.pump();
  }

  /**
   * rfbproto ClientFence. We handle messages in order and answer in order with the updates, so
   * BlockBefore, BlockAfter and SyncNext hold as they are: a request is echoed with the flags
   * we honour. A response is to our own announcement: nothing to do.
   */
  private fence(flags: number, payload: Buffer): void {
    if (!this.listed.has(Encoding.Fence)) return this.fail('Fence without the pseudo-encoding');
    if (!(flags & FenceFlag.Request)) return;
    this.queueFence((flags & (FenceFlag.BlockBefore | FenceFlag.BlockAfter | FenceFlag.SyncNext)) >>> 0, payload);
  }

  private queueFence(flags: number, payload: Buffer): void {
    const msg = Buffer.alloc(9 + payload.length);
    msg[0] = ServerMessage.Fence;
    msg.writeUInt32BE(flags >>> 0, 4);
    msg[8] = payload.length;
    payload.copy(msg, 9);
    this.queueControl(msg);
  }

  /** Control messages must not land inside an update that is being written across awaits. */
  private queueControl(msg: Buffer): void {
    // Each fence or toggle a client sends queues an answer: one that never reads would grow
    // them without end (security review), so past the write cap it is dropped.
    if (this.control.length >= MAX_QUEUED_CONTROL || this.socket.writableLength > WRITE_BUFFER_CAP) return this.fail('client is not reading');
    this.control.push(msg);
    if (!this.busy) this.flushControl();
  }

  private flushControl(): void {
    const msgs = this.control;
    this.control = [];
    if (msgs.length) this.send(...msgs);
  }

  /** rfbproto ExtendedDesktopSize: x = reason, y = status, then one screen covering everything. */
  private queueExtendedDesktopSize(reason: number, status: number): void {
    const { width, height } = this.size;
    const body = Buffer.alloc(4 + 16);
    body[0] = 1;
    body.writeUInt16BE(width, 4 + 8);
    body.writeUInt16BE(height, 4 + 10);
    // Only the latest answer matters: a client repeating SetDesktopSize without reading queues one.
    this.pseudo = this.pseudo.filter((p) => p.readInt32BE(8) !== Encoding.ExtendedDesktopSize);
    this.pseudo.push(Buffer.concat([rectHeader(reason, status, width, height, Encoding.ExtendedDesktopSize), body]));
  }

  private updateRequest(incremental: boolean, rect: Rect): void {
    const area = intersect(rect, { x: 0, y: 0, ...this.size });
    if (!area) return;
    // RFC 6143 7.5.3: a non-incremental request wants the area whatever has changed.
    if (!incremental) {
      this.subscriber!.invalidate();
      this.addPending([area]);
    }
    this.request = this.request ? bounds(this.request, area) : area;
    this.pump();
  }

  private addPending(rects: Rect[]): void {
    for (const r of rects) {
      if (this.pending.some((p) => contains(p, r))) continue;
      this.pending = this.pending.filter((p) => !contains(r, p));
      this.pending.push(r);
    }
    if (this.pending.length > MAX_PENDING_RECTS) this.pending = [this.pending.reduce(bounds)];
  }

  /**
   * Sends one update when a request is outstanding and something in it changed; otherwise the
   * request waits for the subscriber's onDirty (RFC 6143 7.5.3). One update per request, and
   * nothing is encoded while the client is not reading.
   */
  private pump(): void {
    if (this.busy || !(this.request || this.continuous) || !this.subscriber || this.closing) return;
    if (this.socket.writableLength > this.writeCap()) return this.waitForDrain();
    const dirty = this.subscriber.takeDirty();
    if (dirty.length) this.meter?.damage();
    this.addPending(dirty);
    const frame = this.subscriber.frame();
    if (frame.width !== this.size.width || frame.height !== this.size.height) {
      if (!this.resized(frame)) return;
    }
    const request = this.request && this.continuous ? bounds(this.request, this.continuous) : (this.request ?? this.continuous)!;
    const send: Rect[] = [];
    const keep: Rect[] = [];
    for (const r of this.pending) {
      const part = intersect(r, request);
      if (part) send.push(part);
      if (!part || !contains(request, r)) keep.push(r);
    }
    if (send.length === 0 && this.pseudo.length === 0) return;
    this.pending = keep;
    this.request = null;
    this.busy = true;
    const takenAt = performance.now();
    this.sendUpdate(frame, send, takenAt).then(
      () => {
        this.busy = false;
        this.flushControl();
        this.flushCut();
        this.pump();
      },
      (err: unknown) => this.fail(`encoding: ${String(err)}`),
    );
  }

  /**
   * Requests pace a client themselves; continuous updates go no faster than the socket drains
   * (past the high-water mark the last write returned false, so 'drain' will come).
   */
  private writeCap(): number {
    return this.continuous ? this.socket.writableHighWaterMark : WRITE_BUFFER_CAP;
  }

  /** The framebuffer changed size: tell the client (RFC 6143 7.8.1) or give up on it. */
  private resized(frame: FrameView): boolean {
    this.size = { width: frame.width, height: frame.height };
    if (this.shown) this.shown = new Uint32Array(frame.width * frame.height);
    this.pending = [{ x: 0, y: 0, ...this.size }];
    this.request = { x: 0, y: 0, ...this.size };
    if (this.continuous) this.continuous = { x: 0, y: 0, ...this.size };
    if (this.listed.has(Encoding.ExtendedDesktopSize)) this.queueExtendedDesktopSize(0, 0);
    else if (this.listed.has(Encoding.DesktopSize)) this.pseudo.push(rectHeader(0, 0, frame.width, frame.height, Encoding.DesktopSize));
    else {
      this.fail('framebuffer resized and the client cannot follow');
      return false;
    }
    return true;
  }

  private waitForDrain(): void {
    if (this.timer) return;
    this.setTimer(STUCK_MS, () => this.fail('client stopped reading'));
    this.socket.once('drain', () => {
      this.setTimer(null);
      this.pump();
    });
  }

  /** One FramebufferUpdate (RFC 6143 7.6.1); pixels are copied now, encoded afterwards. */
  private async sendUpdate(frame: FrameView, rects: Rect[], takenAt: number): Promise<void> {
    const copies: Buffer[] = [];
    const work: Array<{ rect: Rect; px: Pixels }> = [];
    const encoder = this.encoder(this.preferred);
    const max = encoder.maxRect ?? { width: 0xffff, height: 0xffff };
    for (const rect of rects) {
      const px = readPixels(frame, rect);
      let bands: Array<[number, number]> = [[rect.y, rect.y + rect.height]];
      // CopyRects go first and read sources inside their own rect, so rects must not overlap.
      const scroll =
        this.shown && !rects.some((o) => o !== rect && intersect(o, rect))
          ? findScroll(this.shown, this.size.width, rect, px.data)
          : null;
      if (scroll) {
        copies.push(
          Buffer.concat([
            rectHeader(rect.x, scroll.y0, rect.width, scroll.y1 - scroll.y0, Encoding.CopyRect),
            encodeCopyRect(rect.x, scroll.y0 + scroll.dy),
          ]),
        );
        bands = [
          [rect.y, scroll.y0],
          [scroll.y1, rect.y + rect.height],
        ];
      }
      for (const [top, bottom] of bands) {
        for (let y = top; y < bottom; y += max.height) {
          for (let x = rect.x; x < rect.x + rect.width; x += max.width) {
            const r = { x, y, width: Math.min(max.width, rect.x + rect.width - x), height: Math.min(max.height, bottom - y) };
            work.push({ rect: r, px: subPixels(px, r.x - rect.x, r.y - rect.y, r.width, r.height) });
          }
        }
      }
      if (this.shown) {
        for (let row = 0; row < rect.height; row++) {
          this.shown.set(px.data.subarray(row * rect.width, (row + 1) * rect.width), (rect.y + row) * this.size.width + rect.x);
        }
      }
    }

    const pseudo = this.pseudo;
    this.pseudo = [];
    this.cursorQueued = false;
    // The count is known before encoding, so it is always exact. rfbproto LastRect (an open
    // count of 0xffff closed by a LastRect rectangle) is accepted in SetEncodings but never
    // needed, and clients that list it without handling it exist: vncsnapshot 1.2 (TightVNC
    // 1.2 code) counts the LastRect as a "zero size rect" and waits for 65535 rectangles.
    const head = Buffer.alloc(4);
    head[0] = ServerMessage.FramebufferUpdate;
    head.writeUInt16BE(pseudo.length + copies.length + work.length, 2);
    this.send(head, ...pseudo, ...copies);
    let bytes = 0;
    for (const b of copies) bytes += b.length;
    let encodeMs = 0;
    const ctx = { pf: this.pf, jpegQuality: this.jpegQuality };
    for (const { rect, px } of work) {
      const start = performance.now();
      const body = await encoder.encode(px, ctx);
      encodeMs += performance.now() - start;
      if (this.closing) return;
      this.send(rectHeader(rect.x, rect.y, rect.width, rect.height, encoder.encoding), body);
      bytes += 12 + body.length;
    }
    if (rects.length === 0) return; // pseudo-encodings only: no picture
    this.meter?.encoded(encodeMs / 1000);
    this.meter?.frame(bytes, takenAt);
  }

  private encoder(type: number): Encoder {
    let e = this.encoders.get(type);
    if (!e) this.encoders.set(type, (e = ENCODERS[type]!(this.zlibLevel)));
    return e;
  }

  private send(...parts: Buffer[]): void {
    if (this.closing && !this.socket.writable) return;
    for (const p of parts) this.socket.write(p);
  }

  private setTimer(ms: number | null, fn?: () => void): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = ms === null ? null : setTimeout(fn!, ms);
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

function intersect(a: Rect, b: Rect): Rect | null {
  const x = Math.max(a.x, b.x);
  const y = Math.max(a.y, b.y);
  const right = Math.min(a.x + a.width, b.x + b.width);
  const bottom = Math.min(a.y + a.height, b.y + b.height);
  return right > x && bottom > y ? { x, y, width: right - x, height: bottom - y } : null;
}

function contains(outer: Rect, inner: Rect): boolean {
  return (
    inner.x >= outer.x &&
    inner.y >= outer.y &&
    inner.x + inner.width <= outer.x + outer.width &&
    inner.y + inner.height <= outer.y + outer.height
  );
}

function bounds(a: Rect, b: Rect): Rect {
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return { x, y, width: Math.max(a.x + a.width, b.x + b.width) - x, height: Math.max(a.y + a.height, b.y + b.height) - y };
}
