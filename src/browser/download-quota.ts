/**
 * Download quotas (issue 10, `--max-download-mb`, `--max-download-total-mb`): a download that
 * would take its session's downloads past the per-session quota, or everyone's past the total,
 * is cancelled in Chromium while it runs. The agent hears it the way Chromium tells it
 * (Browser/Page.downloadProgress with state "canceled"); the audit gets a download_cancelled
 * row. The limits are the daemon's configuration, set once at start.
 */
import { realpathSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { treeBytes } from '../util/disk.js';
import type { Logger } from '../util/logger.js';
import type { RootCdp } from './root-cdp.js';

export interface DownloadLimits {
  perSessionBytes: number;
  totalBytes: number;
  /** Audits a cancelled download (main.ts: AuditLog.append). */
  onCancelled?: (e: { sessionId: string; name: string; receivedBytes: number; limit: 'session' | 'total'; limitBytes: number }) => void;
}

let limits: DownloadLimits | null = null;

/** Called once by the daemon at start; until then nothing is limited (unit tests, tools). */
export function setDownloadLimits(l: DownloadLimits | null): void {
  limits = l;
}

/** Watches one browser's downloads into `downloadDir` (STATE/downloads/SESSION_ID). */
export function watchDownloadQuota(cdp: RootCdp, browserDownloadDir: string, logger?: Logger): void {
  // A warm spare's dir is a link to STATE/downloads/SESSION_ID once a session took it (warm-pool.ts).
  const real = () => {
    try {
      return realpathSync(browserDownloadDir);
    } catch {
      return browserDownloadDir;
    }
  };
  let downloadDir = browserDownloadDir;
  const running = new Map<string, { name: string; session: number; total: number; done: boolean }>();
  cdp.on('event', (method, p, sessionId) => {
    if (sessionId !== undefined || !limits) return;
    if (method === 'Browser.downloadWillBegin') {
      downloadDir = real();
      // What is on disk already (earlier downloads, ones still running) counts against both.
      running.set(p.guid, { name: String(p.suggestedFilename ?? 'download'), session: treeBytes(downloadDir), total: treeBytes(dirname(downloadDir)), done: false });
      return;
    }
    if (method !== 'Browser.downloadProgress') return;
    const d = running.get(p.guid);
    if (!d) return;
    if (p.state !== 'inProgress') return void running.delete(p.guid);
    if (d.done) return;
    const bytes = Math.max(Number(p.receivedBytes) || 0, Number(p.totalBytes) || 0);
    const l = limits;
    const over = d.session + bytes > l.perSessionBytes ? ('session' as const) : d.total + bytes > l.totalBytes ? ('total' as const) : null;
    if (!over) return;
    d.done = true;
    const limitBytes = over === 'session' ? l.perSessionBytes : l.totalBytes;
    logger?.warn('download cancelled: over the download quota', { name: d.name, bytes, limit: over, limit_bytes: limitBytes });
    cdp
      .send('Browser.cancelDownload', { guid: p.guid })
      .catch(() => {})
      // Chromium removes the partial file; make sure of it (it is named after the guid).
      .finally(() => rmSync(join(downloadDir, basename(String(p.guid))), { force: true }));
    l.onCancelled?.({ sessionId: basename(downloadDir), name: d.name.slice(0, 255), receivedBytes: Number(p.receivedBytes) || 0, limit: over, limitBytes });
  });
}
