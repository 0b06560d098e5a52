// The buttons of a session card: connect, copy the live link or the VNC URL, stop.
import { api, Unauthorized } from './api.js';
import { clock, toast } from './format.js';
import type { SessionInfo } from './types.js';

export type Action = (s: SessionInfo, button: HTMLButtonElement) => Promise<void>;

export function sessionActions(refresh: () => void): Record<string, Action> {
  return {
    async connect(s) {
      // Open the tab now, while the click still counts as a user gesture, and point it at the link when it comes.
      const tab = window.open('', '_blank');
      try {
        const { url } = await api<{ url: string }>(`/session/${encodeURIComponent(s.session_id)}/live?kind=view`);
        if (tab) {
          tab.opener = null;
          tab.location.href = url;
        } else {
          window.open(url, '_blank', 'noopener');
        }
      } catch (e) {
        tab?.close();
        if (!(e instanceof Unauthorized)) toast(`Could not open the viewer: ${(e as Error).message}`);
      }
    },
    async 'copy-live'(s) {
      try {
        const { url, expires_at } = await api<{ url: string; expires_at: string }>(`/session/${encodeURIComponent(s.session_id)}/live`);
        await copy(url);
        toast(`Live link copied. Open it within ${clock(Date.parse(expires_at) - Date.now())}; it gives control.`);
      } catch (e) {
        if (!(e instanceof Unauthorized)) toast(`Could not copy the live link: ${(e as Error).message}`);
      }
    },
    async 'copy-vnc'(s) {
      try {
        await copy(s.vnc_url || '');
        toast('VNC URL copied. It needs the session’s VNC password.');
      } catch (e) {
        toast(`Could not copy: ${(e as Error).message}`);
      }
    },
    async stop(s, button) {
      if (!confirm(`Stop session ${s.session_id}? Its browser closes and every client is disconnected.`)) return;
      button.disabled = true;
      try {
        await api(`/session/${encodeURIComponent(s.session_id)}/stop`, { method: 'POST' });
        toast(`Session ${s.session_id} stopped.`);
        refresh();
      } catch (e) {
        if (!(e instanceof Unauthorized)) toast(`Could not stop the session: ${(e as Error).message}`);
      } finally {
        button.disabled = false;
      }
    },
  };
}

/** navigator.clipboard needs a secure context; plain http on a LAN address falls back to execCommand. */
async function copy(text: string): Promise<void> {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const area = Object.assign(document.createElement('textarea'), { value: text, readOnly: true });
  area.style.position = 'fixed';
  area.style.opacity = '0';
  const focused = document.activeElement as HTMLElement | null;
  document.body.append(area);
  area.select();
  const ok = document.execCommand('copy');
  area.remove();
  focused?.focus();
  if (!ok) throw new Error('the browser refused');
}
