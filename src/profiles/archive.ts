import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';

/**
 * A profile dir sealed at rest: a small archive format of our own (no tar dependency),
 * gzipped, then AES-256-GCM. File layout:
 *
 *   MAGIC (8) | IV (12) | ciphertext | GCM tag (16)        (MAGIC is the GCM AAD)
 *
 * The plaintext is a sequence of entries, each
 *   type u8 (1 dir, 2 file) | path length u16 BE | path (UTF-8, relative, `/`) | mode u16 BE
 *   | file only: size u64 BE | size bytes
 * Only dirs and regular files are kept (Chromium's Singleton* symlinks and sockets are not
 * state), and caches Chromium rebuilds are left out to keep the resume cost down.
 */
const MAGIC = Buffer.from('HNDPRF1\n');
const IV_BYTES = 12;
const TAG_BYTES = 16;
const DIR = 1;
const FILE = 2;
const MAX_PATH_BYTES = 4096;

/** Regenerable caches (any depth) and Chromium's temp dir: not worth sealing or restoring. */
const SKIPPED_NAMES = new Set(['Cache', 'Code Cache', 'GPUCache', 'GrShaderCache', 'ShaderCache', 'GraphiteDawnCache', 'DawnCache', 'DawnGraphiteCache', 'DawnWebGPUCache', 'component_crx_cache', 'Crashpad', 'BrowserMetrics']);
const SKIPPED_TOP = new Set(['tmp']);

export interface SealStats {
  files: number;
  /** Plaintext bytes of the files kept. */
  bytes: number;
  /** Size of the sealed file. */
  sealedBytes: number;
}

/** Writes `dir` sealed to `file` (through `file.tmp`, renamed: never a partial archive). */
export async function sealDir(dir: string, file: string, key: Buffer): Promise<SealStats> {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(MAGIC);
  const tmp = `${file}.tmp`;
  const stats = { files: 0, bytes: 0, sealedBytes: 0 };
  const out = createWriteStream(tmp, { mode: 0o600 });
  try {
    out.write(Buffer.concat([MAGIC, iv]));
    await pipeline(Readable.from(entries(dir, stats)), createGzip({ level: 1 }), cipher, out, { end: false });
    await new Promise<void>((resolve, reject) => out.end(cipher.getAuthTag(), () => resolve()).once('error', reject));
    stats.sealedBytes = (await stat(tmp)).size;
    await rename(tmp, file);
    return stats;
  } catch (e) {
    out.destroy();
    await rm(tmp, { force: true });
    throw e;
  }
}

async function* entries(root: string, stats: { files: number; bytes: number }, rel = ''): AsyncGenerator<Buffer> {
  const names = (await readdir(join(root, rel))).sort();
  for (const name of names) {
    if (SKIPPED_NAMES.has(name) || (rel === '' && SKIPPED_TOP.has(name))) continue;
    const path = rel ? `${rel}/${name}` : name;
    const st = await lstat(join(root, path));
    if (st.isDirectory()) {
      yield header(DIR, path, st.mode);
      yield* entries(root, stats, path);
    } else if (st.isFile()) {
      // The size is read from the open file, and exactly that many bytes are written, so a
      // file that changes meanwhile cannot desynchronise the archive.
      const fh = await open(join(root, path), 'r');
      try {
        const size = (await fh.stat()).size;
        yield header(FILE, path, st.mode, size);
        let done = 0;
        const chunk = Buffer.alloc(Math.min(size, 1 << 20) || 1);
        while (done < size) {
          const { bytesRead } = await fh.read(chunk, 0, Math.min(chunk.length, size - done), done);
          if (bytesRead === 0) break;
          yield Buffer.from(chunk.subarray(0, bytesRead));
          done += bytesRead;
        }
        if (done < size) yield Buffer.alloc(size - done); // shrank while read: pad, keep the frame
        stats.files++;
        stats.bytes += size;
      } finally {
        await fh.close();
      }
    }
  }
}

