// The "Recent activity" table: newest first, each row in words ("human joined over screencast").
import { api } from './api.js';
import { $ } from './format.js';
import type { AuditEvent } from './types.js';

const LABELS: Record<string, string> = {
  session_created: 'session created',
  session_stopped: 'session stopped',
  session_crashed: 'browser crashed',
  auth_failed: 'wrong credentials',
  network_denied: 'network refused',
  handoff_requested: 'help requested',
  handoff_completed: 'help given',
  download_completed: 'file downloaded',
  live_url_issued: 'live link issued',
  live_url_revoked: 'live links revoked',
  file_uploaded: 'file uploaded',
  profile_attached: 'profile attached',
  profile_released: 'profile released',
};

/** An audit row in words. */
export function auditLabel(ev: AuditEvent): string {
  const over = ev.transport ? ` over ${ev.transport}` : '';
  const who = ev.actor === 'human' ? 'human' : 'agent';
  if (ev.type === 'cloud_browser_agent_attach') return `${who} ${who === 'human' ? 'joined' : 'attached'}${over}`;
  if (ev.type === 'cloud_browser_agent_detach') return `${who} ${who === 'human' ? 'left' : 'detached'}${over}`;
  if (ev.type === 'handoff_completed' && typeof ev.detail?.outcome === 'string') return `help given: ${ev.detail.outcome}`;
  if (ev.type === 'auth_failed') return `wrong credentials${over}`;
  return LABELS[ev.type] ?? ev.type.replaceAll('_', ' ');
}

export async function refreshAudit(): Promise<void> {
  const { events } = await api<{ events: AuditEvent[] }>('/audit?limit=20');
  events.sort((a, b) => b.id - a.id);
  $('audit').replaceChildren(
    ...events.map((ev) => {
      const tr = document.createElement('tr');
      const time = document.createElement('time');
      time.dateTime = ev.ts;
      time.textContent = new Date(ev.ts).toLocaleTimeString();
      time.title = ev.ts;
      const event = document.createElement('span');
      event.textContent = auditLabel(ev);
      event.title = ev.type;
      const who = [ev.actor, ev.transport, ev.source_ip].filter(Boolean).join(' · ');
      const detail = Object.entries(ev.detail || {})
        .map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`)
        .join(' · ');
      const cells: [Node | string, string?][] = [[time], [event], [ev.session_id || ''], [who], [detail, 'detail']];
      for (const [content, cls] of cells) {
        const td = document.createElement('td');
        td.append(content);
        if (cls) td.className = cls;
        tr.append(td);
      }
      return tr;
    }),
  );
}
