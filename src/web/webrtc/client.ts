/*
 * handoff WebRTC viewer client (issue 5), served as /assets/kit-webrtc.js (window.HandoffWebRTC).
 *
 *   const h = window.HandoffWebRTC.connect(videoEl, 'ws://HOST/live/TOKEN/webrtc', {
 *     username, password,          // the session's rtc_username / rtc_password, when set
 *     onState(s) {},               // see "State" below
 *     onStats(s) {},               // once a second: {fps, framesDecoded, rttMs, ...}
 *     onMessage(msg) {},           // every signalling message from the server, parsed
 *     codecs: ['H264', 'VP8'],     // optional: what to offer to decode (default: what this browser decodes)
 *     iceServers: [],              // optional: STUN/TURN for the viewer's side (default none)
 *   });
 *   h.sendPointer(x, y, buttons); h.sendWheel(x, y, dx, dy); h.sendKey(keysym, down);
 *   h.sendPaste(text); h.sendHandoff('done' | 'failed'); h.close();
 *   h.sendMessage(obj); h.buffered()  // tab and file messages on the signalling socket, and its unsent bytes
 *   h.videoPoint(clientX, clientY) -> {x, y} in framebuffer pixels, or null outside the picture
 *
 * Signalling (JSON on the WebSocket): the viewer says {type:"hello", username, password,
 * codecs}; the server answers with {type:"offer", sdp, codec, sessionId, width, height} (all of
 * its ICE candidates are in the SDP), the viewer replies {type:"answer", sdp} and trickles its
 * own candidates as {type:"candidate", ...} (optional for the server). The server also sends
 * {type:"state", canControl, attachment, handoff, viewers, downloads, tabs, fileRequest},
 * {type:"clipboard", text}, {type:"file_done", request, files}, {type:"ended", reason}
 * (then close 4000) and {type:"error", code, message} (then close: 4001 unauthorized,
 * 4029 too_many_viewers, 4003 network_not_allowed, 1008 bad_request, 1011 connection_failed).
 * An error that answers a tab or file message leaves the socket open: an error ends the
 * connection only once the socket closes (onState then reports it).
 *
 * Input goes on the DataChannel "input" the server opens, as binary messages, big-endian:
 *   0x01 pointer  x u16 | y u16 | buttons u8          (6 bytes; buttons = RFB mask, bit 0 left,
 *                                                     bit 1 middle, bit 2 right, bit 7 button 8)
 *   0x02 wheel    x u16 | y u16 | dx i8 | dy i8       (7 bytes; notches, +dy down, +dx right, |d| <= 100)
 *   0x03 key      keysym u32 | down u8                (6 bytes; X keysyms, RFC 6143 7.5.4)
 *   0x04 paste    flags u8 (bit 0 = last) | UTF-8     (chunks of 16 KiB here, 1 MiB in total)
 * Coordinates are framebuffer pixels (use videoPoint). A view-only viewer may send; the server
 * drops it. sendPaste returns false (and sends nothing) for text over 1 MiB.
 *
 * State: onState gets {phase, connection, codec, canControl, attachment, handoff, viewers,
 * downloads, error, closeCode}. phase is 'connecting' | 'live' | 'view-only' | 'ended' | 'error'
 * (the viewer page's data-handoff-state values). On 'error', error = {code, message}:
 * 'unauthorized' (ask for credentials again), 'too_many_viewers', 'connection_failed' (media
 * could not connect: fall back to the screencast), or another code.
 */

const POINTER = 0x01;
const WHEEL = 0x02;
const KEY = 0x03;
const PASTE = 0x04;
const PASTE_LAST = 0x01;
const PASTE_CHUNK = 16 * 1024;
const MAX_PASTE = 1024 * 1024;
const MAX_NOTCHES = 100;