function header(type: number, path: string, mode: number, size?: number): Buffer {
  const p = Buffer.from(path);
  if (p.length > MAX_PATH_BYTES) throw new Error(`profile path too long to seal: ${path.slice(0, 80)}`);
  const h = Buffer.alloc(1 + 2 + p.length + 2 + (type === FILE ? 8 : 0));
  h[0] = type;
  h.writeUInt16BE(p.length, 1);
  p.copy(h, 3);
  h.writeUInt16BE(mode & 0o777, 3 + p.length);
  if (type === FILE) h.writeBigUInt64BE(BigInt(size!), 5 + p.length);
  return h;
}

/**
 * Restores a sealed `file` into `dir` (which must not exist): extracted beside it, and renamed
 * into place only once the GCM tag checked out, so a wrong key or a damaged file leaves
 * nothing behind. Throws on either.
 */
export async function unsealFile(file: string, dir: string, key: Buffer): Promise<void> {
  const fh = await open(file, 'r');
  let iv: Buffer;
  let tag: Buffer;
  let size: number;
  try {
    size = (await fh.stat()).size;
    if (size < MAGIC.length + IV_BYTES + TAG_BYTES) throw new Error('sealed profile is truncated');
    const head = Buffer.alloc(MAGIC.length + IV_BYTES);
    await fh.read(head, 0, head.length, 0);
    if (!head.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error('not a sealed profile');
    iv = head.subarray(MAGIC.length);
    tag = Buffer.alloc(TAG_BYTES);
    await fh.read(tag, 0, TAG_BYTES, size - TAG_BYTES);
  } finally {
    await fh.close();
  }
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(MAGIC);
  decipher.setAuthTag(tag);
  const tmp = `${dir}.unsealing`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { mode: 0o700 });
  try {
    const body = createReadStream(file, { start: MAGIC.length + IV_BYTES, end: size - TAG_BYTES - 1 });
    await pipeline(body, decipher, createGunzip(), extractor(tmp));
    await rename(tmp, dir);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    const err = e as Error;
    // GCM's only failure text; say what it means here.
    if (/unable to authenticate|auth/i.test(err.message)) throw new Error('sealed profile does not open with this key (wrong --profile-key, or the file was changed)');
    throw err;
  }
}

/** The entry stream's parser: resumable across chunks, every path checked before use. */
function extractor(root: string): Writable {
  let buf: Buffer = Buffer.alloc(0);
  let file: { fh: FileHandle; left: number } | null = null;
  const step = async (): Promise<void> => {
    for (;;) {
      if (file) {
        const n = Math.min(file.left, buf.length);
        if (n > 0) {
          await file.fh.write(buf.subarray(0, n));
          buf = buf.subarray(n);
          file.left -= n;
        }
        if (file.left > 0) return;
        await file.fh.close();
        file = null;
        continue;
      }
      if (buf.length < 3) return;
      const type = buf[0]!;
      const plen = buf.readUInt16BE(1);
      if ((type !== DIR && type !== FILE) || plen === 0 || plen > MAX_PATH_BYTES) throw new Error('sealed profile is damaged (bad entry)');
      const hlen = 3 + plen + 2 + (type === FILE ? 8 : 0);
      if (buf.length < hlen) return;
      const rel = safeRelative(buf.toString('utf8', 3, 3 + plen));
      const mode = buf.readUInt16BE(3 + plen);
      if (type === DIR) {
        await mkdir(join(root, rel), { recursive: true, mode: 0o700 });
      } else {
        const size = buf.readBigUInt64BE(5 + plen);
        if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('sealed profile is damaged (size)');
        // 'wx': never through something already there; owner-only whatever the mode said.
        file = { fh: await open(join(root, rel), 'wx', (mode & 0o700) | 0o600), left: Number(size) };
      }
      buf = buf.subarray(hlen);
    }
  };
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      step().then(() => cb(), cb);
    },
    final(cb) {
      const open = file;
      if (open) void open.fh.close();
      cb(open || buf.length ? new Error('sealed profile is truncated') : null);
    },
    destroy(err, cb) {
      if (file) void file.fh.close().catch(() => {});
      cb(err);
    },
  });
}

/** A relative path of plain segments only: no absolute path, `.`/`..`, empty segment or NUL. */
function safeRelative(p: string): string {
  const segs = p.split('/');
  if (p.includes('\0') || p.includes('\\') || segs.some((s) => s === '' || s === '.' || s === '..')) throw new Error('sealed profile is damaged (path)');
  return segs.join('/');
}
