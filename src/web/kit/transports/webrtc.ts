// The WebRTC transport: the daemon's WebRTC client (/assets/kit-webrtc.js, loaded once per page)
// on a <video>; falls back to the screencast when it cannot connect.
import { h } from '../dom.js';
import { fitter } from '../input.js';
import { MAX_PASTE } from '../util.js';
import type { HandoffWebRTC, RtcHandle, RtcState } from '../../webrtc/client.js';
import type { FocusHint, Link, TransportContext } from '../types.js';

/** A WebRTC viewer with no picture by then falls back to the screencast. */
const MEDIA_TIMEOUT_MS = 15000;
/** WebRTC close codes -> error codes, for a close that came without an error message. */
const RTC_CLOSE_CODES: Record<number, string> = { 4001: 'unauthorized', 4029: 'too_many_viewers', 4003: 'network_not_allowed', 1011: 'connection_failed' };

let client: Promise<HandoffWebRTC> | null = null; // window.HandoffWebRTC, loaded once per page

/** Loads the daemon's WebRTC client into the page, once; a failed load may be tried again. */
function loadWebRTC(origin: string): Promise<HandoffWebRTC> {
  const w = window as unknown as { HandoffWebRTC?: HandoffWebRTC };
  if (w.HandoffWebRTC) return Promise.resolve(w.HandoffWebRTC);
  client = client || new Promise<HandoffWebRTC>((resolve, reject) => {
    const script = h('script', {
      src: origin + '/assets/kit-webrtc.js',
      onload: () => resolve(w.HandoffWebRTC!),
      onerror: () => {
        client = null;
        script.remove();
        reject(new Error('could not load ' + script.src));
      },
    });
    document.head.append(script);
  });
  return client;
}

export function webrtc(ctx: TransportContext): Link {
  const cred = ctx.credentials;
  if (!cred.rtcPassword) {
    askCredentials(ctx, 'This session’s WebRTC password is needed.');
    return { close() {} };
  }
  const video = h('video', {
    class: 'hk-surface', tabindex: '0', role: 'application', 'data-handoff-surface': true, 'aria-label': 'Remote browser screen',
    muted: true, autoplay: true, playsinline: true,
  });
  ctx.stage.replaceChildren(video);
  const fit = fitter(ctx.stage, video, () => [video.videoWidth || ctx.info.width || 1280, video.videoHeight || ctx.info.height || 720]);
  video.addEventListener('resize', fit);
  let handle: RtcHandle | null = null;
  let canControl = false;
  let endedReason = '';
  const noMedia = window.setTimeout(() => {
    if (ctx.current()) ctx.fallBack('WebRTC sent no picture within ' + MEDIA_TIMEOUT_MS / 1000 + ' s.');
  }, MEDIA_TIMEOUT_MS);
  video.addEventListener('loadeddata', () => {
    clearTimeout(noMedia);
    ctx.connected();
  });
  const input = ctx.input(video, {
    canControl: () => canControl,
    point: (x, y) => handle!.videoPoint(x, y),
    pointer: (x, y, buttons) => handle!.sendPointer(x, y, buttons),
    wheel: (x, y, dx, dy) => handle!.sendWheel(x, y, dx, dy),
    key: (keysym, down) => handle!.sendKey(keysym, down),
    paste(text) {
      if (new Blob([text]).size > MAX_PASTE) return false;
      handle!.sendPaste(text);
      return true;
    },
  });

  function onState(s: RtcState): void {
    if (!ctx.current()) return;
    if (s.phase === 'ended') return ctx.finish('ended', 'The session has ended' + (endedReason ? ': ' + endedReason : '') + '.');
    if (s.phase === 'error') return failed(s.error && s.error.code !== 'closed' ? s.error.code : RTC_CLOSE_CODES[s.closeCode ?? 0]);
    if (canControl && !s.canControl) input.release();
    canControl = s.canControl;
    ctx.update({ state: s.phase, canControl, attachment: s.attachment, handoff: s.handoff || null, viewers: s.viewers || null, codec: s.codec, media: s.connection, message: '' });
    if (typeof s.downloads === 'number') ctx.downloadsChanged(s.downloads);
  }

  function failed(code: string | undefined): void {
    if (code === 'unauthorized') {
      ctx.closeLink();
      return askCredentials(ctx, 'Wrong user name or password for WebRTC. Try again.');
    }
    if (code === 'too_many_viewers') return ctx.fallBack('WebRTC already has as many viewers as it allows.');
    if (code === 'connection_failed') return ctx.fallBack('WebRTC could not connect.');
    if (code === 'network_not_allowed') return ctx.finish('error', 'This network may not view the session.');
    ctx.retry('Connection lost.');
  }

  /** The session's pages, as on the screencast (the state's tabs, copies, file answers). */
  function onMessage(msg: Record<string, any>): void {
    if (!ctx.current()) return;
    if (msg.type === 'ended') endedReason = msg.reason || '';
    else if (msg.type === 'state') ctx.pages.state(msg.tabs || [], msg.fileRequest || null);
    else if (msg.type === 'clipboard') ctx.pages.clipboard(msg.text);
    else if (msg.type === 'focus') ctx.pages.focus(msg as FocusHint);
    else if (msg.type === 'file_done' || (msg.type === 'error' && msg.request)) ctx.pages.fileAnswer(msg as { type: string });
  }

  async function start(): Promise<void> {
    let rtc: HandoffWebRTC;
    try {
      if (!window.RTCPeerConnection) throw new Error('no RTCPeerConnection');
      rtc = await loadWebRTC(ctx.ep.origin);
    } catch (e) {
      if (ctx.current()) ctx.fallBack('This browser cannot use WebRTC here (' + (e as Error).message + ').');
      return;
    }
    if (!ctx.current()) return;
    handle = rtc.connect(video, ctx.ep.ws + '/webrtc', {
      username: cred.rtcUsername || undefined,
      password: cred.rtcPassword,
      onState,
      onStats: (st) => { if (ctx.current()) ctx.update({ fps: Math.round(st.fps), latencyMs: Math.round(st.latencyMs) }); },
      onMessage,
    });
  }

  start();
  return {
    sendHandoff: (outcome) => { if (handle) handle.sendHandoff(outcome); },
    page: { send: (msg) => { if (handle) handle.sendMessage(msg); }, buffered: () => (handle ? handle.buffered() : 0) },
    close() {
      clearTimeout(noMedia);
      input.stop();
      fit.stop();
      if (handle) handle.close();
    },
  };
}

/** Asks for the session's rtc_username / rtc_password over the picture, then connects with them. */
function askCredentials(ctx: TransportContext, message: string): void {
  const cred = ctx.credentials;
  ctx.stage.replaceChildren();
  const user = h('input', { type: 'text', class: 'hk-input', autocomplete: 'username', value: cred.rtcUsername, placeholder: 'if the session has one', 'aria-label': 'WebRTC user name' });
  const pass = h('input', { type: 'password', class: 'hk-input', autocomplete: 'current-password', required: true, 'aria-label': 'WebRTC password' });
  const form = h('form', {
    class: 'hk-form hk-form-rows',
    onsubmit: (ev: Event) => {
      ev.preventDefault();
      cred.rtcUsername = user.value;
      cred.rtcPassword = pass.value;
      ctx.reconnect();
    },
  }, [
    h('label', {}, ['User name', user]),
    h('label', {}, ['Password', pass]),
    h('button', { type: 'submit', class: 'hk-btn hk-primary', text: 'Connect' }),
  ]);
  ctx.update({ state: 'connecting', message }, form);
  pass.focus();
}
