import { createHash, randomUUID } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { link, lstat, open, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { safeFileName, uniqueName } from '../browser/control.js';
import { requireFreeSpace, treeBytes } from '../util/disk.js';
import { HandoffError } from '../util/errors.js';

/**
 * The session's upload dir (API.md 4 `POST /session/ID/uploads`): files an agent or a human
 * gives to a page's file input. The browser's sandbox can write this dir too, so nothing here
 * trusts what is already in it: files are created exclusively (never through a planted
 * symlink) and only regular files are listed.
 */

/** One upload, agent's or human's. Beyond this it is refused (README "uploads"). */
export const MAX_UPLOAD_BYTES = 50 * 1024 * 1024;
/** All uploads of one session together: past it, 507 (a key holder cannot fill the disk). */
export const MAX_SESSION_UPLOAD_BYTES = 10 * MAX_UPLOAD_BYTES;

export interface StoredUpload {
  name: string;
  /** Absolute: what setInputFiles / DOM.setFileInputFiles take (the sandbox binds the dir at the same path). */
  path: string;
  size: number;
  sha256: string;
}

const PARTIAL = /^\.partial-[0-9a-f-]{36}$/;

/**
 * Writes `chunks` (a stream or a list) as `name` (made safe and unique) in `dir`, leaving
 * nothing behind when it fails: 400 past one upload's cap, 507 past the session's total or
 * under the state dir's free-space floor (`minFreeMb`, as for new sessions) or on a full disk.
 */
export function storeUpload(dir: string, name: string, chunks: AsyncIterable<Buffer> | Iterable<Buffer>, minFreeMb: number | null): Promise<StoredUpload> {
  // One at a time per dir: uploads side by side would each see the same room left. The real
  // path, because a warm spare's upload dir is a link (warm-pool.ts) and lstat counts it as 0.
  const real = realDir(dir);
  const turn = (writing.get(real) ?? Promise.resolve()).then(() => storeOne(dir, real, name, chunks, minFreeMb));
  const settled = turn.then(
    () => {},
    () => {},
  );
  writing.set(real, settled);
  void settled.then(() => writing.get(real) === settled && writing.delete(real));
  return turn;
}

/** The upload each dir is writing now (its tail): storeUpload's queue. */
const writing = new Map<string, Promise<void>>();

function realDir(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return dir;
  }
}

async function storeOne(dir: string, real: string, name: string, chunks: AsyncIterable<Buffer> | Iterable<Buffer>, minFreeMb: number | null): Promise<StoredUpload> {
  requireFreeSpace(real, minFreeMb);
  const sessionLeft = MAX_SESSION_UPLOAD_BYTES - treeBytes(real);
  const tooLarge = () =>
    sessionLeft < MAX_UPLOAD_BYTES
      ? new HandoffError('insufficient_storage', `this session's uploads may hold ${MAX_SESSION_UPLOAD_BYTES} bytes in all; ${Math.max(0, sessionLeft)} are left`)
      : new HandoffError('bad_request', `an upload is at most ${MAX_UPLOAD_BYTES} bytes`);
  const maxBytes = Math.min(MAX_UPLOAD_BYTES, sessionLeft);
  if (maxBytes <= 0) throw tooLarge();
  const tmp = join(dir, `.partial-${randomUUID()}`);
  // 'wx': O_CREAT|O_EXCL, which fails on anything already there, a symlink included.
  const fh = await open(tmp, 'wx', 0o600);
  const hash = createHash('sha256');
  let size = 0;
  try {
    try {
      for await (const chunk of chunks) {
        size += chunk.length;
        if (size > maxBytes) throw tooLarge();
        hash.update(chunk);
        await fh.write(chunk);
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOSPC') throw new HandoffError('insufficient_storage', 'the disk under the state dir is full');
      throw e;
    } finally {
      await fh.close();
    }
    // link() refuses an existing name, so a file the browser raced in under it is never replaced.
    // A path given as a name keeps only its last part, as a browser's file input does.
    const base = safeFileName(name.split(/[/\\]/).pop() ?? '');
    for (let attempt = 0; ; attempt++) {
      const unique = await uniqueName(dir, base);
      try {
        await link(tmp, join(dir, unique));
        return { name: unique, path: join(dir, unique), size, sha256: hash.digest('hex') };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 20) throw e;
      }
    }
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** The uploads in `dir`: regular files only, oldest first. */
export async function listUploads(dir: string): Promise<{ name: string; path: string; size: number; uploaded_at: string }[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: { name: string; path: string; size: number; uploaded_at: string; t: number }[] = [];
  for (const name of names) {
    if (PARTIAL.test(name)) continue;
    const st = await lstat(join(dir, name)).catch(() => null);
    if (!st?.isFile()) continue;
    out.push({ name, path: join(dir, name), size: st.size, uploaded_at: st.mtime.toISOString(), t: st.mtimeMs });
  }
  return out.sort((a, b) => a.t - b.t || a.name.localeCompare(b.name)).map(({ t: _t, ...f }) => f);
}
