// The "Recent activity" table.
import { api } from './api.js';
import { $ } from './format.js';
import type { AuditEvent } from './types.js';

export async function refreshAudit(): Promise<void> {
  const { events } = await api<{ events: AuditEvent[] }>('/audit?limit=20');
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
      const cells: [Node | string, string?][] = [[time], [ev.type.replaceAll('_', ' ')], [ev.session_id || ''], [who], [detail, 'detail']];
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
