import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../util/logger.js';
import { watchDownloadQuota } from './download-quota.js';

export interface TargetInfo {
  targetId: string;
  type: string;
  title: string;
  url: string;
  attached: boolean;
}

/** The pipe's root session as the control uses it (cdp/ CdpPipeMux is one). */
export interface RootCdp {
  send(method: string, params?: object): Promise<any>;
  on(event: 'event', listener: (method: string, params: any, sessionId: string | undefined) => void): unknown;
  once(event: 'closed', listener: () => void): unknown;
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
export class BrowserControl extends EventEmitter<{ download: [CompletedDownload]; navigated: [url: string]; disconnected: [] }> {
  private readonly targets = new Map<string, TargetInfo>();
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
      'Target.targetCreated': ({ targetInfo }) => this.targets.set(targetInfo.targetId, targetInfo),
      'Target.targetInfoChanged': ({ targetInfo }) => {
        const before = this.targets.get(targetInfo.targetId);
        this.targets.set(targetInfo.targetId, targetInfo);
        if (targetInfo.type === 'page' && before?.url !== targetInfo.url) this.emit('navigated', targetInfo.url);
      },
      'Target.targetDestroyed': ({ targetId }) => this.targets.delete(targetId),
      'Browser.downloadWillBegin': ({ guid, suggestedFilename }) => this.pendingDownloads.set(guid, suggestedFilename),
      'Browser.downloadProgress': ({ guid, state }) => {
        // One at a time, so two files with the same name get distinct unique names.
        if (state === 'completed') this.downloads = this.downloads.then(() => this.finishDownload(guid));
        else if (state === 'canceled') this.pendingDownloads.delete(guid);
      },
    };
    this.cdp.on('event', (method, params, sessionId) => {
      if (sessionId === undefined) handlers[method]?.(params);
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
    .trim()
    .slice(0, 200);
  return cleaned || 'download';
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
