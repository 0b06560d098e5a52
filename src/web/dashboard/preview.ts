// Each live card's page title, URL, tab titles and thumbnail (GET /session/ID/preview), refreshed only
// while the dashboard is visible: a hidden tab costs the daemon no framebuffer reads.
import { api } from './api.js';

const PREVIEW_MS = 5000;

export interface PreviewTab { title: string; visible: boolean; agent: boolean }
export interface Preview { title: string; url: string; thumbnail: string; tabs?: PreviewTab[] }

export function previews(liveIds: () => string[], show: (id: string, p: Preview) => void): void {
  let timer = 0;
  async function refresh(): Promise<void> {
    clearTimeout(timer);
    if (document.visibilityState !== 'visible') return;
    await Promise.all(liveIds().map(async (id) => {
      const p = await api<Preview>(`/session/${encodeURIComponent(id)}/preview?width=320`).catch(() => null);
      if (p) show(id, p);
    }));
    timer = window.setTimeout(refresh, PREVIEW_MS);
  }
  document.addEventListener('visibilitychange', () => void refresh());
  // The first poll has to list the sessions first.
  timer = window.setTimeout(refresh, 1200);
}
