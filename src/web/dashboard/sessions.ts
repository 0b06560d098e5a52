// The session list: keyed cards, ordered (help requests first, then live, newest first).
import { $, announce, clock, duration } from './format.js';
import type { Action } from './actions.js';
import type { SessionInfo } from './types.js';

interface Card { el: HTMLElement; fields: Record<string, HTMLElement>; session: SessionInfo; announced: string | null }

const isLive = (s: SessionInfo) => s.state === 'starting' || s.state === 'ready';

/** Handoff requests first, then live sessions, newest first; stopped ones last. */
function order(a: SessionInfo, b: SessionInfo): number {
  return (b.handoff ? 1 : 0) - (a.handoff ? 1 : 0) || (isLive(b) ? 1 : 0) - (isLive(a) ? 1 : 0) || b.created_at.localeCompare(a.created_at);
}

export function sessionList(actions: Record<string, Action>): { render(sessions: SessionInfo[]): void } {
  const cards = new Map<string, Card>(); // session_id -> card
  let loaded = false; // sessions present at the first render are not announced as new

  function render(sessions: SessionInfo[]): void {
    sessions.sort(order);
    const list = $('sessions');
    const seen = new Set<string>();
    sessions.forEach((s, i) => {
      seen.add(s.session_id);
      let card = cards.get(s.session_id);
      if (!card) {
        card = createCard(s);
        cards.set(s.session_id, card);
        if (loaded) announce(`Session ${s.session_id} started.`);
      }
      updateCard(card, s);
      // Keyed: cards move only when the order changes, so focus stays on the button it was on.
      if (list.children[i] !== card.el) list.insertBefore(card.el, list.children[i] || null);
    });
    for (const [id, card] of cards) {
      if (seen.has(id)) continue;
      card.el.remove();
      cards.delete(id);
    }
    const live = sessions.filter(isLive).length;
    const asking = sessions.filter((s) => s.handoff && isLive(s)).length;
    $('session-count').textContent = `(${live} live${asking ? `, ${asking} asking for help` : ''})`;
    $('no-sessions').hidden = sessions.length > 0;
    document.title = asking ? `(${asking}) handoff: help requested` : 'handoff';
    loaded = true;
  }

  function createCard(s: SessionInfo): Card {
    const el = ($('session-template') as HTMLTemplateElement).content.firstElementChild!.cloneNode(true) as HTMLElement;
    const fields = Object.fromEntries([...el.querySelectorAll<HTMLElement>('[data-f]')].map((n) => [n.dataset.f!, n]));
    const card: Card = { el, fields, session: s, announced: null };
    fields.id!.textContent = s.session_id;
    for (const b of el.querySelectorAll<HTMLButtonElement>('[data-action]')) {
      b.setAttribute('aria-label', `${b.textContent} for session ${s.session_id}`);
      b.addEventListener('click', () => actions[b.dataset.action!]!(card.session, b));
    }
    return card;
  }

  function updateCard(card: Card, s: SessionInfo): void {
    const { el } = card;
    const f = card.fields as Record<string, HTMLElement>;
    card.session = s;
    const live = isLive(s);
    el.classList.toggle('asking', Boolean(s.handoff) && live);
    el.classList.toggle('over', !live);
    setBadge(f.state!, s.state);
    setBadge(f.attachment!, live ? s.attachment : '');
    f.attachment!.hidden = !live;
    const transports = ['screencast', 'webrtc', 'vnc'].filter((t) => s.transports[t]);
    f.viewers!.textContent = transports.map((t) => `${t} ${s.viewers[t]}`).join(' · ');
    f.age!.textContent = duration(Date.now() - Date.parse(s.created_at));
    f.idle!.textContent = !live ? '–' : s.expires_at ? `in ${clock(Date.parse(s.expires_at) - Date.now())}` : 'not while attached';
    f.size!.textContent = `${s.width}×${s.height}`;
    f.handoff!.hidden = !(s.handoff && live);
    if (s.handoff) {
      f.handoff!.textContent = `Help requested ${duration(Date.now() - Date.parse(s.handoff.requested_at))} ago: ${s.handoff.reason}`;
      if (live && card.announced !== s.handoff.id) {
        card.announced = s.handoff.id;
        announce(`Session ${s.session_id} asks for help: ${s.handoff.reason}`);
      }
    }
    f.actions!.hidden = !live;
    (el.querySelector('[data-action="copy-vnc"]') as HTMLElement).hidden = !s.vnc_url;
  }

  return { render };
}

function setBadge(el: HTMLElement, value: string): void {
  el.textContent = value;
  el.dataset.v = value;
}
