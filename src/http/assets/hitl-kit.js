/*
 * handoff viewer kit (API.md 5): a drop-in live viewer for a handoff session.
 *
 *   <script src="http://HOST/hitl-kit.js"></script>
 *   const viewer = HandoffKit.mount(element, { url: 'http://HOST/live/TOKEN', transport: 'screencast' });
 *   viewer.on('state', (s) => console.log(s.state));   // also a `handoff-state` event on element
 *   viewer.setTransport('vnc'); viewer.disconnect();
 *
 * Public DOM hooks: the viewer root has data-handoff-state (connecting, live, view-only, ended,
 * expired, error) and data-transport; the drawing surface has data-handoff-surface.
 * Give `element` a size: the picture is scaled to fit it, keeping its aspect ratio.
 * Screencast speaks docs/screencast-protocol.md. WebRTC loads the daemon's /assets/kit-webrtc.js
 * (once per page) and falls back to the screencast, saying so, when it cannot connect; VNC and
 * WebRTC ask for their credentials in the page unless `password` (and `username`) are given.
 */
(function (global) {
  'use strict';

  // ---------------------------------------------------------------- pure helpers (HandoffKit.util)

  /** KeyboardEvent.key -> X keysym for keys that are not characters (X11 keysymdef.h). */
  const NAMED_KEYS = {
    Backspace: 0xff08, Tab: 0xff09, Enter: 0xff0d, Pause: 0xff13, ScrollLock: 0xff14, Escape: 0xff1b,
    Home: 0xff50, ArrowLeft: 0xff51, ArrowUp: 0xff52, ArrowRight: 0xff53, ArrowDown: 0xff54,
    PageUp: 0xff55, PageDown: 0xff56, End: 0xff57, PrintScreen: 0xff61, Insert: 0xff63,
    ContextMenu: 0xff67, NumLock: 0xff7f, Delete: 0xffff, CapsLock: 0xffe5, AltGraph: 0xfe03,
    Shift: 0xffe1, Control: 0xffe3, Alt: 0xffe9, Meta: 0xffeb, OS: 0xffeb, Super: 0xffeb, Hyper: 0xffed,
  };
  /** The right-hand modifiers, told apart by KeyboardEvent.code. */
  const RIGHT_MODIFIERS = { ShiftRight: 0xffe2, ControlRight: 0xffe4, AltRight: 0xffea, MetaRight: 0xffec, OSRight: 0xffec };

  /** X keysym for a KeyboardEvent's key (and code), or null for keys not sent (dead keys, IME). */
  function keysymOf(key, code) {
    if (typeof key !== 'string' || key === '') return null;
    if (key in NAMED_KEYS) {
      return NAMED_KEYS[key] >= 0xffe1 && code in RIGHT_MODIFIERS ? RIGHT_MODIFIERS[code] : NAMED_KEYS[key];
    }
    const f = /^F([1-9]|[12]\d|3[0-5])$/.exec(key);
    if (f) return 0xffbe + Number(f[1]) - 1; // F1..F35
    const cp = key.codePointAt(0);
    if (key.length !== (cp > 0xffff ? 2 : 1)) return null; // a name such as "Dead" or "Process"
    if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return null; // control characters
    return cp <= 0xff ? cp : 0x01000000 | cp; // Latin-1 keysyms are the code points; Unicode keysyms
  }

  /** A point on the scaled surface (client coordinates) -> framebuffer pixel, clamped to the screen. */
  function toFramebuffer(clientX, clientY, rect, width, height) {
    const clamp = (v, max) => Math.min(max - 1, Math.max(0, Math.floor(v)));
    return {
      x: clamp(((clientX - rect.left) / rect.width) * width, width),
      y: clamp(((clientY - rect.top) / rect.height) * height, height),
    };
  }

  /** DOM MouseEvent.buttons (1 left, 2 right, 4 middle) -> RFB mask (1 left, 2 middle, 4 right). */
  function rfbButtons(domButtons) {
    return (domButtons & 1) | ((domButtons & 4) >> 1) | ((domButtons & 2) << 1);
  }

  const WHEEL_STEP_PX = 50;
  const WHEEL_MODE_PX = [1, 19, 400]; // deltaMode pixel, line, page

  /**
   * Wheel deltas -> notches, one axis: accumulates small (touchpad) deltas and gives at most one
   * notch per event, so a mouse notch is one notch whatever pixel size the platform reports.
   */
  function wheelStep(acc, delta, deltaMode) {
    let next = Math.sign(acc) === -Math.sign(delta) ? 0 : acc; // a change of direction starts over
    next += delta * (WHEEL_MODE_PX[deltaMode] || 1);
    if (Math.abs(next) < WHEEL_STEP_PX) return { acc: next, notch: 0 };
    return { acc: 0, notch: Math.sign(next) };
  }

  /** Reconnect delay in ms after `attempt` consecutive failures: 0.5 s doubling up to 10 s. */
  function backoffDelay(attempt) {
    return Math.min(10000, 500 * Math.pow(2, Math.max(0, attempt)));
  }

  /** The largest paste a transport carries (its UTF-8 bytes). */
  const MAX_PASTE = 1024 * 1024;
  /** A WebRTC viewer with no picture by then falls back to the screencast. */
  const MEDIA_TIMEOUT_MS = 15000;
  /** WebRTC close codes -> error codes, for a close that came without an error message. */
  const RTC_CLOSE_CODES = { 4001: 'unauthorized', 4029: 'too_many_viewers', 4003: 'network_not_allowed', 1011: 'connection_failed' };

  const TILE_HEADER = 14;

  /** The 14-byte big-endian tile header of a binary screencast message, or null if malformed. */
  function parseTile(buffer) {
    if (!buffer || !(buffer.byteLength > TILE_HEADER)) return null;
    const v = new DataView(buffer);
    const kind = v.getUint8(0);
    if (kind !== 1 && kind !== 2) return null;
    return {
      kind,
      seq: v.getUint32(1),
      x: v.getUint16(5),
      y: v.getUint16(7),
      width: v.getUint16(9),
      height: v.getUint16(11),
      jpeg: new Uint8Array(buffer, TILE_HEADER),
    };
  }

  /** `http://HOST/live/TOKEN[/...][?...]` -> the page base, the WebSocket base and the origin. */
  function liveEndpoints(url) {
    const u = new URL(url, global.location ? global.location.href : undefined);
    const m = /^\/live\/[^/]+/.exec(u.pathname);
    if (!m || !/^https?:$/.test(u.protocol)) throw new Error('HandoffKit: url must be a live view URL http(s)://HOST/live/TOKEN');
    const base = u.origin + m[0];
    return { origin: u.origin, base, ws: base.replace(/^http/, 'ws') };
  }

  // ---------------------------------------------------------------- DOM helpers

  function h(tag, attrs, children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (v !== false && v != null) el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children || []) if (c) el.append(c);
    return el;
  }

  let webrtcClient = null; // the promise of window.HandoffWebRTC, loaded once per page

  /** Loads the daemon's WebRTC client (kit-webrtc.js) into the page, once; a failed load may be tried again. */
  function loadWebRTC(origin) {
    if (global.HandoffWebRTC) return Promise.resolve(global.HandoffWebRTC);
    webrtcClient = webrtcClient || new Promise((resolve, reject) => {
      const script = h('script', {
        src: origin + '/assets/kit-webrtc.js',
        onload: () => resolve(global.HandoffWebRTC),
        onerror: () => {
          webrtcClient = null;
          script.remove();
          reject(new Error('could not load ' + script.src));
        },
      });
      document.head.append(script);
    });
    return webrtcClient;
  }

  function ensureStyles(origin) {
    if (document.querySelector('link[data-handoff-kit]')) return;
    document.head.append(h('link', { rel: 'stylesheet', href: origin + '/assets/style.css', 'data-handoff-kit': true }));
  }

  const STATE_TEXT = {
    connecting: 'Connecting…', live: 'You have control', 'view-only': 'View only',
    ended: 'Session ended', expired: 'Link expired', error: 'Not connected',
  };
  const TRANSPORT_TEXT = { screencast: 'Screencast', vnc: 'VNC', webrtc: 'WebRTC' };

  function formatSize(n) {
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KB';
    return (n / 1024 / 1024).toFixed(1) + ' MB';
  }

  // ---------------------------------------------------------------- the viewer

  function mount(element, options) {
    if (!(element instanceof Element)) throw new Error('HandoffKit.mount: element is required');
    const opts = Object.assign({ transport: 'screencast' }, options);
    if (!TRANSPORT_TEXT[opts.transport]) throw new Error('HandoffKit.mount: unknown transport ' + opts.transport);
    const ep = liveEndpoints(opts.url);
    ensureStyles(ep.origin);

    const listeners = {};
    const status = {
      state: 'connecting', transport: opts.transport, sessionId: null, attachment: null,
      canControl: false, handoff: null, viewers: null, fps: 0, message: '',
      fallback: '', // why the screencast shows in place of the transport asked for
      codec: null, media: null, latencyMs: null, // WebRTC: the codec, the peer connection's state, the measured latency
    };
    let info = null;
    let link = null; // the open transport: { close() }
    let generation = 0; // bumps on every (re)connect; stale callbacks compare and bail out
    let attempt = 0;
    let retryTimer = 0;
    let downloadsSeen; // the count the list was last fetched for
    let answered = null; // the handoff id Done / Can't do it was pressed for
    let vncPassword = opts.password || '';
    let rtcUsername = opts.username || '';
    let rtcPassword = opts.password || '';

    // --- layout
    const tabs = h('div', { class: 'hk-tabs', role: 'group', 'aria-label': 'Transport' });
    const stateEl = h('span', { class: 'hk-state' });
    const detailEl = h('span', { class: 'hk-detail' });
    const reasonEl = h('p', { class: 'hk-reason' });
    const doneBtn = h('button', { type: 'button', class: 'hk-btn hk-primary', text: 'Done', onclick: () => finishHandoff('done') });
    const failBtn = h('button', { type: 'button', class: 'hk-btn', text: 'Can’t do it', onclick: () => finishHandoff('failed') });
    const banner = h('section', { class: 'hk-banner', 'aria-label': 'Request for help', hidden: true }, [
      reasonEl, h('div', { class: 'hk-actions' }, [doneBtn, failBtn]),
    ]);
    const fallbackEl = h('p', { class: 'hk-fallback', role: 'status', hidden: true });
    const stage = h('div', { class: 'hk-stage' });
    const notice = h('div', { class: 'hk-notice', role: 'status', 'aria-live': 'polite', hidden: true });
    const downloadsList = h('ul', { class: 'hk-files' });
    const downloads = h('details', { class: 'hk-downloads', hidden: true }, [h('summary', { text: 'Downloads' }), downloadsList]);
    const root = h('div', { class: 'hk', 'data-handoff-state': status.state, 'data-transport': status.transport }, [
      h('header', { class: 'hk-bar' }, [tabs, h('p', { class: 'hk-status' }, [stateEl, detailEl])]),
      banner,
      fallbackEl,
      h('div', { class: 'hk-view' }, [stage, notice]),
      downloads,
    ]);
    element.replaceChildren(root);

    // --- status and events
    function emit(name, detail) {
      for (const cb of listeners[name] || []) {
        try { cb(detail); } catch (e) { setTimeout(() => { throw e; }); }
      }
    }

    /** Applies a status change; a `message` is shown over the picture, with `extra` controls (a form, a button). */
    function update(patch, extra) {
      const before = status.state + '/' + status.transport;
      Object.assign(status, patch);
      root.dataset.handoffState = status.state;
      root.dataset.transport = status.transport;
      if ('message' in patch) {
        notice.replaceChildren(...(status.message ? [h('p', { text: status.message })] : []), ...(extra ? [extra] : []));
        notice.hidden = !status.message;
      }
      render();
      const snapshot = Object.assign({}, status);
      emit('status', snapshot);
      if (before !== status.state + '/' + status.transport) {
        emit('state', snapshot);
        if (typeof opts.onStateChange === 'function') opts.onStateChange(snapshot);
        element.dispatchEvent(new CustomEvent('handoff-state', { detail: snapshot }));
      }
    }

    function render() {
      stateEl.textContent = STATE_TEXT[status.state];
      const over = status.state === 'ended' || status.state === 'expired';
      const viewing = status.state === 'live' || status.state === 'view-only';
      const parts = [];
      if (status.attachment && !over) parts.push('attached: ' + status.attachment);
      if (!over) parts.push(TRANSPORT_TEXT[status.transport] + (status.codec ? ' ' + status.codec : ''));
      if (status.transport === 'webrtc' && status.state === 'connecting' && status.media && status.media !== 'new') parts.push('media ' + status.media);
      if (status.transport !== 'vnc' && viewing) parts.push(status.fps + ' fps');
      if (status.latencyMs != null && viewing) parts.push('latency ' + status.latencyMs + ' ms');
      detailEl.textContent = parts.join(' · ');
      fallbackEl.textContent = status.fallback;
      fallbackEl.hidden = !status.fallback || over;
      const ho = status.handoff;
      banner.hidden = !ho || !viewing;
      if (ho) reasonEl.textContent = 'The agent asks for help: ' + ho.reason;
      doneBtn.disabled = failBtn.disabled = status.state !== 'live' || !ho || ho.id === answered;
      // A view link may watch a handoff but not answer it (the daemon refuses it too).
      doneBtn.hidden = failBtn.hidden = !!status.viewLink;
      tabs.hidden = over;
      for (const b of tabs.children) b.setAttribute('aria-pressed', String(b.dataset.transport === status.transport));
    }

    function renderTabs() {
      const available = ['screencast'];
      if (info.transports && info.transports.vnc) available.push('vnc');
      if (info.transports && info.transports.webrtc) available.push('webrtc');
      if (available.join() === Array.from(tabs.children, (b) => b.dataset.transport).join()) return;
      tabs.replaceChildren(...available.map((t) =>
        h('button', { type: 'button', class: 'hk-tab', 'data-transport': t, text: TRANSPORT_TEXT[t], onclick: () => setTransport(t) })));
      render();
    }

    // --- connection lifecycle
    function closeLink() {
      clearTimeout(retryTimer);
      if (link) link.close();
      link = null;
      generation++;
    }

    /** A final state: no reconnect. */
    function finish(state, message) {
      closeLink();
      stage.replaceChildren();
      update({ state, message, fps: 0, handoff: null, canControl: false });
    }

    function retry(message) {
      closeLink();
      const delay = backoffDelay(attempt++);
      const gen = generation;
      update({ state: 'connecting', fps: 0, message: message + ' Reconnecting in ' + Math.ceil(delay / 1000) + ' s…' });
      retryTimer = setTimeout(() => { if (gen === generation) connect(); }, delay);
    }

    async function connect() {
      closeLink();
      const gen = generation;
      update({ state: 'connecting', message: '', fps: 0, codec: null, media: null, latencyMs: null });
      let res;
      try {
        res = await fetch(ep.base + '/info', { cache: 'no-store' });
      } catch (e) {
        if (gen === generation) retry('Cannot reach the host.');
        return;
      }
      if (gen !== generation) return;
      if (res.status === 410) return finish('expired', 'This live view link has expired. Ask for a new one.');
      if (res.status === 404) {
        // A made-up or revoked link is not an ended session: the error code tells them apart.
        const body = await res.json().catch(() => null);
        if (gen !== generation) return;
        if (!body || !body.error || body.error.code !== 'session_not_found') return finish('error', 'This live view link is not valid. Ask for a new one.');
        return finish('ended', 'The session has ended.');
      }
      if (res.status === 403) return finish('error', 'This network may not view the session.');
      if (!res.ok) return retry('The host answered ' + res.status + '.');
      info = await res.json().catch(() => null);
      if (gen !== generation) return;
      if (!info) return retry('The host sent an unreadable answer.');
      renderTabs();
      applyInfo(info);
      if (status.transport !== 'screencast' && !(info.transports && info.transports[status.transport])) {
        return fallBack(TRANSPORT_TEXT[status.transport] + ' is not enabled for this session.');
      }
      link = TRANSPORTS[status.transport](gen);
    }

    function applyInfo(i) {
      update({ sessionId: i.sessionId, attachment: i.attachment, handoff: i.handoff || null, viewLink: i.link === 'view' });
      // Without a count in info (the lead may add one), every info read refreshes the list.
      if (typeof i.downloads !== 'number' || i.downloads !== downloadsSeen) refreshDownloads(i.downloads);
    }

    function setTransport(t) {
      if (!TRANSPORT_TEXT[t]) throw new Error('HandoffKit: unknown transport ' + t);
      if (status.state === 'ended' || status.state === 'expired') return;
      attempt = 0;
      update({ transport: t, fallback: '' });
      connect();
    }

    /** Shows the screencast in place of the transport asked for, saying why until another one is picked. */
    function fallBack(reason) {
      setTransport('screencast');
      update({ fallback: reason + ' Showing the screencast instead.' });
    }

    // --- downloads and handoff buttons (shared by every transport)
    async function refreshDownloads(count) {
      downloadsSeen = count;
      let files;
      try {
        const res = await fetch(ep.base + '/downloads', { cache: 'no-store' });
        if (!res.ok) return;
        files = (await res.json()).files || [];
      } catch (e) {
        return;
      }
      downloads.hidden = files.length === 0;
      downloads.querySelector('summary').textContent = 'Downloads (' + files.length + ')';
      downloadsList.replaceChildren(...files.map((f) => h('li', {}, [
        h('a', { href: ep.base + '/downloads/' + encodeURIComponent(f.name), download: f.name, text: f.name }),
        h('span', { class: 'hk-size', text: formatSize(f.size) }),
      ])));
      emit('downloads', files);
    }

    async function finishHandoff(outcome) {
      answered = status.handoff && status.handoff.id;
      render();
      if (link && link.sendHandoff) return link.sendHandoff(outcome);
      try {
        const res = await fetch(ep.base + '/handoff', {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ outcome }),
        });
        if (!res.ok) throw new Error('HTTP ' + res.status);
        update({ handoff: null });
      } catch (e) {
        answered = null;
        update({ message: 'Could not send the answer (' + e.message + '). Try again.' });
      }
    }

    // ---------------------------------------------------------------- transports
    const TRANSPORTS = {
      screencast(gen) {
        const ws = new WebSocket(ep.ws + '/screencast');
        ws.binaryType = 'arraybuffer';
        const canvas = h('canvas', { class: 'hk-surface', tabindex: '0', role: 'application', 'data-handoff-surface': true, 'aria-label': 'Remote browser screen' });
        canvas.width = info.width || 1280;
        canvas.height = info.height || 720;
        const ctx = canvas.getContext('2d');
        stage.replaceChildren(canvas);
        const fit = fitter(canvas, () => [canvas.width, canvas.height]);

        let canControl = false;
        let drawing = Promise.resolve();
        let frames = 0;
        let endedReason = '';
        const sendText = (text) => { if (ws.readyState === WebSocket.OPEN) ws.send(text); };
        const send = (msg) => sendText(JSON.stringify(msg));
        const fpsTimer = setInterval(() => { if (status.fps !== frames) update({ fps: frames }); frames = 0; }, 1000);
        const input = controlInput(canvas, {
          canControl: () => canControl,
          point: (x, y) => toFramebuffer(x, y, canvas.getBoundingClientRect(), canvas.width, canvas.height),
          pointer: (x, y, buttons) => send({ type: 'pointer', x, y, buttons }),
          wheel: (x, y, dx, dy) => send({ type: 'wheel', x, y, dx, dy }),
          key: (keysym, down) => send({ type: 'key', keysym, down }),
          paste(text) {
            const msg = JSON.stringify({ type: 'paste', text });
            if (new Blob([msg]).size > MAX_PASTE) return false;
            sendText(msg);
            return true;
          },
        });

        ws.onmessage = (ev) => {
          if (gen !== generation) return;
          if (typeof ev.data !== 'string') return drawTile(parseTile(ev.data));
          let msg;
          try { msg = JSON.parse(ev.data); } catch (e) { return; }
          if (msg.type === 'hello') {
            attempt = 0;
            if (msg.width !== canvas.width || msg.height !== canvas.height) {
              canvas.width = msg.width;
              canvas.height = msg.height;
              fit();
            }
          } else if (msg.type === 'state') {
            canControl = !!msg.canControl;
            if (!canControl) input.release();
            update({ state: canControl ? 'live' : 'view-only', canControl, attachment: msg.attachment, handoff: msg.handoff || null, viewers: msg.viewers || null, message: '' });
            if (typeof msg.downloads === 'number' && msg.downloads !== downloadsSeen) refreshDownloads(msg.downloads);
          } else if (msg.type === 'ended') {
            endedReason = msg.reason || '';
          } else if (msg.type === 'error') {
            update({ message: 'The host refused the viewer: ' + (msg.message || msg.code) });
          }
        };
        ws.onclose = (ev) => {
          if (gen !== generation) return;
          if (ev.code === 4000) finish('ended', 'The session has ended' + (endedReason || ev.reason ? ': ' + (endedReason || ev.reason) : '') + '.');
          else retry(ev.code === 1008 || ev.code === 1009 ? 'The connection was refused (' + (ev.reason || ev.code) + ').' : 'Connection lost.');
        };

        // Tiles decode in parallel and draw in order; the frame is acked once its last tile is drawn,
        // even if a tile fails to decode, so the server never waits for us forever.
        function drawTile(t) {
          if (!t) return;
          const bitmap = createImageBitmap(new Blob([t.jpeg], { type: 'image/jpeg' }));
          drawing = drawing
            .then(() => bitmap)
            .then((b) => { ctx.drawImage(b, t.x, t.y); b.close(); })
            .catch(() => {})
            .then(() => {
              if (t.kind !== 2 || gen !== generation) return;
              send({ type: 'ack', seq: t.seq });
              frames++;
            });
        }

        return {
          sendHandoff: (outcome) => send({ type: 'handoff', outcome }),
          close() {
            input.stop();
            clearInterval(fpsTimer);
            fit.stop();
            ws.onclose = ws.onmessage = null;
            ws.close(1000);
          },
        };
      },

      vnc(gen) {
        let rfb = null;
        let authFailed = false;
        // Without a state channel, the status (attachment, handoff, downloads) comes from polling info.
        const poll = setInterval(async () => {
          const res = await fetch(ep.base + '/info', { cache: 'no-store' }).catch(() => null);
          if (gen !== generation || !res) return;
          if (res.status === 404 || res.status === 410) return finish('ended', 'The session has ended.');
          const i = res.ok ? await res.json().catch(() => null) : null;
          if (!i || gen !== generation) return;
          info = i;
          applyInfo(i);
          if (rfb && status.state !== 'connecting') {
            rfb.viewOnly = !!i.viewOnly;
            update({ state: i.viewOnly ? 'view-only' : 'live', canControl: !i.viewOnly });
          }
        }, 3000);

        function askPassword(message, then) {
          const input = h('input', { type: 'password', class: 'hk-input', autocomplete: 'off', required: true, 'aria-label': 'VNC password' });
          const form = h('form', {
            class: 'hk-form',
            onsubmit: (ev) => {
              ev.preventDefault();
              vncPassword = input.value;
              then();
            },
          }, [h('label', {}, ['VNC password ', input]), h('button', { type: 'submit', class: 'hk-btn hk-primary', text: 'Connect' })]);
          update({ state: 'connecting', message }, form);
          input.focus();
        }

        async function start() {
          let RFB;
          try {
            RFB = (await import(ep.origin + '/assets/novnc/core/rfb.js')).default;
          } catch (e) {
            if (gen === generation) finish('error', 'Could not load the VNC client: ' + e.message);
            return;
          }
          if (gen !== generation) return;
          const screen = h('div', { class: 'hk-vnc' });
          stage.replaceChildren(screen);
          rfb = new RFB(screen, ep.ws + '/vnc', vncPassword ? { credentials: { password: vncPassword }, shared: true } : { shared: true });
          rfb.scaleViewport = true;
          rfb.viewOnly = !!info.viewOnly;
          const markSurface = () => { const c = screen.querySelector('canvas'); if (c) c.setAttribute('data-handoff-surface', ''); };
          markSurface();
          rfb.addEventListener('credentialsrequired', () =>
            askPassword('This session’s VNC password is needed.', () => {
              update({ message: '' });
              rfb.sendCredentials({ password: vncPassword });
            }));
          rfb.addEventListener('securityfailure', () => { authFailed = true; });
          rfb.addEventListener('connect', () => {
            if (gen !== generation) return;
            attempt = 0;
            markSurface();
            update({ state: info.viewOnly ? 'view-only' : 'live', canControl: !info.viewOnly, message: '' });
          });
          rfb.addEventListener('disconnect', () => {
            if (gen !== generation) return;
            rfb = null;
            if (!authFailed) return retry('Connection lost.');
            authFailed = false;
            vncPassword = '';
            askPassword('Wrong VNC password. Try again.', start);
          });
        }

        if (vncPassword) start();
        else askPassword('This session’s VNC password is needed.', start);
        return {
          close() {
            clearInterval(poll);
            const r = rfb;
            rfb = null;
            if (r) r.disconnect();
          },
        };
      },

      webrtc(gen) {
        if (!rtcPassword) {
          askRtcCredentials('This session’s WebRTC password is needed.');
          return { close() {} };
        }
        const video = h('video', {
          class: 'hk-surface', tabindex: '0', role: 'application', 'data-handoff-surface': true, 'aria-label': 'Remote browser screen',
          muted: true, autoplay: true, playsinline: true,
        });
        stage.replaceChildren(video);
        const fit = fitter(video, () => [video.videoWidth || info.width || 1280, video.videoHeight || info.height || 720]);
        video.addEventListener('resize', fit);
        let handle = null;
        let canControl = false;
        let endedReason = '';
        const noMedia = setTimeout(() => {
          if (gen === generation) fallBack('WebRTC sent no picture within ' + MEDIA_TIMEOUT_MS / 1000 + ' s.');
        }, MEDIA_TIMEOUT_MS);
        video.addEventListener('loadeddata', () => {
          clearTimeout(noMedia);
          attempt = 0;
        });
        const input = controlInput(video, {
          canControl: () => canControl,
          point: (x, y) => handle.videoPoint(x, y),
          pointer: (x, y, buttons) => handle.sendPointer(x, y, buttons),
          wheel: (x, y, dx, dy) => handle.sendWheel(x, y, dx, dy),
          key: (keysym, down) => handle.sendKey(keysym, down),
          paste(text) {
            if (new Blob([text]).size > MAX_PASTE) return false;
            handle.sendPaste(text);
            return true;
          },
        });

        function onState(s) {
          if (gen !== generation) return;
          if (s.phase === 'ended') return finish('ended', 'The session has ended' + (endedReason ? ': ' + endedReason : '') + '.');
          if (s.phase === 'error') return failed(s.error && s.error.code !== 'closed' ? s.error.code : RTC_CLOSE_CODES[s.closeCode]);
          if (canControl && !s.canControl) input.release();
          canControl = s.canControl;
          update({ state: s.phase, canControl, attachment: s.attachment, handoff: s.handoff || null, viewers: s.viewers || null, codec: s.codec, media: s.connection, message: '' });
          if (typeof s.downloads === 'number' && s.downloads !== downloadsSeen) refreshDownloads(s.downloads);
        }

        function failed(code) {
          if (code === 'unauthorized') {
            closeLink();
            return askRtcCredentials('Wrong user name or password for WebRTC. Try again.');
          }
          if (code === 'too_many_viewers') return fallBack('WebRTC already has as many viewers as it allows.');
          if (code === 'connection_failed') return fallBack('WebRTC could not connect.');
          if (code === 'network_not_allowed') return finish('error', 'This network may not view the session.');
          retry('Connection lost.');
        }

        async function start() {
          let client;
          try {
            if (!global.RTCPeerConnection) throw new Error('no RTCPeerConnection');
            client = await loadWebRTC(ep.origin);
          } catch (e) {
            if (gen === generation) fallBack('This browser cannot use WebRTC here (' + e.message + ').');
            return;
          }
          if (gen !== generation) return;
          handle = client.connect(video, ep.ws + '/webrtc', {
            username: rtcUsername || undefined,
            password: rtcPassword,
            onState,
            onStats: (st) => { if (gen === generation) update({ fps: Math.round(st.fps), latencyMs: Math.round(st.latencyMs) }); },
            onMessage: (msg) => { if (msg.type === 'ended') endedReason = msg.reason || ''; },
          });
        }

        start();
        return {
          sendHandoff: (outcome) => handle && handle.sendHandoff(outcome),
          close() {
            clearTimeout(noMedia);
            input.stop();
            fit.stop();
            if (handle) handle.close();
          },
        };
      },
    };

    /** Asks for the session's rtc_username / rtc_password over the picture, then connects with them. */
    function askRtcCredentials(message) {
      stage.replaceChildren();
      const user = h('input', { type: 'text', class: 'hk-input', autocomplete: 'username', value: rtcUsername, placeholder: 'if the session has one', 'aria-label': 'WebRTC user name' });
      const pass = h('input', { type: 'password', class: 'hk-input', autocomplete: 'current-password', required: true, 'aria-label': 'WebRTC password' });
      const form = h('form', {
        class: 'hk-form hk-form-rows',
        onsubmit: (ev) => {
          ev.preventDefault();
          rtcUsername = user.value;
          rtcPassword = pass.value;
          connect();
        },
      }, [
        h('label', {}, ['User name', user]),
        h('label', {}, ['Password', pass]),
        h('button', { type: 'submit', class: 'hk-btn hk-primary', text: 'Connect' }),
      ]);
      update({ state: 'connecting', message }, form);
      pass.focus();
    }

    /**
     * The viewer's mouse, wheel, keyboard and paste on `surface` -> `sink` calls in framebuffer
     * pixels, while sink.canControl(). sink: canControl(), point(clientX, clientY) -> {x, y} or
     * null, pointer(x, y, rfbButtons), wheel(x, y, dx, dy) in notches, key(keysym, down),
     * paste(text) -> false when it is too large. Returns release() (lets go of held keys and
     * buttons) and stop().
     */
    function controlInput(surface, sink) {
      const held = new Map(); // KeyboardEvent.code -> keysym sent down
      let last = { x: -1, y: -1, buttons: 0 };
      let wheel = { x: 0, y: 0 };

      /** Outside the picture, the last point: a button let go out there is still let go. */
      function point(ev) {
        return sink.point(ev.clientX, ev.clientY) || (last.x < 0 ? null : last);
      }

      function pointer(ev) {
        if (ev.type === 'pointerdown') {
          surface.focus({ preventScroll: true });
          ev.preventDefault(); // no text selection or drag from the page around us
          surface.setPointerCapture(ev.pointerId);
        }
        if (!sink.canControl()) return;
        const p = point(ev);
        if (p) sendPointer(p.x, p.y, rfbButtons(ev.buttons));
      }

      function sendPointer(x, y, buttons) {
        if (x === last.x && y === last.y && buttons === last.buttons) return;
        last = { x, y, buttons };
        sink.pointer(x, y, buttons);
      }

      function onWheel(ev) {
        ev.preventDefault();
        if (!sink.canControl()) return;
        const sx = wheelStep(wheel.x, ev.deltaX, ev.deltaMode);
        const sy = wheelStep(wheel.y, ev.deltaY, ev.deltaMode);
        wheel = { x: sx.acc, y: sy.acc };
        const p = point(ev);
        if ((sx.notch || sy.notch) && p) sink.wheel(p.x, p.y, sx.notch, sy.notch);
      }

      function keydown(ev) {
        if (!sink.canControl() || ev.isComposing) return;
        // Ctrl+V / Cmd+V: let the browser fire `paste`, which carries the local clipboard's text.
        if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && ev.key.toLowerCase() === 'v') return;
        const keysym = keysymOf(ev.key, ev.code);
        if (keysym === null) return;
        ev.preventDefault();
        held.set(ev.code || ev.key, keysym);
        sink.key(keysym, true);
      }

      function keyup(ev) {
        const id = ev.code || ev.key;
        const keysym = held.get(id); // release what was pressed, even if Shift changed the key since
        if (keysym === undefined) return;
        ev.preventDefault();
        held.delete(id);
        sink.key(keysym, false);
      }

      function release() {
        for (const keysym of held.values()) sink.key(keysym, false);
        held.clear();
        if (last.buttons) sendPointer(last.x, last.y, 0);
      }

      function onPaste(ev) {
        if (document.activeElement !== surface || !sink.canControl()) return;
        const text = ev.clipboardData ? ev.clipboardData.getData('text/plain') : '';
        ev.preventDefault();
        if (text && !sink.paste(text)) update({ message: 'That text is too large to paste (1 MiB at most).' });
      }

      for (const t of ['pointerdown', 'pointermove', 'pointerup']) surface.addEventListener(t, pointer);
      surface.addEventListener('wheel', onWheel, { passive: false });
      surface.addEventListener('contextmenu', (ev) => ev.preventDefault());
      surface.addEventListener('keydown', keydown);
      surface.addEventListener('keyup', keyup);
      surface.addEventListener('blur', release);
      document.addEventListener('paste', onPaste);
      return {
        release,
        stop() {
          release();
          document.removeEventListener('paste', onPaste);
        },
      };
    }

    /** Sizes `surface` to fit the stage keeping its aspect ratio; `fit()` again when the picture size changes. */
    function fitter(surface, size) {
      const fit = () => {
        const [w, hgt] = size();
        const scale = Math.min(stage.clientWidth / w, stage.clientHeight / hgt) || 0;
        surface.style.width = Math.floor(w * scale) + 'px';
        surface.style.height = Math.floor(hgt * scale) + 'px';
      };
      const ro = new ResizeObserver(fit);
      ro.observe(stage);
      fit.stop = () => ro.disconnect();
      return fit;
    }

    // --- the controller
    connect();
    return {
      setTransport,
      /** Closes the connection and removes the viewer from the element. */
      disconnect() {
        closeLink();
        root.remove();
        for (const k of Object.keys(listeners)) delete listeners[k];
      },
      /** Events: 'state' (state or transport changed), 'status' (anything shown changed), 'downloads'. Returns an unsubscribe function. */
      on(event, cb) {
        (listeners[event] = listeners[event] || []).push(cb);
        return () => { listeners[event] = (listeners[event] || []).filter((x) => x !== cb); };
      },
      get state() { return Object.assign({}, status); },
    };
  }

  global.HandoffKit = {
    mount,
    util: { keysymOf, toFramebuffer, rfbButtons, wheelStep, backoffDelay, parseTile, liveEndpoints },
  };
})(typeof window !== 'undefined' ? window : globalThis);
