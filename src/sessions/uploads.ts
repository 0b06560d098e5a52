import { createHash, randomUUID } from 'node:crypto';
import { link, lstat, open, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { safeFileName, uniqueName } from '../browser/control.js';

/**
 * The session's upload dir (API.md 4 `POST /session/ID/uploads`): files an agent or a human
 * gives to a page's file input. The browser's sandbox can write this dir too, so nothing here
 * trusts what is already in it: files are created exclusively (never through a planted
 * symlink) and only regular files are listed.
 */

/** One upload, agent's or human's. Beyond this it is refused (README "uploads"). */
export const MAX_UPLOAD_BYTES = 50 * 1024 * 1024;

export interface StoredUpload {
  name: string;
  /** Absolute: what setInputFiles / DOM.setFileInputFiles take (the sandbox binds the dir at the same path). */
  path: string;
  size: number;
  sha256: string;
}

const PARTIAL = /^\.partial-[0-9a-f-]{36}$/;

/**
 * Writes `chunks` (a stream or a list) as `name` (made safe and unique) in `dir`. Throws
 * `tooLarge()` once more than `maxBytes` came, leaving nothing behind.
 */
export async function storeUpload(
  dir: string,
  name: string,
  chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
  tooLarge: () => Error,
  maxBytes = MAX_UPLOAD_BYTES,
): Promise<StoredUpload> {
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
