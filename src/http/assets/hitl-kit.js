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
 * Screencast speaks docs/screencast-protocol.md.
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
    };
    let info = null;
    let link = null; // the open transport: { close() }
    let generation = 0; // bumps on every (re)connect; stale callbacks compare and bail out
    let attempt = 0;
    let retryTimer = 0;
    let downloadsSeen; // the count the list was last fetched for
    let answered = null; // the handoff id Done / Can't do it was pressed for
    let vncPassword = opts.password || '';

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
    const stage = h('div', { class: 'hk-stage' });
    const notice = h('div', { class: 'hk-notice', role: 'status', 'aria-live': 'polite', hidden: true });
    const downloadsList = h('ul', { class: 'hk-files' });
    const downloads = h('details', { class: 'hk-downloads', hidden: true }, [h('summary', { text: 'Downloads' }), downloadsList]);
    const root = h('div', { class: 'hk', 'data-handoff-state': status.state, 'data-transport': status.transport }, [
      h('header', { class: 'hk-bar' }, [tabs, h('p', { class: 'hk-status' }, [stateEl, detailEl])]),
      banner,
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
      if (!over) parts.push(TRANSPORT_TEXT[status.transport]);
      if (status.transport === 'screencast' && viewing) parts.push(status.fps + ' fps');
      detailEl.textContent = parts.join(' · ');
      const ho = status.handoff;
      banner.hidden = !ho || !viewing;
      if (ho) reasonEl.textContent = 'The agent asks for help: ' + ho.reason;
      doneBtn.disabled = failBtn.disabled = status.state !== 'live' || !ho || ho.id === answered;
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
      update({ state: 'connecting', message: '' });
      let res;
      try {
        res = await fetch(ep.base + '/info', { cache: 'no-store' });
      } catch (e) {
        if (gen === generation) retry('Cannot reach the host.');
        return;
      }
      if (gen !== generation) return;
      if (res.status === 410) return finish('expired', 'This live view link has expired. Ask for a new one.');
      if (res.status === 404) return finish('ended', 'The session has ended.');
      if (res.status === 403) return finish('error', 'This network may not view the session.');
      if (!res.ok) return retry('The host answered ' + res.status + '.');
      info = await res.json().catch(() => null);
      if (gen !== generation) return;
      if (!info) return retry('The host sent an unreadable answer.');
      renderTabs();
      applyInfo(info);
      link = TRANSPORTS[status.transport](gen);
    }

    function applyInfo(i) {
      update({ sessionId: i.sessionId, attachment: i.attachment, handoff: i.handoff || null });
      // Without a count in info (the lead may add one), every info read refreshes the list.
      if (typeof i.downloads !== 'number' || i.downloads !== downloadsSeen) refreshDownloads(i.downloads);
    }

    function setTransport(t) {
      if (!TRANSPORT_TEXT[t]) throw new Error('HandoffKit: unknown transport ' + t);
      if (status.state === 'ended' || status.state === 'expired') return;
      attempt = 0;
      update({ transport: t });
      connect();
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

        const held = new Map(); // KeyboardEvent.code -> keysym sent down
        let canControl = false;
        let lastPointer = { x: -1, y: -1, buttons: 0 };
        let wheel = { x: 0, y: 0 };
        let drawing = Promise.resolve();
        let frames = 0;
        let endedReason = '';
        const sendText = (text) => { if (ws.readyState === WebSocket.OPEN) ws.send(text); };
        const send = (msg) => sendText(JSON.stringify(msg));
        const fpsTimer = setInterval(() => { if (status.fps !== frames) update({ fps: frames }); frames = 0; }, 1000);

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
            if (!canControl) releaseKeys();
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

        function pointer(ev) {
          if (ev.type === 'pointerdown') {
            canvas.focus({ preventScroll: true });
            ev.preventDefault(); // no text selection or drag from the page around us
            canvas.setPointerCapture(ev.pointerId);
          }
          if (!canControl) return;
          const p = toFramebuffer(ev.clientX, ev.clientY, canvas.getBoundingClientRect(), canvas.width, canvas.height);
          sendPointer(p.x, p.y, rfbButtons(ev.buttons));
        }

        function sendPointer(x, y, buttons) {
          if (x === lastPointer.x && y === lastPointer.y && buttons === lastPointer.buttons) return;
          lastPointer = { x, y, buttons };
          send({ type: 'pointer', x, y, buttons });
        }

        function onWheel(ev) {
          ev.preventDefault();
          if (!canControl) return;
          const sx = wheelStep(wheel.x, ev.deltaX, ev.deltaMode);
          const sy = wheelStep(wheel.y, ev.deltaY, ev.deltaMode);
          wheel = { x: sx.acc, y: sy.acc };
          if (!sx.notch && !sy.notch) return;
          const p = toFramebuffer(ev.clientX, ev.clientY, canvas.getBoundingClientRect(), canvas.width, canvas.height);
          send({ type: 'wheel', x: p.x, y: p.y, dx: sx.notch, dy: sy.notch });
        }

        function keydown(ev) {
          if (!canControl || ev.isComposing) return;
          // Ctrl+V / Cmd+V: let the browser fire `paste`, which carries the local clipboard's text.
          if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && ev.key.toLowerCase() === 'v') return;
          const keysym = keysymOf(ev.key, ev.code);
          if (keysym === null) return;
          ev.preventDefault();
          held.set(ev.code || ev.key, keysym);
          send({ type: 'key', keysym, down: true });
        }

        function keyup(ev) {
          const id = ev.code || ev.key;
          const keysym = held.get(id); // release what was pressed, even if Shift changed the key since
          if (keysym === undefined) return;
          ev.preventDefault();
          held.delete(id);
          send({ type: 'key', keysym, down: false });
        }

        function releaseKeys() {
          for (const keysym of held.values()) send({ type: 'key', keysym, down: false });
          held.clear();
          if (lastPointer.buttons) sendPointer(lastPointer.x, lastPointer.y, 0);
        }

        function onPaste(ev) {
          if (document.activeElement !== canvas || !canControl) return;
          const text = ev.clipboardData ? ev.clipboardData.getData('text/plain') : '';
          ev.preventDefault();
          if (!text) return;
          const msg = JSON.stringify({ type: 'paste', text });
          if (new Blob([msg]).size > 1024 * 1024) return update({ message: 'That text is too large to paste (1 MiB at most).' });
          sendText(msg);
        }

        for (const t of ['pointerdown', 'pointermove', 'pointerup']) canvas.addEventListener(t, pointer);
        canvas.addEventListener('wheel', onWheel, { passive: false });
        canvas.addEventListener('contextmenu', (ev) => ev.preventDefault());
        canvas.addEventListener('keydown', keydown);
        canvas.addEventListener('keyup', keyup);
        canvas.addEventListener('blur', releaseKeys);
        document.addEventListener('paste', onPaste);

        return {
          sendHandoff: (outcome) => send({ type: 'handoff', outcome }),
          close() {
            releaseKeys();
            clearInterval(fpsTimer);
            fit.stop();
            document.removeEventListener('paste', onPaste);
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

      webrtc() {
        // The WebRTC viewer comes later; until then offer the screencast.
        const video = h('video', { class: 'hk-surface', 'data-handoff-surface': true, muted: true, playsinline: true });
        stage.replaceChildren(video);
        const use = h('button', { type: 'button', class: 'hk-btn hk-primary', text: 'Use the screencast', onclick: () => setTransport('screencast') });
        update({ state: 'error', message: 'WebRTC is not available yet.' }, use);
        return { close() {} };
      },
    };

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
