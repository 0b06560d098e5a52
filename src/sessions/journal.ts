import { readFileSync, rmSync } from 'node:fs';
import type { Db } from '../audit/database.js';
import { isAlive, signalGroup } from '../util/process.js';
import type { Logger } from '../util/logger.js';

export type OwnedKind = 'xvfb' | 'chromium' | 'ffmpeg';

export interface OrphanReport {
  killed: number[];
  removedDirs: string[];
  /** Session ids that were live when the previous daemon died. */
  sessions: { session_id: string; run_id: string }[];
}

/**
 * What the daemon has started and the last state of each session, in SQLite, so a daemon
 * killed with SIGKILL leaves a list for the next one to clean up.
 */
export class SessionJournal {
  constructor(
    private readonly db: Db,
    private readonly logger?: Logger,
  ) {}

  /**
   * The journal is a best-effort aid (README "Fault policy"): when the database cannot be
   * written, a session must still start and stop, so a failed write is logged, not thrown.
   */
  private bestEffort<T>(what: string, fallback: T, write: () => T): T {
    try {
      return write();
    } catch (e) {
      this.logger?.warn(`session journal: cannot ${what}`, { error: `${(e as { code?: string }).code ?? ''} ${(e as Error).message}`.trim() });
      return fallback;
    }
  }

  /** The row id, or 0 when it could not be written (releasing 0 is a no-op). */
  recordOwned(kind: OwnedKind, pid: number | null, path: string | null, sessionId: string, runId: string): number {
    return this.bestEffort('record a process', 0, () => {
      const r = this.db
        .prepare('INSERT INTO owned (kind, pid, path, session_id, run_id) VALUES (?, ?, ?, ?, ?)')
        .run(kind, pid, path, sessionId, runId);
      return Number(r.lastInsertRowid);
    });
  }

  releaseOwned(id: number): void {
    if (id) this.bestEffort('release a process', undefined, () => this.db.prepare('DELETE FROM owned WHERE id = ?').run(id));
  }

  saveSession(sessionId: string, runId: string, state: string, data: object): void {
    this.bestEffort('save a session', undefined, () => this.saveSessionRow(sessionId, runId, state, data));
  }

  private saveSessionRow(sessionId: string, runId: string, state: string, data: object): void {
    this.db
      .prepare(
        `INSERT INTO sessions (session_id, run_id, state, data, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(session_id) DO UPDATE SET run_id = excluded.run_id, state = excluded.state, data = excluded.data, updated_at = excluded.updated_at`,
      )
      .run(sessionId, runId, state, JSON.stringify(data), new Date().toISOString());
  }

  /** A stopped session's last snapshot, if it stopped within `maxAgeS`. */
  loadSession(sessionId: string, maxAgeS: number): Record<string, unknown> | null {
    const row = this.db.prepare('SELECT data, updated_at FROM sessions WHERE session_id = ?').get(sessionId) as
      | { data: string; updated_at: string }
      | undefined;
    if (!row || Date.now() - Date.parse(row.updated_at) > maxAgeS * 1000) return null;
    return JSON.parse(row.data) as Record<string, unknown>;
  }

  /**
   * Kills the process groups and removes the temp dirs a previous daemon left, and marks its
   * live sessions stopped. A pid is only killed if it still runs the program we started
   * (pids get reused).
   */
  reapOrphans(): OrphanReport {
    const report: OrphanReport = { killed: [], removedDirs: [], sessions: [] };
    const owned = this.db.prepare('SELECT * FROM owned').all() as { id: number; kind: OwnedKind; pid: number | null; path: string | null }[];
    for (const o of owned) {
      if (o.pid && isAlive(o.pid) && runs(o.pid, o.kind)) {
        signalGroup(o.pid, 'SIGKILL');
        report.killed.push(o.pid);
      }
      if (o.path) {
        rmSync(o.path, { recursive: true, force: true });
        report.removedDirs.push(o.path);
      }
    }
    this.db.prepare('DELETE FROM owned').run();
    const live = this.db.prepare(`SELECT session_id, run_id, data FROM sessions WHERE state IN ('starting', 'ready')`).all() as {
      session_id: string;
      run_id: string;
      data: string;
    }[];
    for (const { session_id, run_id, data } of live) {
      const stopped = { ...(JSON.parse(data) as object), state: 'stopped', attachment: 'none', attached_by: '', expires_at: null };
      this.saveSessionRow(session_id, run_id, 'stopped', stopped);
      report.sessions.push({ session_id, run_id });
    }
    return report;
  }
}

function runs(pid: number, kind: OwnedKind): boolean {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.includes(kind === 'xvfb' ? 'Xvfb' : kind === 'ffmpeg' ? 'ffmpeg' : 'chrom');
  } catch {
    return false;
  }
}
