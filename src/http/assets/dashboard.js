// handoff dashboard: sessions (polled every second), their actions, and recent audit rows.
const KEY_STORAGE = 'handoff.apiKey';
const POLL_MS = 1000;
const AUDIT_EVERY = 3; // polls between audit refreshes
const HEALTH_EVERY = 30;

const $ = (id) => document.getElementById(id);
let apiKey = sessionStorage.getItem(KEY_STORAGE) || '';
let pollTimer = 0;
let polls = 0;
let loaded = false; // sessions present at the first render are not announced as new
const cards = new Map(); // session_id -> { el, fields, last }

class Unauthorized extends Error {}

/** Calls the REST API with the key; a 401 shows the key form. */
async function api(path, init = {}) {
  const headers = new Headers(init.headers);
  if (apiKey) headers.set('authorization', `Bearer ${apiKey}`);
  const res = await fetch(path, { ...init, headers, cache: 'no-store' });
  if (res.status === 401) {
    showLogin(Boolean(apiKey));
    throw new Unauthorized();
  }
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error(body?.error?.message || `HTTP ${res.status}`);
  return body;
}

// ---------------------------------------------------------------- login

function showLogin(rejected) {
  clearTimeout(pollTimer);
  $('content').hidden = true;
  $('login').hidden = false;
  $('login-error').hidden = !rejected;
  $('api-key').focus();
}

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  apiKey = $('api-key').value.trim();
  sessionStorage.setItem(KEY_STORAGE, apiKey);
  $('api-key').value = '';
  $('login').hidden = true;
  polls = 0; // refresh everything at once
  poll();
});

// ---------------------------------------------------------------- polling

async function poll() {
  clearTimeout(pollTimer);
  const n = polls++;
  try {
    const [{ sessions }] = await Promise.all([
      api('/sessions'),
      n % AUDIT_EVERY === 0 ? refreshAudit() : null,
      n % HEALTH_EVERY === 0 ? refreshHealth() : null,
    ]);
    $('content').hidden = false;
    $('offline').hidden = true;
    renderSessions(sessions);
  } catch (e) {
    if (e instanceof Unauthorized) return; // the key form is showing; it restarts the poll
    $('offline').hidden = false;
    $('content').hidden = false;
  }
  pollTimer = setTimeout(poll, POLL_MS);
}

async function refreshHealth() {
  const h = await fetch('/health', { cache: 'no-store' }).then((r) => r.json()).catch(() => null);
  if (h) $('health').textContent = `${h.sessions} of ${h.max_sessions} sessions · ${h.browser} · v${h.version}`;
}

// ---------------------------------------------------------------- sessions

const isLive = (s) => s.state === 'starting' || s.state === 'ready';

/** Handoff requests first, then live sessions, newest first; stopped ones last. */
function order(a, b) {
  return (b.handoff ? 1 : 0) - (a.handoff ? 1 : 0) || (isLive(b) ? 1 : 0) - (isLive(a) ? 1 : 0) || b.created_at.localeCompare(a.created_at);
}

