/*
 * handoff WebRTC viewer client (issue 5). Plain ES2020, no build step, nothing fetched.
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
 *   h.videoPoint(clientX, clientY) -> {x, y} in framebuffer pixels, or null outside the picture
 *
 * Signalling (JSON on the WebSocket): the viewer says {type:"hello", username, password,
 * codecs}; the server answers with {type:"offer", sdp, codec, sessionId, width, height} (all of
 * its ICE candidates are in the SDP), the viewer replies {type:"answer", sdp} and trickles its
 * own candidates as {type:"candidate", ...} (optional for the server). The server also sends
 * {type:"state", canControl, attachment, handoff, viewers, downloads}, {type:"ended", reason}
 * (then close 4000) and {type:"error", code, message} (then close: 4001 unauthorized,
 * 4029 too_many_viewers, 4003 network_not_allowed, 1008 bad_request, 1011 connection_failed).
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
(function () {
  'use strict';

  var POINTER = 0x01;
  var WHEEL = 0x02;
  var KEY = 0x03;
  var PASTE = 0x04;
  var PASTE_LAST = 0x01;
  var PASTE_CHUNK = 16 * 1024;
  var MAX_PASTE = 1024 * 1024;
  var MAX_NOTCHES = 100;

  function clamp(v, lo, hi) {
    v = Math.round(Number(v) || 0);
    return v < lo ? lo : v > hi ? hi : v;
  }

  /** The codec names this browser can decode, in the server's vocabulary. */
  function decodableCodecs() {
    var out = [];
    try {
      var caps = window.RTCRtpReceiver && RTCRtpReceiver.getCapabilities && RTCRtpReceiver.getCapabilities('video');
      (caps ? caps.codecs : []).forEach(function (c) {
        var name = String(c.mimeType || '').replace(/^video\//i, '').toUpperCase();
        if (name && out.indexOf(name) < 0 && name !== 'RTX' && name !== 'RED' && name !== 'ULPFEC') out.push(name);
      });
    } catch (e) {
      /* no capabilities API: say what every WebRTC browser decodes */
    }
    return out.length ? out : ['H264', 'VP8'];
  }

  function connect(videoEl, wsUrl, options) {
    var opts = options || {};
    var onState = opts.onState || function () {};
    var onStats = opts.onStats || function () {};
    var onMessage = opts.onMessage || function () {};
    var ws = new WebSocket(wsUrl);
    var pc = null;
    var dc = null;
    var closed = false;
    var statsTimer = null;
    var last = null; // previous stats sample, for fps when the browser does not report it
    var state = {
      phase: 'connecting',
      connection: 'new',
      codec: null,
      canControl: false,
      attachment: null,
      handoff: null,
      viewers: null,
      downloads: 0,
      error: null,
      closeCode: null,
    };

    videoEl.muted = true;
    videoEl.autoplay = true;
    videoEl.playsInline = true;
    videoEl.setAttribute('playsinline', '');

    function emit(patch) {
      for (var k in patch) state[k] = patch[k];
      if (state.phase !== 'ended' && state.phase !== 'error') {
        state.phase = state.connection === 'connected' ? (state.canControl ? 'live' : 'view-only') : 'connecting';
      }
      try {
        onState(Object.assign({}, state));
      } catch (e) {
        console.error(e);
      }
    }

    function send(obj) {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
    }

    ws.onopen = function () {
      send({
        type: 'hello',
        username: opts.username == null ? undefined : String(opts.username),
        password: opts.password == null ? undefined : String(opts.password),
        codecs: opts.codecs || decodableCodecs(),
      });
    };

    ws.onmessage = function (ev) {
      if (typeof ev.data !== 'string') return;
      var msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      try {
        onMessage(msg);
      } catch (e) {
        console.error(e);
      }
      if (msg.type === 'offer') answer(msg).catch(function (e) {
        emit({ phase: 'error', error: { code: 'connection_failed', message: String(e && e.message ? e.message : e) } });
        shutdown();
      });
      else if (msg.type === 'state') {
        emit({ canControl: !!msg.canControl, attachment: msg.attachment, handoff: msg.handoff, viewers: msg.viewers, downloads: msg.downloads });
      } else if (msg.type === 'ended') emit({ phase: 'ended' });
      else if (msg.type === 'error') emit({ phase: 'error', error: { code: msg.code, message: msg.message } });
    };

    ws.onclose = function (ev) {
      var patch = { closeCode: ev.code };
      if (!closed && state.phase !== 'ended' && state.phase !== 'error') {
        patch.phase = ev.code === 4000 ? 'ended' : 'error';
        if (patch.phase === 'error') patch.error = { code: 'closed', message: 'the connection closed (' + ev.code + ')' };
      }
      emit(patch);
      shutdown();
    };

    async function answer(offer) {
      pc = new RTCPeerConnection({ iceServers: opts.iceServers || [] });
      pc.ontrack = function (ev) {
        // Render as soon as a frame decodes: no extra jitter buffer on a LAN.
        try {
          if ('playoutDelayHint' in ev.receiver) ev.receiver.playoutDelayHint = 0;
          if ('jitterBufferTarget' in ev.receiver) ev.receiver.jitterBufferTarget = 0;
        } catch (e) {
          /* older browsers */
        }
        videoEl.srcObject = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
        var p = videoEl.play();
        if (p && p.catch) p.catch(function () {});
      };
      pc.ondatachannel = function (ev) {
        if (ev.channel.label !== 'input') return;
        dc = ev.channel;
        dc.binaryType = 'arraybuffer';
      };
      pc.onicecandidate = function (ev) {
        if (ev.candidate && ev.candidate.candidate) {
          send({ type: 'candidate', candidate: ev.candidate.candidate, sdpMid: ev.candidate.sdpMid, sdpMLineIndex: ev.candidate.sdpMLineIndex });
        }
      };
      pc.onconnectionstatechange = function () {
        emit({ connection: pc.connectionState });
        if (pc.connectionState === 'failed' && !closed) {
          emit({ phase: 'error', error: { code: 'connection_failed', message: 'WebRTC media connection failed' } });
          shutdown();
        }
      };
      emit({ codec: offer.codec });
      await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      send({ type: 'answer', sdp: pc.localDescription.sdp });
      statsTimer = setInterval(pollStats, 1000);
    }

    async function pollStats() {
      if (!pc) return;
      var report;
      try {
        report = await pc.getStats();
      } catch (e) {
        return;
      }
      var inbound = null;
      var pair = null;
      report.forEach(function (s) {
        if (s.type === 'inbound-rtp' && s.kind === 'video') inbound = s;
        if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
      });
      if (!inbound) return;
      var now = inbound.timestamp;
      var decoded = inbound.framesDecoded || 0;
      var fps = inbound.framesPerSecond;
      if (fps == null && last) fps = ((decoded - last.decoded) * 1000) / Math.max(1, now - last.at);
      last = { at: now, decoded: decoded };
      var rttMs = pair && pair.currentRoundTripTime != null ? pair.currentRoundTripTime * 1000 : null;
      // What the receiving side adds (half the round trip, jitter buffer, decode); capture and
      // encode on the host are not visible from here.
      var buffered = inbound.jitterBufferEmittedCount ? (inbound.jitterBufferDelay / inbound.jitterBufferEmittedCount) * 1000 : 0;
      var decode = decoded ? (inbound.totalDecodeTime / decoded) * 1000 : 0;
      try {
        onStats({
          fps: fps == null ? 0 : fps,
          framesDecoded: decoded,
          framesReceived: inbound.framesReceived || 0,
          packetsLost: inbound.packetsLost || 0,
          rttMs: rttMs,
          latencyMs: (rttMs || 0) / 2 + buffered + decode,
          width: inbound.frameWidth || 0,
          height: inbound.frameHeight || 0,
          codec: state.codec,
        });
      } catch (e) {
        console.error(e);
      }
    }

    function shutdown() {
      if (statsTimer) clearInterval(statsTimer);
      statsTimer = null;
      if (pc) {
        try {
          pc.close();
        } catch (e) {
          /* already closed */
        }
      }
      dc = null;
    }

    function sendInput(bytes) {
      if (!dc || dc.readyState !== 'open') return false;
      dc.send(bytes);
      return true;
    }

    return {
      get pc() {
        return pc;
      },
      get state() {
        return Object.assign({}, state);
      },
      sendPointer: function (x, y, buttons) {
        var b = new DataView(new ArrayBuffer(6));
        b.setUint8(0, POINTER);
        b.setUint16(1, clamp(x, 0, 0xffff));
        b.setUint16(3, clamp(y, 0, 0xffff));
        b.setUint8(5, clamp(buttons, 0, 0xff));
        return sendInput(b.buffer);
      },
      sendWheel: function (x, y, dx, dy) {
        var b = new DataView(new ArrayBuffer(7));
        b.setUint8(0, WHEEL);
        b.setUint16(1, clamp(x, 0, 0xffff));
        b.setUint16(3, clamp(y, 0, 0xffff));
        b.setInt8(5, clamp(dx, -MAX_NOTCHES, MAX_NOTCHES));
        b.setInt8(6, clamp(dy, -MAX_NOTCHES, MAX_NOTCHES));
        return sendInput(b.buffer);
      },
      sendKey: function (keysym, down) {
        var b = new DataView(new ArrayBuffer(6));
        b.setUint8(0, KEY);
        b.setUint32(1, clamp(keysym, 0, 0x1fffffff));
        b.setUint8(5, down ? 1 : 0);
        return sendInput(b.buffer);
      },
      sendPaste: function (text) {
        var bytes = new TextEncoder().encode(String(text));
        if (bytes.length > MAX_PASTE || !dc || dc.readyState !== 'open') return false;
        var i = 0;
        do {
          var part = bytes.subarray(i, i + PASTE_CHUNK);
          var msg = new Uint8Array(2 + part.length);
          msg[0] = PASTE;
          msg[1] = i + PASTE_CHUNK >= bytes.length ? PASTE_LAST : 0;
          msg.set(part, 2);
          dc.send(msg.buffer);
          i += PASTE_CHUNK;
        } while (i < bytes.length);
        return true;
      },
      sendHandoff: function (outcome) {
        send({ type: 'handoff', outcome: outcome });
      },
      /** Client coordinates -> framebuffer pixels, for a video shown with object-fit: contain (the default). */
      videoPoint: function (clientX, clientY) {
        var w = videoEl.videoWidth;
        var h = videoEl.videoHeight;
        if (!w || !h) return null;
        var r = videoEl.getBoundingClientRect();
        var scale = Math.min(r.width / w, r.height / h);
        var left = r.left + (r.width - w * scale) / 2;
        var top = r.top + (r.height - h * scale) / 2;
        var x = (clientX - left) / scale;
        var y = (clientY - top) / scale;
        if (x < 0 || y < 0 || x >= w || y >= h) return null;
        return { x: Math.floor(x), y: Math.floor(y) };
      },
      close: function () {
        if (closed) return;
        closed = true;
        shutdown();
        try {
          ws.close(1000, 'viewer closed');
        } catch (e) {
          /* already closed */
        }
        videoEl.srcObject = null;
      },
    };
  }

  window.HandoffWebRTC = { connect: connect };
})();
