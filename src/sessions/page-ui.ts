import type { BrowserControl } from '../browser/control.js';
import type { AuditInput } from '../audit/log.js';
import type { FileRequest, FocusHint, PagePort, PageTab, Transport, UploadedFile } from '../liveview/types.js';
import { HandoffError } from '../util/errors.js';
import { storeUpload } from './uploads.js';

/** Tab titles and urls in the viewer's strip are cut to this many characters. */
const MAX_TAB_TEXT = 300;
/** Pages in the strip, at most (a page opening popups in a loop cannot flood the viewers). */
const MAX_TABS = 50;
/** Title changes come in bursts while a page loads: one refresh per this many ms. */
const REFRESH_MS = 100;
/** Shown pages whose focus a tap reads (windows side by side are rare; a popup flood is bounded). */
const MAX_FOCUS_PAGES = 4;
/** `<input type>`s that take typed text; with textarea and contenteditable (multiline), the kinds a hint names. */
const TEXT_INPUT_TYPES = ['text', 'search', 'email', 'url', 'tel', 'number', 'password'];
const FOCUS_KINDS = new Set([...TEXT_INPUT_TYPES, 'multiline']);
const INPUT_MODES = new Set(['none', 'text', 'decimal', 'numeric', 'tel', 'search', 'email', 'url']);

/**
 * The focused field of a page (issue 12, the phone keyboard): into open shadow roots and
 * same-origin frames; what kind of field and which keyboard it asks for, never its value.
 * `editable: null`: the focus is in a frame we cannot look into (cross-origin).
 */
const FOCUS_EXPRESSION = `(() => {
  if (document.visibilityState !== 'visible') return null;
  let e = document.activeElement;
  for (let i = 0; i < 8 && e; i++) {
    if (e.shadowRoot && e.shadowRoot.activeElement) { e = e.shadowRoot.activeElement; continue; }
    if (e.tagName !== 'IFRAME' && e.tagName !== 'FRAME') break;
    let inner = null;
    try { inner = e.contentDocument && e.contentDocument.activeElement; } catch {}
    if (!inner) return { editable: null };
    e = inner;
  }
  if (!e) return { editable: false };
  const inputMode = String(e.getAttribute('inputmode') || '').slice(0, 16).toLowerCase();
  if (e.isContentEditable) return { editable: true, kind: 'multiline', inputMode };
  if (e.tagName === 'TEXTAREA') return { editable: !e.readOnly && !e.disabled, kind: 'multiline', inputMode };
  if (e.tagName !== 'INPUT') return { editable: false };
  const kind = e.type === 'text' ? 'text' : String(e.type).slice(0, 16);
  const texty = ${JSON.stringify(TEXT_INPUT_TYPES)}.includes(kind);
  return { editable: texty && !e.readOnly && !e.disabled, kind, inputMode };
})()`;

/** A page's answer, checked: only the fields and values we know (the page may say anything). */
export function cleanHint(v: unknown): FocusHint | null {
  if (!v || typeof v !== 'object') return null;
  const o = v as Record<string, unknown>;
  if (o.editable !== true && o.editable !== false && o.editable !== null) return null;
  const hint: FocusHint = { editable: o.editable };
  if (o.editable && typeof o.kind === 'string' && FOCUS_KINDS.has(o.kind)) hint.kind = o.kind as FocusHint['kind'];
  if (o.editable && typeof o.inputMode === 'string' && INPUT_MODES.has(o.inputMode)) hint.inputMode = o.inputMode as FocusHint['inputMode'];
  return hint;
}

/**
 * The session's pages as its human viewers see and use them (issue 11 items 1 and 2): the tab
 * strip (every page, which are shown), switching, closing and opening tabs, and answering a
 * page's file request with the human's own files (stored in the session's upload dir, audited
 * `file_uploaded`, given to the input with DOM.setFileInputFiles).
 */
export class PageUi implements PagePort {
  tabs: PageTab[] = [];
  private refreshTimer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly control: BrowserControl,
    private readonly uploadDir: string,
    private readonly minFreeMb: number | null,
    private readonly audit: (e: Omit<AuditInput, 'session_id' | 'run_id'>) => void,
    private readonly changed: () => void,
  ) {
    control.on('pagesChanged', () => this.scheduleRefresh());
    control.on('fileChooser', () => this.changed());
    this.scheduleRefresh();
  }

  get fileRequest(): FileRequest | null {
    const c = this.control.pendingFileChooser;
    return c ? { id: c.id, multiple: c.multiple } : null;
  }

  private scheduleRefresh(): void {
    if (this.refreshTimer || this.closed) return;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      void this.refresh();
    }, REFRESH_MS);
    this.refreshTimer.unref();
  }

  private async refresh(): Promise<void> {
    const visible = await this.control.visiblePages().catch(() => new Set<string>());
    if (this.closed) return;
    const tabs = this.control
      .pages()
      .slice(0, MAX_TABS)
      .map((p) => ({ id: p.targetId, title: p.title.slice(0, MAX_TAB_TEXT), url: p.url.slice(0, MAX_TAB_TEXT), visible: visible.has(p.targetId), agent: p.targetId === this.control.agentPage }));
    if (JSON.stringify(tabs) === JSON.stringify(this.tabs)) return;
    this.tabs = tabs;
    this.changed();
  }

  async tabAction(action: 'activate' | 'close' | 'new' | 'reload', id?: string): Promise<void> {
    if (action === 'new') await this.control.newPage();
    else if (id && action === 'activate') await this.control.activatePage(id);
    else if (id && action === 'close') await this.control.closePage(id);
    else if (id && action === 'reload') await this.control.reloadPage(id);
    this.scheduleRefresh();
  }

  /** The focus of the shown pages: an editable field if one has it, else the first answer. */
  async focusHint(): Promise<FocusHint> {
    const shown = this.tabs.filter((t) => t.visible).slice(0, MAX_FOCUS_PAGES);
    const hints = await Promise.all(shown.map(async (t) => cleanHint(await this.control.evaluate(t.id, FOCUS_EXPRESSION))));
    return hints.find((h) => h?.editable) ?? hints.find((h) => h) ?? { editable: false };
  }

  async answerFile(id: string, files: { name: string; data: Buffer }[], by: { transport: Transport; sourceIp: string }): Promise<UploadedFile[]> {
    if (this.control.pendingFileChooser?.id !== id) throw new HandoffError('not_found', 'the page no longer asks for a file');
    const stored = [];
    for (const f of files) stored.push(await storeUpload(this.uploadDir, f.name, [f.data], this.minFreeMb));
    for (const f of stored) {
      this.audit({ type: 'file_uploaded', transport: by.transport, source_ip: by.sourceIp, actor: 'human', detail: { name: f.name, size: f.size, sha256: f.sha256, by: 'human' } });
    }
    if (!(await this.control.answerFileChooser(id, stored.map((f) => f.path)))) throw new HandoffError('not_found', 'the page no longer asks for a file');
    return stored.map(({ name, size, sha256 }) => ({ name, size, sha256 }));
  }

  async cancelFile(id: string): Promise<void> {
    await this.control.answerFileChooser(id, []);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.refreshTimer);
  }
}