function renderSessions(sessions) {
  sessions.sort(order);
  const list = $('sessions');
  const seen = new Set();
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

function createCard(s) {
  const el = $('session-template').content.firstElementChild.cloneNode(true);
  const fields = Object.fromEntries([...el.querySelectorAll('[data-f]')].map((n) => [n.dataset.f, n]));
  const card = { el, fields, session: s, announced: null };
  fields.id.textContent = s.session_id;
  for (const b of el.querySelectorAll('[data-action]')) {
    b.setAttribute('aria-label', `${b.textContent} for session ${s.session_id}`);
    b.addEventListener('click', () => ACTIONS[b.dataset.action](card.session, b));
  }
  return card;
}

function updateCard(card, s) {
  const { el, fields } = card;
  card.session = s;
  const live = isLive(s);
  el.classList.toggle('asking', Boolean(s.handoff) && live);
  el.classList.toggle('over', !live);
  setBadge(fields.state, s.state);
  setBadge(fields.attachment, live ? s.attachment : '');
  fields.attachment.hidden = !live;
  const transports = ['screencast', 'webrtc', 'vnc'].filter((t) => s.transports[t]);
  fields.viewers.textContent = transports.map((t) => `${t} ${s.viewers[t]}`).join(' · ');
  fields.age.textContent = duration(Date.now() - Date.parse(s.created_at));
  fields.idle.textContent = !live ? '–' : s.expires_at ? `in ${clock(Date.parse(s.expires_at) - Date.now())}` : 'not while attached';
  fields.size.textContent = `${s.width}×${s.height}`;
  fields.handoff.hidden = !(s.handoff && live);
  if (s.handoff) {
    fields.handoff.textContent = `Help requested ${duration(Date.now() - Date.parse(s.handoff.requested_at))} ago: ${s.handoff.reason}`;
    if (live && card.announced !== s.handoff.id) {
      card.announced = s.handoff.id;
      announce(`Session ${s.session_id} asks for help: ${s.handoff.reason}`);
    }
  }
  fields.actions.hidden = !live;
  el.querySelector('[data-action="copy-vnc"]').hidden = !s.vnc_url;
}

function setBadge(el, value) {
  el.textContent = value;
  el.dataset.v = value;
}

// ---------------------------------------------------------------- actions

const ACTIONS = {
  async connect(s) {
    // Open the tab now, while the click still counts as a user gesture, and point it at the link when it comes.
    const tab = window.open('', '_blank');
    try {
      const { url } = await api(`/session/${encodeURIComponent(s.session_id)}/live?kind=view`);
      if (tab) {
        tab.opener = null;
        tab.location.href = url;
      } else {
        window.open(url, '_blank', 'noopener');
      }
    } catch (e) {
      tab?.close();
      if (!(e instanceof Unauthorized)) toast(`Could not open the viewer: ${e.message}`);
    }
  },
  async 'copy-live'(s) {
    try {
      const { url, expires_at } = await api(`/session/${encodeURIComponent(s.session_id)}/live`);
      await copy(url);
      toast(`Live link copied. Open it within ${clock(Date.parse(expires_at) - Date.now())}; it gives control.`);
    } catch (e) {
      if (!(e instanceof Unauthorized)) toast(`Could not copy the live link: ${e.message}`);
    }
  },
  async 'copy-vnc'(s) {
    try {
      await copy(s.vnc_url);
      toast('VNC URL copied. It needs the session’s VNC password.');
    } catch (e) {
      toast(`Could not copy: ${e.message}`);
    }
  },
  async stop(s, button) {
    if (!confirm(`Stop session ${s.session_id}? Its browser closes and every client is disconnected.`)) return;
    button.disabled = true;
    try {
      await api(`/session/${encodeURIComponent(s.session_id)}/stop`, { method: 'POST' });
      toast(`Session ${s.session_id} stopped.`);
      poll();
    } catch (e) {
      if (!(e instanceof Unauthorized)) toast(`Could not stop the session: ${e.message}`);
    } finally {
      button.disabled = false;
    }
  },
};

/** navigator.clipboard needs a secure context; plain http on a LAN address falls back to execCommand. */
async function copy(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const area = Object.assign(document.createElement('textarea'), { value: text, readOnly: true });
  area.style.position = 'fixed';
  area.style.opacity = '0';
  const focused = document.activeElement;
  document.body.append(area);
  area.select();
  const ok = document.execCommand('copy');
  area.remove();
  focused?.focus();
  if (!ok) throw new Error('the browser refused');
}

// ---------------------------------------------------------------- audit

async function refreshAudit() {
  const { events } = await api('/audit?limit=20');
  $('audit').replaceChildren(
    ...events.map((ev) => {
      const tr = document.createElement('tr');
      const time = document.createElement('time');
      time.dateTime = ev.ts;
      time.textContent = new Date(ev.ts).toLocaleTimeString();
      time.title = ev.ts;
      const who = [ev.actor, ev.transport, ev.source_ip].filter(Boolean).join(' · ');
      const detail = Object.entries(ev.detail || {})
        .map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`)
        .join(' · ');
      for (const [content, cls] of [[time], [ev.type.replaceAll('_', ' ')], [ev.session_id || ''], [who], [detail, 'detail']]) {
        const td = document.createElement('td');
        td.append(content);
        if (cls) td.className = cls;
        tr.append(td);
      }
      return tr;
    }),
  );
}

// ---------------------------------------------------------------- formatting and messages

function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function clock(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function announce(text) {
  $('announce').textContent = text;
}

let toastTimer = 0;
function toast(text) {
  clearTimeout(toastTimer);
  $('toast').textContent = text;
  toastTimer = setTimeout(() => ($('toast').textContent = ''), 6000);
}

poll();