export interface RtcHandoff { id: string; reason: string; requested_at?: string }
export interface RtcState {
  phase: 'connecting' | 'live' | 'view-only' | 'ended' | 'error';
  connection: string;
  codec: string | null;
  canControl: boolean;
  attachment: string | null;
  handoff: RtcHandoff | null;
  viewers: Record<string, number> | null;
  downloads: number;
  error: { code: string; message: string } | null;
  closeCode: number | null;
}
export interface RtcStats {
  fps: number; framesDecoded: number; framesReceived: number; packetsLost: number; rttMs: number | null;
  latencyMs: number; width: number; height: number; codec: string | null;
}
export interface RtcOptions {
  username?: string;
  password?: string;
  onState?: (s: RtcState) => void;
  onStats?: (s: RtcStats) => void;
  onMessage?: (msg: Record<string, any>) => void;
  codecs?: string[];
  iceServers?: RTCIceServer[];
}
export interface RtcHandle {
  readonly pc: RTCPeerConnection | null;
  readonly state: RtcState;
  sendPointer(x: number, y: number, buttons: number): boolean;
  sendWheel(x: number, y: number, dx: number, dy: number): boolean;
  sendKey(keysym: number, down: boolean): boolean;
  sendPaste(text: string): boolean;
  sendHandoff(outcome: 'done' | 'failed'): void;
  /** A tab or file message (docs/screencast-protocol.md) on the signalling socket. */
  sendMessage(msg: object): void;
  /** Bytes queued on the signalling socket, not yet sent. */
  buffered(): number;
  videoPoint(clientX: number, clientY: number): { x: number; y: number } | null;
  close(): void;
}
export interface HandoffWebRTC { connect(videoEl: HTMLVideoElement, wsUrl: string, options?: RtcOptions): RtcHandle }

function clamp(v: unknown, lo: number, hi: number): number {
  const n = Math.round(Number(v) || 0);
  return n < lo ? lo : n > hi ? hi : n;
}

