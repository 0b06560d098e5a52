import { EventEmitter } from 'node:events';
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../util/logger.js';
import { watchDownloadQuota } from './download-quota.js';
import type { RootCdp } from './root-cdp.js';

/** How long evaluate() waits for a page's answer (its own script is cut off at this too). */
const EVALUATE_WAIT_MS = 500;

export interface TargetInfo {
  targetId: string;
  type: string;
  title: string;
  url: string;
  attached: boolean;
}

export type { RootCdp } from './root-cdp.js';

/** A page asked for a file (Page.fileChooserOpened): the daemon answers it, never a native dialog. */
export interface FileChooserRequest {
  /** Ours, random: what a viewer names when it answers. */
  id: string;
  targetId: string;
  multiple: boolean;
  /** The <input type=file> in its page (DOM.setFileInputFiles takes it). */
  backendNodeId: number;
}

export interface CompletedDownload {
  name: string;
  size: number;
  sha256: string;
}

/**
 * The daemon's own use of the browser, on the DevTools pipe's root session (agents have
 * sessions of their own, so none of this reaches them): it tracks the targets (for /json/list
 * and page routing), saves downloads into the session's directory, and closes the browser
 * gracefully.
 */
export class BrowserControl extends EventEmitter<{
  download: [CompletedDownload];
  navigated: [url: string];
  disconnected: [];
  /** The list of pages or one's title or url changed, or one opened or closed. */
  pagesChanged: [];
  /** A page opened a file chooser (a new one replaces the last), or it was answered (null). */
  fileChooser: [FileChooserRequest | null];
}> {
  private readonly targets = new Map<string, TargetInfo>();
  /** Our own DevTools session on each page: file choosers are intercepted there. */
  private readonly pageSessions = new Map<string, string>();
  private chooser: FileChooserRequest | null = null;
  /** The page an agent acts on (null: none connected), for the viewers' tab strip. */
  agentPage: string | null = null;
  private readonly pendingDownloads = new Map<string, string>();
  private closed = false;
  private downloads: Promise<void> = Promise.resolve();

  private constructor(
    private readonly cdp: RootCdp,
    private readonly downloadDir: string,
    private readonly logger?: Logger,
  ) {
    super();
  }

  static async connect(cdp: RootCdp, downloadDir: string, logger?: Logger): Promise<BrowserControl> {
    const control = new BrowserControl(cdp, downloadDir, logger);
    await control.init();
    return control;
  }

  private async init(): Promise<void> {
    const handlers: Record<string, (p: any) => void> = {
      'Target.targetCreated': ({ targetInfo }) => {
        this.targets.set(targetInfo.targetId, targetInfo);
        if (targetInfo.type === 'page') {
          void this.watchPage(targetInfo.targetId);
          this.emit('pagesChanged');
        }
      },
      'Target.targetInfoChanged': ({ targetInfo }) => {
        const before = this.targets.get(targetInfo.targetId);
        this.targets.set(targetInfo.targetId, targetInfo);
        if (targetInfo.type === 'page' && before?.url !== targetInfo.url) this.emit('navigated', targetInfo.url);
        if (targetInfo.type === 'page' && (before?.url !== targetInfo.url || before?.title !== targetInfo.title)) this.emit('pagesChanged');
      },
      'Target.targetDestroyed': ({ targetId }) => {
        const wasPage = this.targets.get(targetId)?.type === 'page';
        this.targets.delete(targetId);
        this.pageSessions.delete(targetId);
        if (this.chooser?.targetId === targetId) this.setChooser(null);
        if (wasPage) this.emit('pagesChanged');
      },
      'Browser.downloadWillBegin': ({ guid, suggestedFilename }) => this.pendingDownloads.set(guid, suggestedFilename),
      'Browser.downloadProgress': ({ guid, state }) => {
        // One at a time, so two files with the same name get distinct unique names.
        if (state === 'completed') this.downloads = this.downloads.then(() => this.finishDownload(guid));
        else if (state === 'canceled') this.pendingDownloads.delete(guid);
      },
    };
    this.cdp.on('event', (method, params, sessionId) => {
      if (sessionId === undefined) handlers[method]?.(params);
      else if (method === 'Page.fileChooserOpened') this.chooserOpened(sessionId, params);
      else if (method === 'Page.domContentEventFired' || method === 'Page.loadEventFired') this.refreshTitle(sessionId);
    });
    this.cdp.on('agentPage', (targetId) => {
      this.agentPage = targetId;
      this.emit('pagesChanged');
    });
    watchDownloadQuota(this.cdp, this.downloadDir, this.logger); // --max-download-mb
    this.cdp.once('closed', () => {
      this.closed = true;
      this.emit('disconnected');
    });
    await Promise.all([
      this.cdp.send('Target.setDiscoverTargets', { discover: true }),
      // allowAndName: Chromium saves as the download's guid; we rename when it completes so
      // a half-written file never shows under its real name.
      this.cdp.send('Browser.setDownloadBehavior', { behavior: 'allowAndName', downloadPath: this.downloadDir, eventsEnabled: true }),
    ]);
  }

  /**
   * Attaches our own session to a page and turns file chooser interception on there
   * (Page.setInterceptFileChooserDialog): from then on that page never opens the host's
   * native file dialog, whose only files are the daemon's; it raises Page.fileChooserOpened.
   * Opening a chooser needs a user gesture, so the few ms this takes on a new tab or popup
   * leave nothing to race (and the managed policy forbids the dialog anyway).
   */
  private async watchPage(targetId: string): Promise<void> {
    try {
      const { sessionId } = await this.cdp.send('Target.attachToTarget', { targetId, flatten: true });
      if (!this.targets.has(targetId)) return;
      this.pageSessions.set(targetId, sessionId);
      await Promise.all([
        this.cdp.send('Page.enable', {}, sessionId),
        this.cdp.send('Page.setInterceptFileChooserDialog', { enabled: true }, sessionId),
      ]);
    } catch (e) {
      // The page closed meanwhile: nothing to guard.
      if (this.targets.has(targetId) && !this.closed) this.logger?.warn('file chooser interception failed', { error: (e as Error).message });
    }
  }

  /** Chromium sends no targetInfoChanged for a new title: read it once a page has loaded. */
  private refreshTitle(sessionId: string): void {
    const targetId = [...this.pageSessions].find(([, s]) => s === sessionId)?.[0];
    if (!targetId) return;
    this.cdp.send('Target.getTargetInfo', { targetId }).then(({ targetInfo }: { targetInfo: TargetInfo }) => {
      const before = this.targets.get(targetId);
      if (!before || before.title === targetInfo.title) return;
      this.targets.set(targetId, { ...before, title: targetInfo.title });
      this.emit('pagesChanged');
    }, () => {});
  }

  private chooserOpened(sessionId: string, params: { mode?: string; backendNodeId?: number }): void {
    const targetId = [...this.pageSessions].find(([, s]) => s === sessionId)?.[0];
    if (!targetId || typeof params.backendNodeId !== 'number') return;
    this.setChooser({ id: randomUUID(), targetId, multiple: params.mode === 'selectMultiple', backendNodeId: params.backendNodeId });
  }

  private setChooser(c: FileChooserRequest | null): void {
    this.chooser = c;
    this.emit('fileChooser', c);
  }

  /** The file request a human has not answered yet, if any. */
  get pendingFileChooser(): FileChooserRequest | null {
    return this.chooser;
  }

  /**
   * Answers file request `id` with files already in the session's upload dir (absolute
   * paths, as the sandboxed browser sees them too), or cancels it with none. False when the
   * request is not the pending one any more.
   */
  async answerFileChooser(id: string, paths: string[]): Promise<boolean> {
    const c = this.chooser;
    if (!c || c.id !== id) return false;
    this.setChooser(null);
    const sessionId = this.pageSessions.get(c.targetId);
    if (!sessionId) return false;
    if (paths.length > 0) {
      await this.cdp.send('DOM.setFileInputFiles', { files: c.multiple ? paths : paths.slice(0, 1), backendNodeId: c.backendNodeId }, sessionId);
    } else {
      // What a dismissed native dialog does: the input fires `cancel` (HTML: "show the picker").
      const { object } = await this.cdp.send('DOM.resolveNode', { backendNodeId: c.backendNodeId }, sessionId);
      await this.cdp.send('Runtime.callFunctionOn', {
        objectId: object.objectId,
        functionDeclaration: 'function () { this.dispatchEvent(new Event("cancel", { bubbles: true })); }',
      }, sessionId);
    }
    return true;
  }

  /** Shows page `targetId` (Target.activateTarget brings its tab forward and raises its window). */
  async activatePage(targetId: string): Promise<void> {
    if (this.targets.get(targetId)?.type !== 'page') return;
    await this.cdp.send('Target.activateTarget', { targetId });
  }

  async closePage(targetId: string): Promise<void> {
    if (this.targets.get(targetId)?.type !== 'page') return;
    await this.cdp.send('Target.closeTarget', { targetId });
  }

  async newPage(): Promise<void> {
    await this.cdp.send('Target.createTarget', { url: 'about:blank' });
  }

  async reloadPage(targetId: string): Promise<void> {
    const sessionId = this.pageSessions.get(targetId);
    if (sessionId) await this.cdp.send('Page.reload', {}, sessionId);
  }

  /** An expression's JSON value in page `targetId` (null when it fails or the page is gone). */
  /**
   * Evaluates `expression` in an isolated world of the page's main frame: it shares the DOM but
   * not the page's scripts, so a page cannot redefine the getters it reads. The world is asked
   * for on every call (Chromium hands back the same one while the document lasts): a kept
   * context id may name one of the page's own contexts after a cross-site navigation. A page
   * that keeps its thread busy gets no answer: null after EVALUATE_WAIT_MS.
   */
  async evaluate(targetId: string, expression: string): Promise<unknown> {
    const sessionId = this.pageSessions.get(targetId);
    if (!sessionId) return null;
    const ask = async () => {
      // A page target's main frame id is its target id.
      const world = await this.cdp.send('Page.createIsolatedWorld', { frameId: targetId, worldName: 'handoff', grantUniveralAccess: false }, sessionId);
      const r = await this.cdp.send('Runtime.evaluate', { expression, contextId: world.executionContextId, returnByValue: true, silent: true, timeout: EVALUATE_WAIT_MS }, sessionId);
      return r.result?.value ?? null;
    };
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), EVALUATE_WAIT_MS)));
    return Promise.race([ask().catch(() => null), late]).finally(() => clearTimeout(timer));
  }

  /** The pages shown now: the front tab of each window (document.visibilityState). */
  async visiblePages(): Promise<Set<string>> {
    const out = new Set<string>();
    await Promise.all(
      [...this.pageSessions].map(async ([targetId, sessionId]) => {
        const r = await this.cdp.send('Runtime.evaluate', { expression: 'document.visibilityState', returnByValue: true }, sessionId).catch(() => null);
        if (r?.result?.value === 'visible') out.add(targetId);
      }),
    );
    return out;
  }

  pages(): TargetInfo[] {
    return [...this.targets.values()].filter((t) => t.type === 'page');
  }

  hasTarget(targetId: string): boolean {
    return this.targets.has(targetId);
  }

  version(): Promise<{ product: string; userAgent: string; protocolVersion: string; jsVersion: string; revision: string }> {
    return this.cdp.send('Browser.getVersion');
  }

  private async finishDownload(guid: string): Promise<void> {
    const suggested = this.pendingDownloads.get(guid) ?? 'download';
    this.pendingDownloads.delete(guid);
    try {
      const name = await uniqueName(this.downloadDir, safeFileName(suggested));
      await rename(join(this.downloadDir, guid), join(this.downloadDir, name));
      const path = join(this.downloadDir, name);
      const { size } = await stat(path);
      this.emit('download', { name, size, sha256: await sha256File(path) });
    } catch (e) {
      this.logger?.warn('download could not be saved', { error: (e as Error).message });
    }
  }

  /** Asks the browser to quit; the caller still owns the process and awaits its exit. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.race([this.cdp.send('Browser.close').catch(() => {}), new Promise((r) => setTimeout(r, 1000))]);
  }
}

/** A file name that cannot leave the directory or hide: no separators, no leading dots. */
export function safeFileName(name: string): string {
  const cleaned = name
    .replace(/[/\\\0]/g, '_')
    .replace(/[\x00-\x1f\x7f]/g, '')
    .replace(/^\.+/, '')
    .trim();
  return cutToBytes(cleaned, 200) || 'download';
}

/** At most `max` UTF-8 bytes, cut on a code point (file names are limited in bytes: NAME_MAX 255). */
function cutToBytes(s: string, max: number): string {
  let bytes = 0;
  let out = '';
  for (const ch of s) {
    bytes += Buffer.byteLength(ch);
    if (bytes > max) break;
    out += ch;
  }
  return out;
}

/** `name`, or `name (1).ext`, `name (2).ext`... whichever is free (API.md 4). */
export async function uniqueName(dir: string, name: string): Promise<string> {
  const taken = new Set(await readdir(dir).catch(() => [] as string[]));
  if (!taken.has(name)) return name;
  const dot = name.lastIndexOf('.');
  const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ''];
  for (let i = 1; ; i++) {
    const candidate = `${stem} (${i})${ext}`;
    if (!taken.has(candidate)) return candidate;
  }
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}
