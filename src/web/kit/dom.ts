// DOM helpers of the kit.

type Attrs = Record<string, unknown>;

/** An element with attributes (`class`, `text`, `onEVENT` handlers, booleans) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs, children?: (Node | string | null | false | undefined)[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') el.className = String(v);
    else if (k === 'text') el.textContent = String(v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v as EventListener);
    else if (v !== false && v != null) el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children || []) if (c) el.append(c);
  return el;
}

/** The kit's stylesheet from the daemon, once per page. */
export function ensureStyles(origin: string): void {
  if (document.querySelector('link[data-handoff-kit]')) return;
  document.head.append(h('link', { rel: 'stylesheet', href: origin + '/assets/style.css', 'data-handoff-kit': true }));
}