/** The codec names this browser can decode, in the server's vocabulary. */
function decodableCodecs(): string[] {
  const out: string[] = [];
  try {
    const caps = window.RTCRtpReceiver && RTCRtpReceiver.getCapabilities && RTCRtpReceiver.getCapabilities('video');
    for (const c of caps ? caps.codecs : []) {
      const name = String(c.mimeType || '').replace(/^video\//i, '').toUpperCase();
      if (name && !out.includes(name) && name !== 'RTX' && name !== 'RED' && name !== 'ULPFEC') out.push(name);
    }
  } catch {
    /* no capabilities API: say what every WebRTC browser decodes */
  }
  return out.length ? out : ['H264', 'VP8'];
}

const report = (e: unknown) => console.error(e);

export function connect(videoEl: HTMLVideoElement, wsUrl: string, options?: RtcOptions): RtcHandle {
  const opts = options || {};
  const onState = opts.onState || (() => {});
  const onStats = opts.onStats || (() => {});
  const onMessage = opts.onMessage || (() => {});
  const ws = new WebSocket(wsUrl);
  let pc: RTCPeerConnection | null = null;
  let dc: RTCDataChannel | null = null;
  let closed = false;
  let lastError: { code: string; message: string } | null = null; // reported when the socket closes
  let statsTimer: number | null = null;
  let last: { at: number; decoded: number } | null = null; // previous stats sample, for fps when the browser does not report it
  const state: RtcState = {
    phase: 'connecting', connection: 'new', codec: null, canControl: false, attachment: null,
    handoff: null, viewers: null, downloads: 0, error: null, closeCode: null,
  };

  videoEl.muted = true;
  videoEl.autoplay = true;
  videoEl.playsInline = true;
  videoEl.setAttribute('playsinline', '');

  function emit(patch: Partial<RtcState>): void {
    Object.assign(state, patch);
    if (state.phase !== 'ended' && state.phase !== 'error') {
      state.phase = state.connection === 'connected' ? (state.canControl ? 'live' : 'view-only') : 'connecting';
    }
    try {
      onState({ ...state });
    } catch (e) {
      report(e);
    }
  }

  function send(obj: unknown): void {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
  }

  ws.onopen = () => {
    send({
      type: 'hello',
      username: opts.username == null ? undefined : String(opts.username),
      password: opts.password == null ? undefined : String(opts.password),
      codecs: opts.codecs || decodableCodecs(),
    });
  };

  ws.onmessage = (ev) => {
    if (typeof ev.data !== 'string') return;
    let msg: Record<string, any>;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    try {
      onMessage(msg);
    } catch (e) {
      report(e);
    }
    if (msg.type === 'offer') {
      answer(msg).catch((e) => {
        emit({ phase: 'error', error: { code: 'connection_failed', message: String(e && e.message ? e.message : e) } });
        shutdown();
      });
    } else if (msg.type === 'state') {
      emit({ canControl: !!msg.canControl, attachment: msg.attachment, handoff: msg.handoff, viewers: msg.viewers, downloads: msg.downloads });
    } else if (msg.type === 'ended') emit({ phase: 'ended' });
    else if (msg.type === 'error') lastError = { code: String(msg.code), message: String(msg.message) };
  };

  ws.onclose = (ev) => {
    const patch: Partial<RtcState> = { closeCode: ev.code };
    if (!closed && state.phase !== 'ended' && state.phase !== 'error') {
      patch.phase = ev.code === 4000 ? 'ended' : 'error';
      if (patch.phase === 'error') patch.error = lastError || { code: 'closed', message: 'the connection closed (' + ev.code + ')' };
    }
    emit(patch);
    shutdown();
  };

  async function answer(offer: Record<string, any>): Promise<void> {
    const peer = new RTCPeerConnection({ iceServers: opts.iceServers || [] });
    pc = peer;
    peer.ontrack = (ev) => {
      // Render as soon as a frame decodes: no extra jitter buffer on a LAN.
      const receiver = ev.receiver as RTCRtpReceiver & { playoutDelayHint?: number; jitterBufferTarget?: number };
      try {
        if ('playoutDelayHint' in receiver) receiver.playoutDelayHint = 0;
        if ('jitterBufferTarget' in receiver) receiver.jitterBufferTarget = 0;
      } catch {
        /* older browsers */
      }
      videoEl.srcObject = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
      videoEl.play()?.catch(() => {});
    };
    peer.ondatachannel = (ev) => {
      if (ev.channel.label !== 'input') return;
      dc = ev.channel;
      dc.binaryType = 'arraybuffer';
    };
    peer.onicecandidate = (ev) => {
      if (ev.candidate && ev.candidate.candidate) {
        send({ type: 'candidate', candidate: ev.candidate.candidate, sdpMid: ev.candidate.sdpMid, sdpMLineIndex: ev.candidate.sdpMLineIndex });
      }
    };
    peer.onconnectionstatechange = () => {
      emit({ connection: peer.connectionState });
      if (peer.connectionState === 'failed' && !closed) {
        emit({ phase: 'error', error: { code: 'connection_failed', message: 'WebRTC media connection failed' } });
        shutdown();
      }
    };
    emit({ codec: offer.codec });
    await peer.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
    await peer.setLocalDescription(await peer.createAnswer());
    send({ type: 'answer', sdp: peer.localDescription!.sdp });
    statsTimer = window.setInterval(pollStats, 1000);
  }

  async function pollStats(): Promise<void> {
    if (!pc) return;
    let stats: RTCStatsReport;
    try {
      stats = await pc.getStats();
    } catch {
      return;
    }
    let inbound: Record<string, any> | null = null;
    let pair: Record<string, any> | null = null;
    stats.forEach((s: Record<string, any>) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') inbound = s;
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
    });
    const inb = inbound as Record<string, any> | null;
    const pr = pair as Record<string, any> | null;
    if (!inb) return;
    const now: number = inb.timestamp;
    const decoded: number = inb.framesDecoded || 0;
    let fps: number | undefined = inb.framesPerSecond;
    if (fps == null && last) fps = ((decoded - last.decoded) * 1000) / Math.max(1, now - last.at);
    last = { at: now, decoded };
    const rttMs = pr && pr.currentRoundTripTime != null ? pr.currentRoundTripTime * 1000 : null;
    // What the receiving side adds (half the round trip, jitter buffer, decode); capture and
    // encode on the host are not visible from here.
    const buffered = inb.jitterBufferEmittedCount ? (inb.jitterBufferDelay / inb.jitterBufferEmittedCount) * 1000 : 0;
    const decode = decoded ? (inb.totalDecodeTime / decoded) * 1000 : 0;
    try {
      onStats({
        fps: fps == null ? 0 : fps,
        framesDecoded: decoded,
        framesReceived: inb.framesReceived || 0,
        packetsLost: inb.packetsLost || 0,
        rttMs,
        latencyMs: (rttMs || 0) / 2 + buffered + decode,
        width: inb.frameWidth || 0,
        height: inb.frameHeight || 0,
        codec: state.codec,
      });
    } catch (e) {
      report(e);
    }
  }

  function shutdown(): void {
    if (statsTimer) clearInterval(statsTimer);
    statsTimer = null;
    if (pc) {
      try {
        pc.close();
      } catch {
        /* already closed */
      }
    }
    dc = null;
  }

  function sendInput(bytes: ArrayBuffer): boolean {
    if (!dc || dc.readyState !== 'open') return false;
    dc.send(bytes);
    return true;
  }

  return {
    get pc() {
      return pc;
    },
    get state() {
      return { ...state };
    },
    sendPointer(x, y, buttons) {
      const b = new DataView(new ArrayBuffer(6));
      b.setUint8(0, POINTER);
      b.setUint16(1, clamp(x, 0, 0xffff));
      b.setUint16(3, clamp(y, 0, 0xffff));
      b.setUint8(5, clamp(buttons, 0, 0xff));
      return sendInput(b.buffer);
    },
    sendWheel(x, y, dx, dy) {
      const b = new DataView(new ArrayBuffer(7));
      b.setUint8(0, WHEEL);
      b.setUint16(1, clamp(x, 0, 0xffff));
      b.setUint16(3, clamp(y, 0, 0xffff));
      b.setInt8(5, clamp(dx, -MAX_NOTCHES, MAX_NOTCHES));
      b.setInt8(6, clamp(dy, -MAX_NOTCHES, MAX_NOTCHES));
      return sendInput(b.buffer);
    },
    sendKey(keysym, down) {
      const b = new DataView(new ArrayBuffer(6));
      b.setUint8(0, KEY);
      b.setUint32(1, clamp(keysym, 0, 0x1fffffff));
      b.setUint8(5, down ? 1 : 0);
      return sendInput(b.buffer);
    },
    sendPaste(text) {
      const bytes = new TextEncoder().encode(String(text));
      const channel = dc;
      if (bytes.length > MAX_PASTE || !channel || channel.readyState !== 'open') return false;
      let i = 0;
      do {
        const part = bytes.subarray(i, i + PASTE_CHUNK);
        const msg = new Uint8Array(2 + part.length);
        msg[0] = PASTE;
        msg[1] = i + PASTE_CHUNK >= bytes.length ? PASTE_LAST : 0;
        msg.set(part, 2);
        channel.send(msg.buffer);
        i += PASTE_CHUNK;
      } while (i < bytes.length);
      return true;
    },
    sendHandoff(outcome) {
      send({ type: 'handoff', outcome });
    },
    sendMessage(msg) {
      send(msg);
    },
    buffered() {
      return ws.bufferedAmount;
    },
    /** Client coordinates -> framebuffer pixels, for a video shown with object-fit: contain (the default). */
    videoPoint(clientX, clientY) {
      const w = videoEl.videoWidth;
      const hgt = videoEl.videoHeight;
      if (!w || !hgt) return null;
      const r = videoEl.getBoundingClientRect();
      const scale = Math.min(r.width / w, r.height / hgt);
      const left = r.left + (r.width - w * scale) / 2;
      const top = r.top + (r.height - hgt * scale) / 2;
      const x = (clientX - left) / scale;
      const y = (clientY - top) / scale;
      if (x < 0 || y < 0 || x >= w || y >= hgt) return null;
      return { x: Math.floor(x), y: Math.floor(y) };
    },
    close() {
      if (closed) return;
      closed = true;
      shutdown();
      try {
        ws.close(1000, 'viewer closed');
      } catch {
        /* already closed */
      }
      videoEl.srcObject = null;
    },
  };
}
