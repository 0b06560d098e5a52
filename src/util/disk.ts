/**
 * Disk limits (issue 10, README "Disk"): free space under the state dir, the bytes a session's
 * directories hold, and pruning the files of sessions that stopped long enough ago.
 */
import { lstatSync, readdirSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { HandoffError } from './errors.js';
import type { Logger } from './logger.js';

/** The per-session directories under the state dir (downloads, uploads, recordings). */
export const SESSION_FILE_ROOTS = ['downloads', 'uploads', 'recordings'] as const;

const MB = 1024 * 1024;

/** Bytes an unprivileged writer may still use on the file system holding `dir`. */
export function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return Number(s.bavail) * Number(s.bsize);
}

/** The floor when --min-free-mb is not set: 5% of the file system, at most 1 GiB. */
export function defaultFloorBytes(dir: string): number {
  const s = statfsSync(dir);
  return Math.min(1024 * MB, Math.floor(Number(s.blocks) * Number(s.bsize) * 0.05));
}

/**
 * Refuses a new session (507 insufficient_storage) while the state dir's disk has less free
 * space than the floor (`minFreeMb`; null: defaultFloorBytes, 0: no floor).
 */
export function requireFreeSpace(dir: string, minFreeMb: number | null): void {
  if (minFreeMb === 0) return;
  let free: number;
  let floor: number;
  try {
    free = freeBytes(dir);
    floor = minFreeMb === null ? defaultFloorBytes(dir) : minFreeMb * MB;
  } catch {
    return; // no state dir to measure (yet): the session's own writes will say
  }
  if (free < floor) {
    throw new HandoffError(
      'insufficient_storage',
      `only ${Math.floor(free / MB)} MB free under the state dir; new sessions need at least ${Math.ceil(floor / MB)} MB (--min-free-mb)`,
      { free_mb: Math.floor(free / MB), min_free_mb: Math.ceil(floor / MB) },
    );
  }
}

/** Bytes of the regular files under `path` (symlinks not followed; a missing path is 0). */
export function treeBytes(path: string): number {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return 0;
  }
  if (st.isFile()) return st.size;
  if (!st.isDirectory()) return 0;
  let n = 0;
  let names: string[] = [];
  try {
    names = readdirSync(path);
  } catch {
    return 0;
  }
  for (const name of names) n += treeBytes(join(path, name));
  return n;
}

/** The newest modification time under `path` (ms), 0 when there is nothing. */
function newestMtime(path: string): number {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return 0;
  }
  let t = st.mtimeMs;
  if (st.isDirectory()) {
    try {
      for (const name of readdirSync(path)) t = Math.max(t, newestMtime(join(path, name)));
    } catch {
      // unreadable: its own mtime stands
    }
  }
  return t;
}

/**
 * Removes the directories of sessions that are not live and whose newest file is older than
 * `retentionMs`; returns what it removed ("downloads/ID", ...).
 */
export function pruneStoppedSessionFiles(stateDir: string, retentionMs: number, isLive: (id: string) => boolean, now = Date.now()): string[] {
  const removed: string[] = [];
  for (const root of SESSION_FILE_ROOTS) {
    let ids: string[];
    try {
      ids = readdirSync(join(stateDir, root));
    } catch {
      continue;
    }
    for (const id of ids) {
      if (isLive(id)) continue;
      const dir = join(stateDir, root, id);
      if (now - newestMtime(dir) < retentionMs) continue;
      rmSync(dir, { recursive: true, force: true });
      removed.push(`${root}/${id}`);
    }
  }
  return removed;
}

/** Prunes now and then every `min(retention / 4, 1 h)`; returns the stop function. 0 keeps files forever. */
export function startRetention(o: { stateDir: string; retentionMs: number; isLive: (id: string) => boolean; logger?: Logger }): () => void {
  if (o.retentionMs <= 0) return () => {};
  const run = () => {
    try {
      const removed = pruneStoppedSessionFiles(o.stateDir, o.retentionMs, o.isLive);
      if (removed.length) o.logger?.info('pruned the files of stopped sessions past --retention', { removed: removed.length, dirs: removed.slice(0, 20) });
    } catch (e) {
      o.logger?.warn('retention pruning failed', { error: (e as Error).message });
    }
  };
  run();
  const t = setInterval(run, Math.max(60_000, Math.min(o.retentionMs / 4, 3_600_000)));
  t.unref();
  return () => clearInterval(t);
}
