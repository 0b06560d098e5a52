import { afterEach, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { apiKey, bundleChecks, formatCheck, isBundle, shm, stateDisk } from '../../../src/cli/doctor.js';

const REPO = resolve(import.meta.dirname, '../../..');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'handoff-doctor-'));
  dirs.push(d);
  return d;
}

/** An /opt/handoff as install.sh lays it out, with an /etc beside it; `node` is this test's Node. */
function fakeBundle(): { root: string; etc: string; node: string } {
  const base = tmp();
  const root = join(base, 'opt/handoff');
  const etc = join(base, 'etc');
  for (const d of ['dist/cli', 'bin', 'node/bin']) mkdirSync(join(root, d), { recursive: true });
  mkdirSync(join(etc, 'systemd/system'), { recursive: true });
  writeFileSync(join(root, 'VERSION'), '0.1.0\n');
  writeFileSync(join(root, 'DEBS'), 'chromium 1\n');
  writeFileSync(join(root, 'package.json'), '{"name":"handoff","type":"module"}');
  writeFileSync(join(root, 'dist/cli/main.js'), '');
  writeFileSync(join(root, 'bin/handoff.js'), '');
  symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'));
  symlinkSync(process.execPath, join(root, 'node/bin/node'));
  const node = join(root, 'node/bin/node');
  writeFileSync(join(etc, 'systemd/system/handoff.service'), `[Service]\nExecStart=${node} ${root}/bin/handoff.js serve\n`);
  writeFileSync(join(etc, 'passwd'), 'root:x:0:0::/root:/bin/sh\nhandoff:x:999:999::/var/lib/handoff:/usr/sbin/nologin\n');
  return { root, etc, node };
}

describe('handoff doctor checks', () => {
  it('prints a problem and its fix on one line', () => {
    expect(formatCheck({ name: 'API key', ok: false, info: '0.0.0.0 is not loopback and no API key is set', fix: 'set HANDOFF_API_KEY' })).toBe(
      'FAIL  API key    0.0.0.0 is not loopback and no API key is set  -> fix: set HANDOFF_API_KEY',
    );
    expect(formatCheck({ name: 'fonts', ok: true, info: '12 fonts', fix: 'unused' })).toBe('ok    fonts      12 fonts');
  });

  it('the API key is required off loopback only', () => {
    expect(apiKey('127.0.0.1', null).ok).toBe(true);
    expect(apiKey('::1', null).ok).toBe(true);
    expect(apiKey('0.0.0.0', 'k').ok).toBe(true);
    const c = apiKey('0.0.0.0', null);
    expect(c.ok).toBe(false);
    expect(c.fix).toMatch(/HANDOFF_API_KEY/);
  });

  it('state dir: free space against the minimum, a dir still to be created is judged by its parent', () => {
    const d = tmp();
    expect(stateDisk(d, 1).ok).toBe(true);
    const later = stateDisk(join(d, 'a/b'), 1);
    expect(later.ok).toBe(true);
    expect(later.info).toContain('to be created');
    const full = stateDisk(d, Number.MAX_SAFE_INTEGER);
    expect(full.ok).toBe(false);
    expect(full.fix).toMatch(/free at least .* MB/);
  });

  it('/dev/shm: a tmpfs with room for every session; a disk dir is refused with the mount that fixes it', () => {
    expect(shm('/dev/shm', 1).ok).toBe(true);
    const notTmpfs = shm(tmp(), 1);
    expect(notTmpfs.ok).toBe(false);
    expect(notTmpfs.info).toContain('is not a tmpfs');
    expect(notTmpfs.fix).toMatch(/^sudo mount -t tmpfs -o size=\d+m tmpfs /);
    // More sessions than it has room for: 8 MB each.
    const tooMany = shm('/dev/shm', 10_000_000);
    expect(tooMany.ok).toBe(false);
    expect(tooMany.fix).toMatch(/remount,size=\d+m \/dev\/shm \(Docker: --shm-size=/);
  });

  it('a bundle install: its layout, its Node running, addons loading, the unit and the user', () => {
    const b = fakeBundle();
    expect(isBundle(b.root)).toBe(true);
    expect(isBundle(REPO)).toBe(false);
    const all = bundleChecks(b.root, b.node, b.etc);
    expect(all.filter((c) => !c.ok)).toEqual([]);
    expect(all.map((c) => c.info).join('\n')).toMatch(/native addons \(better-sqlite3, sharp\) load/);
  });

  it('a bundle install: each broken part is named with its fix', () => {
    const b = fakeBundle();
    const other = bundleChecks(b.root, '/usr/bin/node-elsewhere', b.etc).filter((c) => !c.ok);
    expect(other.map((c) => c.info)).toEqual([expect.stringContaining('this runs /usr/bin/node-elsewhere')]);
    expect(other[0]!.fix).toContain('/usr/local/bin/handoff');

    // Another bundle (Node caches where a module resolved from a path): no node_modules inside.
    const c = fakeBundle();
    rmSync(join(c.root, 'node_modules'));
    mkdirSync(join(c.root, 'node_modules'));
    writeFileSync(join(c.etc, 'systemd/system/handoff.service'), '[Service]\nExecStart=/usr/bin/node /opt/handoff/bin/handoff.js serve\n');
    writeFileSync(join(c.etc, 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
    const broken = bundleChecks(c.root, c.node, c.etc).filter((c) => !c.ok);
    expect(broken.map((c) => c.info)).toEqual([
      expect.stringContaining('missing in'),
      expect.stringContaining('native addons do not load'),
      expect.stringContaining('the systemd unit runs /usr/bin/node'),
      'no handoff user (the unit runs as it)',
    ]);
    for (const c of broken) expect(c.fix).toMatch(/rerun install\.sh/);
  });
});
