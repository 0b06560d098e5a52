import type { BrowserControl } from '../browser/control.js';
import type { AuditInput } from '../audit/log.js';
import type { FileRequest, PagePort, PageTab, Transport, UploadedFile } from '../liveview/types.js';
import { HandoffError } from '../util/errors.js';
import { storeUpload } from './uploads.js';

/** Tab titles and urls in the viewer's strip are cut to this many characters. */
const MAX_TAB_TEXT = 300;
/** Pages in the strip, at most (a page opening popups in a loop cannot flood the viewers). */
const MAX_TABS = 50;
/** Title changes come in bursts while a page loads: one refresh per this many ms. */
const REFRESH_MS = 100;

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
