// Durations, clocks, and the dashboard's two message areas.

export const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;

export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

export function clock(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** Says `text` to screen readers (a polite live region). */
export function announce(text: string): void {
  $('announce').textContent = text;
}

let toastTimer = 0;
export function toast(text: string): void {
  clearTimeout(toastTimer);
  $('toast').textContent = text;
  toastTimer = window.setTimeout(() => ($('toast').textContent = ''), 6000);
}
