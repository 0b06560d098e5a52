// The VNC transport: the daemon's noVNC (imported from /assets/novnc) over /live/TOKEN/vnc.
import { h } from '../dom.js';
import type { Link, TransportContext } from '../types.js';
import { frameClock } from '../quality.js';

/** The part of noVNC's RFB class used here. */
interface Rfb extends EventTarget {
  scaleViewport: boolean;
  viewOnly: boolean;
  sendCredentials(c: { password: string }): void;
  disconnect(): void;
}
type RfbClass = new (target: HTMLElement, url: string, options: Record<string, unknown>) => Rfb;

export function vnc(ctx: TransportContext): Link {
  let rfb: Rfb | null = null;
  let authFailed = false;
  const clock = frameClock((patch) => ctx.current() && ctx.update(patch), () => ctx.status);
  // Without a state channel, the status (attachment, handoff, downloads) comes from polling info.
  const poll = window.setInterval(async () => {
    const res = await fetch(ctx.ep.base + '/info', { cache: 'no-store' }).catch(() => null);
    if (!ctx.current() || !res) return;
    if (res.status === 404 || res.status === 410) return ctx.finish('ended', 'The session has ended.');
    const i = res.ok ? await res.json().catch(() => null) : null;
    if (!i || !ctx.current()) return;
    ctx.applyInfo(i);
    if (rfb && ctx.status.state !== 'connecting') {
      rfb.viewOnly = !!i.viewOnly;
      ctx.update({ state: i.viewOnly ? 'view-only' : 'live', canControl: !i.viewOnly });
    }
  }, 3000);

  function askPassword(message: string, then: () => void): void {
    const input = h('input', { type: 'password', class: 'hk-input', autocomplete: 'off', required: true, 'aria-label': 'VNC password' });
    const form = h('form', {
      class: 'hk-form',
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        ctx.credentials.vncPassword = input.value;
        then();
      },
    }, [h('label', {}, ['VNC password ', input]), h('button', { type: 'submit', class: 'hk-btn hk-primary', text: 'Connect' })]);
    ctx.update({ state: 'connecting', message }, form);
    input.focus();
  }

  async function start(): Promise<void> {
    let RFB: RfbClass;
    try {
      RFB = (await import(/* @vite-ignore */ ctx.ep.origin + '/assets/novnc/core/rfb.js')).default;
    } catch (e) {
      if (ctx.current()) ctx.finish('error', 'Could not load the VNC client: ' + (e as Error).message);
      return;
    }
    if (!ctx.current()) return;
    const screen = h('div', { class: 'hk-vnc' });
    ctx.stage.replaceChildren(screen);
    const password = ctx.credentials.vncPassword;
    const r = new RFB(screen, ctx.ep.ws + '/vnc', password ? { credentials: { password }, shared: true } : { shared: true });
    rfb = r;
    // noVNC has no frame event: its display's flip() ends each FramebufferUpdate (noVNC 1.7;
    // a later version without it just shows 0 fps). Queued flips (fromQueue) are the same frame.
    const display = (r as unknown as { _display?: { flip?: (fromQueue?: boolean) => void } })._display;
    const flip = display?.flip?.bind(display);
    if (display && flip) display.flip = (fromQueue?: boolean) => (fromQueue || clock.frame(), flip(fromQueue));
    for (const type of ['pointerdown', 'pointerup', 'pointermove', 'wheel', 'keydown', 'keyup']) {
      screen.addEventListener(type, () => { if (ctx.status.canControl) clock.input(); }, { capture: true, passive: true });
    }
    r.scaleViewport = true;
    r.viewOnly = !!ctx.info.viewOnly;
    const markSurface = () => { const c = screen.querySelector('canvas'); if (c) c.setAttribute('data-handoff-surface', ''); };
    markSurface();
    r.addEventListener('credentialsrequired', () =>
      askPassword('This session’s VNC password is needed.', () => {
        ctx.update({ message: '' });
        r.sendCredentials({ password: ctx.credentials.vncPassword });
      }));
    r.addEventListener('securityfailure', () => { authFailed = true; });
    r.addEventListener('connect', () => {
      if (!ctx.current()) return;
      ctx.connected();
      markSurface();
      ctx.update({ state: ctx.info.viewOnly ? 'view-only' : 'live', canControl: !ctx.info.viewOnly, message: '' });
    });
    r.addEventListener('disconnect', () => {
      if (!ctx.current()) return;
      rfb = null;
      if (!authFailed) return ctx.retry('Connection lost.');
      authFailed = false;
      ctx.credentials.vncPassword = '';
      askPassword('Wrong VNC password. Try again.', start);
    });
  }

  if (ctx.credentials.vncPassword) start();
  else askPassword('This session’s VNC password is needed.', start);
  return {
    close() {
      clearInterval(poll);
      clock.stop();
      const r = rfb;
      rfb = null;
      if (r) r.disconnect();
    },
  };
}
