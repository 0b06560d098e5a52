// Other hosts beside this one (`--peer`, deploy/README.md): their sessions, read straight from
// each peer by this page with that peer's own key (the peer lists this page's origin in its
// --allowed-origins and answers with CORS). Read-only but for Connect, which opens a live
// link the peer mints (it points at the peer: its --public-url).
import { api } from './api.js';
import { $, clock, duration } from './format.js';
import type { SessionInfo } from './types.js';

const POLL_MS = 2000;
const keyName = (peer: string) => `handoff.apiKey:${peer}`;

interface PeerView {
  url: string;
  section: HTMLElement;
  status: HTMLElement;
  list: HTMLElement;
  keyForm: HTMLFormElement;
}

/** Starts showing the peers this host was given; nothing when it has none. */
export async function startPeers(): Promise<void> {
  const { peers } = await api<{ peers: string[] }>('/peers').catch(() => ({ peers: [] as string[] }));
  for (const url of peers.slice(0, 16)) poll(view(url));
}

function view(url: string): PeerView {
  const section = document.createElement('section');
  section.className = 'peer';
  const title = document.createElement('h2');
  title.textContent = `Sessions on ${url} `;
  const status = document.createElement('span');
  status.className = 'count';
  title.append(status);
  const keyForm = document.createElement('form');
  keyForm.hidden = true;
  const input = document.createElement('input');
  input.type = 'password';
  input.autocomplete = 'off';
  input.setAttribute('aria-label', `API key of ${url}`);
  input.placeholder = `API key of ${url}`;
  const submit = document.createElement('button');
  submit.textContent = 'Use key';
  keyForm.append(input, submit);
  const list = document.createElement('ul');
  list.className = 'sessions';
  section.append(title, keyForm, list);
  $('content').append(section);
  const v = { url, section, status, list, keyForm };
  keyForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(keyName(url), input.value.trim());
    input.value = '';
    keyForm.hidden = true;
    poll(v);
  });
  return v;
}

/** One peer call with its key; a 401 shows that peer's key form. */
async function peerApi<T>(v: PeerView, path: string): Promise<T | null> {
  const key = sessionStorage.getItem(keyName(v.url)) || '';
  const res = await fetch(v.url + path, { headers: key ? { authorization: `Bearer ${key}` } : {}, cache: 'no-store' });
  if (res.status === 401) {
    v.keyForm.hidden = false;
    v.status.textContent = key ? '(key refused)' : '(needs its API key)';
    return null;
  }
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error(body?.error?.message || `HTTP ${res.status}`);
  return body as T;
}

const timers = new Map<string, number>();

async function poll(v: PeerView): Promise<void> {
  clearTimeout(timers.get(v.url));
  try {
    const body = await peerApi<{ sessions: SessionInfo[] }>(v, '/sessions');
    if (!body) return; // waiting for its key
    render(v, body.sessions);
  } catch {
    // Unreachable, or it does not allow this page's origin (a CORS refusal looks the same).
    v.status.textContent = '(not reachable from this page: is it up, and does its --allowed-origins list this origin?)';
  }
  timers.set(v.url, window.setTimeout(() => poll(v), POLL_MS));
}

function render(v: PeerView, sessions: SessionInfo[]): void {
  const live = sessions.filter((s) => s.state === 'starting' || s.state === 'ready');
  v.status.textContent = `(${live.length} live)`;
  v.list.replaceChildren(
    ...live.map((s) => {
      const li = document.createElement('li');
      li.className = 'session';
      const text = document.createElement('span');
      const idle = s.expires_at ? `idle stop in ${clock(Date.parse(s.expires_at) - Date.now())}` : 'attached';
      text.textContent = `${s.session_id} · ${s.state} · ${s.attachment} · ${s.width}×${s.height} · ${duration(Date.now() - Date.parse(s.created_at))} · ${idle}${s.handoff ? ` · help requested: ${s.handoff.reason}` : ''}`;
      const connect = document.createElement('button');
      connect.textContent = 'Connect';
      connect.setAttribute('aria-label', `Connect to session ${s.session_id} on ${v.url}`);
      connect.addEventListener('click', async () => {
        const link = await peerApi<{ url: string }>(v, `/session/${encodeURIComponent(s.session_id)}/live?kind=view`).catch(() => null);
        if (link && /^https?:\/\//.test(link.url)) window.open(link.url, '_blank', 'noopener');
      });
      li.append(text, connect);
      return li;
    }),
  );
}
