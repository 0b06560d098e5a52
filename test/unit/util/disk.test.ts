import { afterEach, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pruneStoppedSessionFiles, requireFreeSpace, treeBytes } from '../../../src/util/disk.js';
import { loadConfig } from '../../../src/config/config.js';
import { HandoffError } from '../../../src/util/errors.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function state(): string {
  const d = mkdtempSync(join(tmpdir(), 'handoff-disk-'));
  dirs.push(d);
  return d;
}

function file(path: string, bytes: number, ageMs: number): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, Buffer.alloc(bytes));
  const t = (Date.now() - ageMs) / 1000;
  utimesSync(path, t, t);
  utimesSync(join(path, '..'), t, t);
}

describe('disk limits (README "Disk")', () => {
  it('prunes the dirs of stopped sessions past the retention, keeps live and recent ones', () => {
    const s = state();
    const day = 86_400_000;
    file(join(s, 'downloads', 'old', 'a.bin'), 10, 8 * day);
    file(join(s, 'recordings', 'old', 'r.mp4'), 10, 8 * day);
    file(join(s, 'uploads', 'live', 'u.txt'), 10, 30 * day);
    file(join(s, 'downloads', 'recent', 'b.bin'), 10, day);
    // An old dir with one fresh file is recent.
    file(join(s, 'downloads', 'mixed', 'old.bin'), 10, 30 * day);
    file(join(s, 'downloads', 'mixed', 'new.bin'), 10, 1000);
    const removed = pruneStoppedSessionFiles(s, 7 * day, (id) => id === 'live');
    expect(removed.sort()).toEqual(['downloads/old', 'recordings/old']);
    expect(existsSync(join(s, 'uploads', 'live', 'u.txt'))).toBe(true);
    expect(existsSync(join(s, 'downloads', 'recent'))).toBe(true);
    expect(existsSync(join(s, 'downloads', 'mixed'))).toBe(true);
    expect(treeBytes(join(s, 'downloads'))).toBe(30);
  });

  it('refuses below the free-space floor with 507 insufficient_storage; 0 is no floor', () => {
    const s = state();
    expect(() => requireFreeSpace(s, 0)).not.toThrow();
    expect(() => requireFreeSpace(s, null)).not.toThrow();
    let err: unknown;
    try {
      requireFreeSpace(s, 1 << 30);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HandoffError);
    expect((err as HandoffError).code).toBe('insufficient_storage');
    expect((err as HandoffError).message).toMatch(/MB free under the state dir.*--min-free-mb/);
  });

  it('config: quotas, cap, retention and floor have defaults and are validated', () => {
    const c = loadConfig([], {});
    expect(c).toMatchObject({ maxDownloadMb: 1024, maxDownloadTotalMb: 10240, maxRecordingMb: 1024, retentionMs: 7 * 86_400_000, minFreeMb: null });
    expect(loadConfig(['--retention', '12h', '--min-free-mb', '0', '--max-download-mb', '5'], {})).toMatchObject({ retentionMs: 12 * 3_600_000, minFreeMb: 0, maxDownloadMb: 5 });
    expect(loadConfig(['--retention', '0'], {}).retentionMs).toBe(0);
    expect(() => loadConfig(['--retention', 'soon'], {})).toThrow(/--retention must look like/);
    expect(() => loadConfig(['--max-download-mb', '0'], {})).toThrow(/--max-download-mb/);
  });
});
