// The session list: keyed cards; live ones first (help requests first, then newest), ended ones
// in a collapsed section. Calls the operator (alerts.ts) when a session asks for help.
import { $, announce, clock, duration } from './format.js';
import { helpRequested, titleBadge } from './alerts.js';
import type { Action } from './actions.js';
import type { Preview, PreviewTab } from './preview.js';
import type { SessionInfo } from './types.js';

interface Card { el: HTMLElement; fields: Record<string, HTMLElement>; session: SessionInfo; announced: string | null }

const isLive = (s: SessionInfo) => s.state === 'starting' || s.state === 'ready';

/** Handoff requests first, then newest first. */
function order(a: SessionInfo, b: SessionInfo): number {
  return (b.handoff ? 1 : 0) - (a.handoff ? 1 : 0) || b.created_at.localeCompare(a.created_at);
}

export interface SessionList {
  render(sessions: SessionInfo[]): void;
  liveIds(): string[];
  showPreview(id: string, p: Preview): void;
}

export function sessionList(actions: Record<string, Action>): SessionList {
  const cards = new Map<string, Card>(); // session_id -> card
  let loaded = false; // sessions present at the first render are not announced as new

  /** Puts `list`'s cards in `ul` in this order, moving only those out of place (focus stays). */
  function place(ul: HTMLElement, list: SessionInfo[]): void {
    list.forEach((s, i) => {
      const el = cards.get(s.session_id)!.el;
      if (ul.children[i] !== el) ul.insertBefore(el, ul.children[i] || null);
    });
  }

  function render(sessions: SessionInfo[]): void {
    sessions.sort(order);
    const seen = new Set<string>();
    for (const s of sessions) {
      seen.add(s.session_id);
      let card = cards.get(s.session_id);
      if (!card) {
        card = createCard(s);
        cards.set(s.session_id, card);
        if (loaded) announce(`Session ${s.session_id} started.`);
      }
      updateCard(card, s);
    }
    for (const [id, card] of cards) {
      if (seen.has(id)) continue;
      card.el.remove();
      cards.delete(id);
    }
    const live = sessions.filter(isLive);
    const ended = sessions.filter((s) => !isLive(s));
    place($('sessions'), live);
    place($('ended'), ended);
    $('ended-section').hidden = ended.length === 0;
    $('ended-count').textContent = `(${ended.length})`;
    const asking = live.filter((s) => s.handoff).length;
    $('session-count').textContent = `(${live.length} live${asking ? `, ${asking} asking for help` : ''})`;
    $('no-sessions').hidden = sessions.length > 0;
    titleBadge(asking);
    loaded = true;
  }

  function createCard(s: SessionInfo): Card {
    const el = ($('session-template') as HTMLTemplateElement).content.firstElementChild!.cloneNode(true) as HTMLElement;
    const fields = Object.fromEntries([...el.querySelectorAll<HTMLElement>('[data-f]')].map((n) => [n.dataset.f!, n]));
    const card: Card = { el, fields, session: s, announced: null };
    fields.id!.textContent = s.session_id;
    el.dataset.session = s.session_id;
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
    f.activity!.textContent = s.last_activity_at ? `${duration(Date.now() - Date.parse(s.last_activity_at))} ago` : '–';
    f.idle!.textContent = !live ? '–' : s.expires_at ? `in ${clock(Date.parse(s.expires_at) - Date.now())}` : 'not while attached';
    f.size!.textContent = `${s.width}×${s.height}`;
    f.handoff!.hidden = !(s.handoff && live);
    // Nobody attached while a request is open: the agent that asked is no longer connected.
    f.gone!.hidden = !(s.handoff && live && s.attachment === 'none');
    el.classList.toggle('agent-gone', !f.gone!.hidden);
    if (!live) f.thumb!.hidden = true;
    if (s.handoff) {
      f.handoff!.textContent = `Help requested ${duration(Date.now() - Date.parse(s.handoff.requested_at))} ago: ${s.handoff.reason}`;
      if (live && card.announced !== s.handoff.id) {
        card.announced = s.handoff.id;
        announce(`Session ${s.session_id} asks for help: ${s.handoff.reason}`);
        helpRequested(s, () => el.querySelector<HTMLElement>('[data-action="connect"]')?.focus());
      }
    }
    f.actions!.hidden = !live;
    (el.querySelector('[data-action="copy-vnc"]') as HTMLElement).hidden = !s.vnc_url;
  }

  return {
    render,
    liveIds: () => [...cards.values()].filter((c) => isLive(c.session)).map((c) => c.session.session_id),
    showPreview(id, p) {
      const card = cards.get(id);
      if (!card || !isLive(card.session)) return;
      const f = card.fields;
      f.title!.textContent = p.title || '(no title)';
      f.url!.textContent = p.url;
      f.url!.title = p.url;
      showTabs(f.title!.parentElement!, p.tabs || []);
      const img = f.thumb as HTMLImageElement;
      if (p.thumbnail.startsWith('data:image/jpeg;base64,')) {
        img.src = p.thumbnail;
        img.alt = `Screen of session ${id}`;
        img.hidden = false;
      }
    },
  };
}

/** The session's tabs under the page line, titles only: the shown one current, the agent's marked. */
function showTabs(pageLine: HTMLElement, tabs: PreviewTab[]): void {
  let ul = pageLine.nextElementSibling as HTMLElement | null;
  if (!ul || !ul.classList.contains('page-tabs')) {
    ul = document.createElement('ul');
    ul.className = 'page-tabs';
    ul.setAttribute('aria-label', 'Tabs');
    pageLine.after(ul);
  }
  ul.hidden = tabs.length === 0;
  ul.replaceChildren(...tabs.slice(0, 20).map((t) => {
    const li = document.createElement('li');
    li.textContent = (t.title || 'New tab').slice(0, 80) + (t.agent ? ' (agent)' : '');
    if (t.visible) li.setAttribute('aria-current', 'true');
    li.dataset.agent = String(!!t.agent);
    return li;
  }));
}

function setBadge(el: HTMLElement, value: string): void {
  el.textContent = value;
  el.dataset.v = value;
}
