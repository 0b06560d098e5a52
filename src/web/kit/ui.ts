// The viewer's layout: transport tabs, status line, handoff banner, stage, notice, downloads.
import { h } from './dom.js';
import { formatSize } from './util.js';
import type { Outcome, Status, TransportName } from './types.js';

const STATE_TEXT: Record<Status['state'], string> = {
  connecting: 'Connecting…', live: 'You have control', 'view-only': 'View only',
  ended: 'Session ended', expired: 'Link expired', error: 'Not connected',
};
export const TRANSPORT_TEXT: Record<TransportName, string> = { screencast: 'Screencast', vnc: 'VNC', webrtc: 'WebRTC' };

export interface DownloadFile { name: string; size: number }

export interface ViewerUi {
  root: HTMLElement;
  /** Where a transport puts its surface. */
  stage: HTMLElement;
  /** The picture's box (stage and notice). */
  view: HTMLElement;
  /** The slot for the key bar, under the picture. */
  keys: HTMLElement;
  /** The message over the picture, with optional controls (a form, a button). */
  showNotice(message: string, extra?: Node): void;
  /** Shows `status`; `answered` is the handoff id Done / Can't do it was pressed for. */
  render(status: Status, answered: string | null): void;
  /** One tab per available transport. */
  setTabs(available: TransportName[]): boolean;
  showDownloads(files: DownloadFile[], href: (name: string) => string): void;
}

export interface UiActions {
  pickTransport(t: TransportName): void;
  answer(outcome: Outcome): void;
}

export function createUi(actions: UiActions, initial: Status): ViewerUi {
  const tabs = h('div', { class: 'hk-tabs', role: 'group', 'aria-label': 'Transport' });
  const stateEl = h('span', { class: 'hk-state' });
  const detailEl = h('span', { class: 'hk-detail' });
  const reasonEl = h('p', { class: 'hk-reason' });
  const doneBtn = h('button', { type: 'button', class: 'hk-btn hk-primary', text: 'Done', onclick: () => actions.answer('done') });
  const failBtn = h('button', { type: 'button', class: 'hk-btn', text: 'Can’t do it', onclick: () => actions.answer('failed') });
  const banner = h('section', { class: 'hk-banner', 'aria-label': 'Request for help', hidden: true }, [
    reasonEl, h('div', { class: 'hk-actions' }, [doneBtn, failBtn]),
  ]);
  const fallbackEl = h('p', { class: 'hk-fallback', role: 'status', hidden: true });
  const stage = h('div', { class: 'hk-stage' });
  const notice = h('div', { class: 'hk-notice', role: 'status', 'aria-live': 'polite', hidden: true });
  const view = h('div', { class: 'hk-view' }, [stage, notice]);
  const keys = h('div', { class: 'hk-keyslot' });
  const downloadsList = h('ul', { class: 'hk-files' });
  const downloadsTitle = h('summary', { text: 'Downloads' });
  const downloads = h('details', { class: 'hk-downloads', hidden: true }, [downloadsTitle, downloadsList]);
  const root = h('div', { class: 'hk', 'data-handoff-state': initial.state, 'data-transport': initial.transport }, [
    h('header', { class: 'hk-bar' }, [tabs, h('p', { class: 'hk-status' }, [stateEl, detailEl])]),
    banner,
    fallbackEl,
    view,
    keys,
    downloads,
  ]);

  function render(status: Status, answered: string | null): void {
    root.dataset.handoffState = status.state;
    root.dataset.transport = status.transport;
    stateEl.textContent = STATE_TEXT[status.state];
    const over = status.state === 'ended' || status.state === 'expired';
    const viewing = status.state === 'live' || status.state === 'view-only';
    const parts: string[] = [];
    if (status.attachment && !over) parts.push('attached: ' + status.attachment);
    if (!over) parts.push(TRANSPORT_TEXT[status.transport] + (status.codec ? ' ' + status.codec : ''));
    if (status.transport === 'webrtc' && status.state === 'connecting' && status.media && status.media !== 'new') parts.push('media ' + status.media);
    if (viewing) parts.push(status.fps + ' fps');
    if (status.latencyMs != null && viewing) parts.push('latency ' + status.latencyMs + ' ms');
    detailEl.textContent = parts.join(' · ');
    fallbackEl.textContent = status.fallback;
    fallbackEl.hidden = !status.fallback || over;
    const ho = status.handoff;
    banner.hidden = !ho || !viewing;
    root.toggleAttribute('data-asking', !banner.hidden);
    if (ho) reasonEl.textContent = 'The agent asks for help: ' + ho.reason;
    doneBtn.disabled = failBtn.disabled = status.state !== 'live' || !ho || ho.id === answered;
    // A view link may watch a handoff but not answer it (the daemon refuses it too).
    doneBtn.hidden = failBtn.hidden = status.viewLink;
    tabs.hidden = over;
    for (const b of tabs.children) b.setAttribute('aria-pressed', String((b as HTMLElement).dataset.transport === status.transport));
  }

  return {
    root,
    stage,
    view,
    keys,
    render,
    showNotice(message, extra) {
      notice.replaceChildren(...(message ? [h('p', { text: message })] : []), ...(extra ? [extra] : []));
      notice.hidden = !message;
    },
    setTabs(available) {
      if (available.join() === Array.from(tabs.children, (b) => (b as HTMLElement).dataset.transport).join()) return false;
      tabs.replaceChildren(...available.map((t) =>
        h('button', { type: 'button', class: 'hk-tab', 'data-transport': t, text: TRANSPORT_TEXT[t], onclick: () => actions.pickTransport(t) })));
      return true;
    },
    showDownloads(files, href) {
      downloads.hidden = files.length === 0;
      downloadsTitle.textContent = 'Downloads (' + files.length + ')';
      downloadsList.replaceChildren(...files.map((f) => h('li', {}, [
        h('a', { href: href(f.name), download: f.name, text: f.name }),
        h('span', { class: 'hk-size', text: formatSize(f.size) }),
      ])));
    },
  };
}
