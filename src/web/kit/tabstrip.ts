// The session's tabs above the picture (issue 11 item 2): one button per page, the visible one
// marked and the one the agent uses badged, click to show it, × to close it; a tab or popup the
// page opens is announced (a live status line); and a small key menu for the keys the local
// browser keeps for itself (new tab, close tab, previous and next tab, reload, Esc).
import { h } from './dom.js';
import type { PageTab } from './types.js';

export interface TabActions {
  /** A `tab` message (docs/screencast-protocol.md). */
  tab(action: 'activate' | 'close' | 'new' | 'reload', id?: string): void;
  escape(): void;
  /** After a click here, the keyboard goes back to the picture. */
  refocus(): void;
}

export interface TabStrip {
  el: HTMLElement;
  render(tabs: PageTab[], canControl: boolean): void;
}

const MAX_TITLE = 80;
/** How long "New tab: …" stays. */
const ANNOUNCE_MS = 15_000;

export function tabStrip(actions: TabActions): TabStrip {
  const list = h('div', { class: 'hk-pages', role: 'tablist', 'aria-label': 'Tabs of the session' });
  let tabs: PageTab[] = [];
  const visible = () => tabs.find((t) => t.visible) || tabs[0];
  const onVisible = (action: 'close' | 'reload') => () => { const t = visible(); if (t) actions.tab(action, t.id); };
  const step = (by: number) => () => {
    if (tabs.length < 2) return;
    const i = tabs.indexOf(visible()!);
    actions.tab('activate', tabs[(i + by + tabs.length) % tabs.length]!.id);
  };
  const item = (text: string, onclick: () => void, key: string) =>
    h('button', { type: 'button', class: 'hk-btn hk-menuitem', text, onclick, 'data-key': key });
  const menuButtons = [
    item('New tab', () => actions.tab('new'), 'new'),
    item('Close tab', onVisible('close'), 'close'),
    item('Previous tab', step(-1), 'previous'),
    item('Next tab', step(1), 'next'),
    item('Reload', onVisible('reload'), 'reload'),
    item('Esc', actions.escape, 'escape'),
  ];
  const menu = h('details', { class: 'hk-keymenu' }, [
    h('summary', { text: 'Keys', title: 'Keys your browser keeps for itself' }),
    h('div', { class: 'hk-menu' }, menuButtons),
  ]);
  // A menu item closes the menu, so the next click lands on the picture.
  menu.addEventListener('click', (ev) => {
    if (!(ev.target as HTMLElement).closest('.hk-menuitem')) return;
    menu.open = false;
    actions.refocus();
  });
  // A tab opened by the page (not the first list a connection gets) is said out loud.
  const announce = h('p', { class: 'hk-announce', role: 'status', 'aria-live': 'polite' });
  let known: Set<string> | null = null;
  let announced: string | null = null;
  let announceTimer = 0;
  function announceNew(): void {
    const fresh = known ? tabs.find((t) => !known!.has(t.id)) : undefined;
    known = new Set(tabs.map((t) => t.id));
    if (fresh) {
      announced = fresh.id;
      clearTimeout(announceTimer);
      announceTimer = window.setTimeout(() => { announced = null; announce.textContent = ''; }, ANNOUNCE_MS);
    }
    const t = announced ? tabs.find((x) => x.id === announced) : undefined;
    const text = t ? 'New tab: ' + (t.title || t.url || 'loading…').slice(0, MAX_TITLE) : '';
    if (announce.textContent !== text) announce.textContent = text; // unchanged: not read out again
  }
  const el = h('nav', { class: 'hk-pagebar', 'aria-label': 'Tabs', hidden: true }, [list, announce, menu]);

  return {
    el,
    render(next, canControl) {
      tabs = next;
      el.hidden = tabs.length === 0;
      if (tabs.length === 0) known = null; // a new connection: its first list is no news
      else announceNew();
      for (const b of menuButtons) b.disabled = !canControl;
      list.replaceChildren(...tabs.map((t) => {
        const title = (t.title || t.url || 'New tab').slice(0, MAX_TITLE);
        return h('div', { class: 'hk-page', role: 'presentation', 'data-tab-id': t.id, 'data-visible': String(t.visible), 'data-agent': String(!!t.agent) }, [
          ...(t.agent ? [h('span', { class: 'hk-page-agent', text: 'agent', title: 'The agent is using this tab' })] : []),
          h('button', {
            type: 'button', class: 'hk-page-title', role: 'tab', text: title, title: t.url, 'aria-selected': String(t.visible),
            disabled: !canControl, onclick: () => { actions.tab('activate', t.id); actions.refocus(); },
          }),
          h('button', {
            type: 'button', class: 'hk-page-close', text: '×', 'aria-label': 'Close ' + title, disabled: !canControl,
            onclick: () => { actions.tab('close', t.id); actions.refocus(); },
          }),
        ]);
      }));
    },
  };
}
