import { afterEach, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listUploads, MAX_SESSION_UPLOAD_BYTES, MAX_UPLOAD_BYTES, storeUpload } from '../../../src/sessions/uploads.js';
import { HandoffError } from '../../../src/util/errors.js';

/** The upload dir's limits (README "uploads"): one upload's cap, the session's total, the disk floor. */
let dir = '';
afterEach(() => rmSync(dir, { recursive: true, force: true }));
const fresh = () => (dir = mkdtempSync(join(tmpdir(), 'uploads-')));
const codeOf = (p: Promise<unknown>) => p.then(() => 'stored', (e: HandoffError) => e.code);

describe('storeUpload', () => {
  it('stores the exact bytes under a safe unique name and lists them', async () => {
    fresh();
    const a = await storeUpload(dir, '../../etc/passwd', [Buffer.from('one')], 0);
    const b = await storeUpload(dir, 'passwd', [Buffer.from('two')], 0);
    expect(a.name).toBe('passwd');
    expect(b.name).not.toBe('passwd');
    expect(readFileSync(a.path, 'utf8')).toBe('one');
    expect((await listUploads(dir)).map((f) => f.name)).toEqual([a.name, b.name]);
  });

  it('refuses one upload past its cap (400) and leaves nothing behind', async () => {
    fresh();
    const big = (function* () {
      for (let i = 0; i <= MAX_UPLOAD_BYTES / (1 << 20); i++) yield Buffer.alloc(1 << 20);
    })();
    expect(await codeOf(storeUpload(dir, 'big.bin', big, 0))).toBe('bad_request');
    expect(await listUploads(dir)).toEqual([]);
  });

  it('refuses past the session\'s total (507), however the bytes are split', async () => {
    fresh();
    // A sparse file counts its full size, as the quota sees it.
    writeFileSync(join(dir, 'earlier.bin'), '');
    truncateSync(join(dir, 'earlier.bin'), MAX_SESSION_UPLOAD_BYTES - 10);
    expect(await codeOf(storeUpload(dir, 'fits.txt', [Buffer.alloc(10)], 0))).toBe('stored');
    expect(await codeOf(storeUpload(dir, 'over.txt', [Buffer.alloc(1)], 0))).toBe('insufficient_storage');
  });

  it('counts the real dir behind a link (a warm spare\'s) and uploads side by side one at a time', async () => {
    fresh();
    mkdirSync(join(dir, 'real'));
    symlinkSync(join(dir, 'real'), join(dir, 'link'));
    writeFileSync(join(dir, 'real', 'earlier.bin'), '');
    truncateSync(join(dir, 'real', 'earlier.bin'), MAX_SESSION_UPLOAD_BYTES - 25);
    const link = join(dir, 'link');
    const codes = await Promise.all([1, 2, 3, 4].map((i) => codeOf(storeUpload(link, `f${i}.txt`, [Buffer.alloc(10)], 0))));
    expect(codes.sort()).toEqual(['insufficient_storage', 'insufficient_storage', 'stored', 'stored']);
  });

  it('refuses under the free-space floor (507), as new sessions are', async () => {
    fresh();
    expect(await codeOf(storeUpload(dir, 'a.txt', [Buffer.from('x')], 1 << 24))).toBe('insufficient_storage');
  });
});
