// handoff dashboard (/): sessions (polled every second), their actions, and recent audit rows.
import { api, setApiKey, Unauthorized, whenUnauthorized } from './api.js';
import { sessionActions } from './actions.js';
import { refreshAudit } from './audit.js';
import { $ } from './format.js';
import { sessionList } from './sessions.js';
import { setUpAlerts } from './alerts.js';
import { previews } from './preview.js';
import { startPeers } from './peers.js';
import type { SessionInfo } from './types.js';

const POLL_MS = 1000;
const AUDIT_EVERY = 3; // polls between audit refreshes
const HEALTH_EVERY = 30;

let pollTimer = 0;
let polls = 0;
let peersShown = false;
const sessions = sessionList(sessionActions(() => poll()));
setUpAlerts();
previews(sessions.liveIds, sessions.showPreview);

// ---------------------------------------------------------------- login

function showLogin(rejected: boolean): void {
  clearTimeout(pollTimer);
  $('content').hidden = true;
  $('login').hidden = false;
  $('login-error').hidden = !rejected;
  $('api-key').focus();
}
whenUnauthorized(showLogin);

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $<HTMLInputElement>('api-key');
  setApiKey(input.value.trim());
  input.value = '';
  $('login').hidden = true;
  polls = 0; // refresh everything at once
  poll();
});

// ---------------------------------------------------------------- polling

async function poll(): Promise<void> {
  clearTimeout(pollTimer);
  const n = polls++;
  try {
    const [{ sessions: list }] = await Promise.all([
      api<{ sessions: SessionInfo[] }>('/sessions'),
      n % AUDIT_EVERY === 0 ? refreshAudit() : null,
      n % HEALTH_EVERY === 0 ? refreshHealth() : null,
    ]);
    $('content').hidden = false;
    $('offline').hidden = true;
    sessions.render(list);
    if (!peersShown) (peersShown = true), void startPeers(); // --peer hosts, once logged in
  } catch (e) {
    if (e instanceof Unauthorized) return; // the key form is showing; it restarts the poll
    $('offline').hidden = false;
    $('content').hidden = false;
  }
  pollTimer = window.setTimeout(poll, POLL_MS);
}

async function refreshHealth(): Promise<void> {
  const h = await fetch('/health', { cache: 'no-store' }).then((r) => r.json()).catch(() => null);
  if (h) $('health').textContent = `${h.sessions} of ${h.max_sessions} sessions · ${h.browser} · v${h.version}`;
}

poll();
