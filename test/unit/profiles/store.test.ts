import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProfileStore } from '../../../src/profiles/store.js';
import { sealDir, unsealFile } from '../../../src/profiles/archive.js';
import { loadProfileKey } from '../../../src/profiles/key.js';
import { validProfileName } from '../../../src/profiles/name.js';
import { silentLogger } from '../../../src/util/logger.js';
import type { AuditInput } from '../../../src/audit/log.js';
import { HandoffError } from '../../../src/util/errors.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'handoff-profiles-test-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const code = async (p: Promise<unknown> | (() => unknown)) => {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return e instanceof HandoffError ? { code: e.code, ...e.extra } : { error: (e as Error).message };
  }
  return null;
};

/** Every file under `dir`, relative, and whether any holds `needle`. */
function walk(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...walk(dir, p));
    else out.push(p);
  }
  return out;
}

function store(o: { key?: Buffer | null; root?: string; rows?: AuditInput[] } = {}) {
  const rows = o.rows ?? [];
  return ProfileStore.open({ root: o.root ?? join(tmp(), 'profiles'), key: o.key ?? null, audit: { append: (r) => rows.push(r) }, logger: silentLogger });
}

describe('profile names', () => {
  it('accepts the API.md pattern and refuses the rest', () => {
    for (const ok of ['acme', 'a', 'A.b_c-9', '.hidden', 'x'.repeat(64), '..a']) expect(validProfileName(ok)).toBe(ok);
    for (const bad of ['', '.', '..', '...', 'x'.repeat(65), 'a/b', 'a b', '../x', 'é', 'a\0']) expect(() => validProfileName(bad), bad).toThrow(HandoffError);
  });
});

describe('ProfileStore', () => {
  it('one live session per profile: the second claim gets 409 profile_in_use naming the holder; free again after release', async () => {
    const rows: AuditInput[] = [];
    const s = await store({ rows });
    const a = s.claim('acme', { sessionId: 's1', runId: 'r1' });
    expect(await code(() => s.claim('acme', { sessionId: 's2', runId: 'r2' }))).toEqual({ code: 'profile_in_use', session_id: 's1' });
    const opened = await a.open();
    expect(statSync(opened.dir).mode & 0o777).toBe(0o700);
    expect(statSync(s.root).mode & 0o777).toBe(0o700);
    writeFileSync(join(opened.dir, 'Default', 'Cookies'), 'sid=secret');
    expect(await code(s.delete('acme'))).toEqual({ code: 'profile_in_use', session_id: 's1' });
    await a.release(['https://example.com/a', 'about:blank']);
    await a.release(); // idempotent
    const b = s.claim('acme', { sessionId: 's2', runId: 'r2' });
    const again = await b.open();
    expect(readFileSync(join(again.dir, 'Default', 'Cookies'), 'utf8')).toBe('sid=secret');
    expect(again.lastTabs).toEqual(['https://example.com/a', 'about:blank']);
    await b.release();
    expect(rows.map((r) => [r.type, r.session_id, r.run_id])).toEqual([
      ['profile_attached', 's1', 'r1'],
      ['profile_released', 's1', 'r1'],
      ['profile_attached', 's2', 'r2'],
      ['profile_released', 's2', 'r2'],
    ]);
    expect(rows[0]!.detail).toMatchObject({ name: 'acme', sealed: false });
  });

  it('never follows a link the browser planted in its user-data dir (security review: writes and reads went through them)', async () => {
    const s = await store();
    const outside = tmp();
    const victimTabs = join(outside, 'victim-tabs');
    const victimPrefs = join(outside, 'victim-prefs');
    writeFileSync(victimTabs, 'untouched');
    writeFileSync(victimPrefs, '{"secret":"daemon-only"}');
    const a = s.claim('links', { sessionId: 's1', runId: 'r1' });
    const { dir } = await a.open();
    symlinkSync(victimTabs, join(dir, 'handoff-tabs.json'));
    rmSync(join(dir, 'Default'), { recursive: true, force: true });
    mkdirSync(join(dir, 'Default'));
    symlinkSync(victimPrefs, join(dir, 'Default', 'Preferences'));
    await a.release(['https://attacker.example/"payload"']);
    const b = s.claim('links', { sessionId: 's2', runId: 'r2' });
    const again = await b.open();
    expect(readFileSync(victimTabs, 'utf8')).toBe('untouched');
    expect(readFileSync(victimPrefs, 'utf8')).toBe('{"secret":"daemon-only"}');
    expect(readFileSync(join(again.dir, 'Default', 'Preferences'), 'utf8')).not.toContain('daemon-only');
    await b.release();
  });

  it('lists name, size, created, last used and the last session; deletes', async () => {
    const s = await store();
    expect(await s.list()).toEqual([]);
    const a = s.claim('one', { sessionId: 's1', runId: 'r1' });
    const { dir } = await a.open();
    expect((await s.list())[0]).toMatchObject({ name: 'one', session_id: 's1' });
    writeFileSync(join(dir, 'data'), Buffer.alloc(5000));
    await a.release();
    const [p] = await s.list();
    expect(p!.name).toBe('one');
    expect(p!.size).toBeGreaterThanOrEqual(5000);
    expect(Date.parse(p!.created_at)).toBeGreaterThan(0);
    expect(Date.parse(p!.last_used_at!)).toBeGreaterThanOrEqual(Date.parse(p!.created_at));
    expect(p!.session_id).toBe('s1');
    await s.delete('one');
    expect(await s.list()).toEqual([]);
    expect(await code(s.delete('one'))).toEqual({ code: 'not_found' });
    expect(await code(s.delete('..'))).toEqual({ code: 'bad_request' });
  });

  it('a failed open releases cleanly and a claim that never opened frees the name', async () => {
    const s = await store();
    const a = s.claim('p', { sessionId: 's1', runId: 'r1' });
    await a.release();
    expect(s.holderOf('p')).toBeNull();
    expect(await code(() => s.claim('.', { sessionId: 's1', runId: 'r1' }))).toEqual({ code: 'bad_request' });
  });

  it('with a key: no readable cookie file at rest, only the sealed file; opens again with the key, not with another', async () => {
    const key = randomBytes(32);
    const root = join(tmp(), 'profiles');
    const s = await store({ key, root });
    const a = s.claim('acme', { sessionId: 's1', runId: 'r1' });
    const { dir } = await a.open();
    writeFileSync(join(dir, 'Default', 'Cookies'), 'SQLite format 3 sid=TOPSECRET-COOKIE');
    mkdirSync(join(dir, 'Default', 'Cache'), { recursive: true });
    writeFileSync(join(dir, 'Default', 'Cache', 'blob'), 'cached');
    symlinkSync('host-123', join(dir, 'SingletonLock'));
    await a.release();
    const files = walk(join(root, 'acme'));
    expect(files.sort()).toEqual(['meta.json', 'user-data.sealed']);
    const sealed = readFileSync(join(root, 'acme', 'user-data.sealed'));
    expect(sealed.includes('TOPSECRET')).toBe(false);
    expect(statSync(join(root, 'acme', 'user-data.sealed')).mode & 0o777).toBe(0o600);

    const other = await store({ key: randomBytes(32), root });
    const wrong = other.claim('acme', { sessionId: 's2', runId: 'r2' });
    expect(await code(wrong.open())).toMatchObject({ code: 'browser_failed' });
    await wrong.release();
    expect(walk(join(root, 'acme')).sort()).toEqual(['meta.json', 'user-data.sealed']); // nothing lost, nothing left plain

    const noKey = await store({ root });
    const plain = noKey.claim('acme', { sessionId: 's2', runId: 'r2' });
    expect(await code(plain.open())).toMatchObject({ code: 'browser_failed' });
    await plain.release();

    const b = s.claim('acme', { sessionId: 's3', runId: 'r3' });
    const opened = await b.open();
    expect(readFileSync(join(opened.dir, 'Default', 'Cookies'), 'utf8')).toContain('TOPSECRET-COOKIE');
    expect(existsSync(join(opened.dir, 'Default', 'Cache'))).toBe(false); // caches are not kept
    expect(existsSync(join(opened.dir, 'SingletonLock'))).toBe(false);
    await b.release();
  });

  it('at start, seals a profile a killed daemon left plain, and keeps the sealed copy when both exist', async () => {
    const key = randomBytes(32);
    const root = join(tmp(), 'profiles');
    const s = await store({ root });
    const a = s.claim('left', { sessionId: 's1', runId: 'r1' });
    const { dir } = await a.open();
    writeFileSync(join(dir, 'Cookies'), 'plain-secret');
    // The daemon "dies" here: no release. A new one with a key seals it.
    await store({ key, root });
    expect(walk(join(root, 'left')).sort()).toEqual(['meta.json', 'user-data.sealed']);
    // Both present (killed between rename and rm): the sealed copy wins.
    mkdirSync(join(root, 'left', 'user-data'));
    writeFileSync(join(root, 'left', 'user-data', 'Cookies'), 'stale');
    writeFileSync(join(root, 'left', 'user-data.sealed.tmp'), 'half');
    const s2 = await store({ key, root });
    expect(walk(join(root, 'left')).sort()).toEqual(['meta.json', 'user-data.sealed']);
    const b = s2.claim('left', { sessionId: 's2', runId: 'r2' });
    expect(readFileSync(join((await b.open()).dir, 'Cookies'), 'utf8')).toBe('plain-secret');
    await b.release();
  });

  it('a release and the next open of the same profile run in order (the next session waits for the seal)', async () => {
    const key = randomBytes(32);
    const s = await store({ key });
    const a = s.claim('p', { sessionId: 's1', runId: 'r1' });
    const { dir } = await a.open();
    writeFileSync(join(dir, 'big'), randomBytes(2 * 1024 * 1024));
    writeFileSync(join(dir, 'mark'), 'v1');
    const released = a.release();
    const b = s.claim('p', { sessionId: 's2', runId: 'r2' }); // free as soon as the release began
    const opened = await b.open();
    await released;
    expect(readFileSync(join(opened.dir, 'mark'), 'utf8')).toBe('v1');
    expect(statSync(join(opened.dir, 'big')).size).toBe(2 * 1024 * 1024);
    await b.release();
  });
});

describe('sealed archive', () => {
  it('round-trips dirs and files (empty, large, binary), refuses a flipped byte and a truncated file', async () => {
    const key = randomBytes(32);
    const src = join(tmp(), 'src');
    mkdirSync(join(src, 'a', 'b'), { recursive: true });
    mkdirSync(join(src, 'empty-dir'));
    writeFileSync(join(src, 'a', 'b', 'x.bin'), randomBytes(3 * 1024 * 1024 + 7));
    writeFileSync(join(src, 'empty'), '');
    writeFileSync(join(src, 'name with spaces ünï'), 'hi');
    const file = join(tmp(), 'sealed');
    const stats = await sealDir(src, file, key);
    expect(stats.files).toBe(3);
    const out = join(tmp(), 'out');
    await unsealFile(file, out, key);
    expect(walk(out).sort()).toEqual(walk(src).sort());
    expect(readFileSync(join(out, 'a', 'b', 'x.bin')).equals(readFileSync(join(src, 'a', 'b', 'x.bin')))).toBe(true);
    expect(existsSync(join(out, 'empty-dir'))).toBe(true);

    const bytes = readFileSync(file);
    const flipped = Buffer.from(bytes);
    flipped[Math.floor(bytes.length / 2)]! ^= 1;
    writeFileSync(file, flipped);
    const out2 = join(tmp(), 'out2');
    await expect(unsealFile(file, out2, key)).rejects.toThrow(/does not open with this key|damaged|truncated|incorrect header|invalid/);
    expect(existsSync(out2)).toBe(false);
    expect(existsSync(`${out2}.unsealing`)).toBe(false);
    writeFileSync(file, bytes.subarray(0, bytes.length - 40));
    await expect(unsealFile(file, out2, key)).rejects.toThrow();
    expect(existsSync(out2)).toBe(false);
  });
});

describe('profile key', () => {
  it('from hex or a 0600 file; refuses short, non-hex, others-readable, both, and never shows the key', () => {
    expect(loadProfileKey({ hex: null, file: null })).toBeNull();
    const hex = randomBytes(32).toString('hex');
    const k = loadProfileKey({ hex, file: null })!;
    expect(k.length).toBe(32);
    expect(k.equals(Buffer.from(hex, 'hex'))).toBe(false); // derived, not the raw secret
    const file = join(tmp(), 'key');
    writeFileSync(file, Buffer.from(hex, 'hex'), { mode: 0o600 });
    expect(loadProfileKey({ hex: null, file })!.equals(k)).toBe(true);
    const messages: string[] = [];
    const fails = (o: { hex: string | null; file: string | null }) => {
      try {
        loadProfileKey(o);
      } catch (e) {
        messages.push((e as Error).message);
        return true;
      }
      return false;
    };
    expect(fails({ hex: hex.slice(0, 62), file: null })).toBe(true);
    expect(fails({ hex: 'z'.repeat(64), file: null })).toBe(true);
    expect(fails({ hex, file })).toBe(true);
    chmodSync(file, 0o640);
    expect(fails({ hex: null, file })).toBe(true);
    const short = join(tmp(), 'short');
    writeFileSync(short, 'x'.repeat(31), { mode: 0o600 });
    expect(fails({ hex: null, file: short })).toBe(true);
    expect(fails({ hex: null, file: join(tmp(), 'missing') })).toBe(true);
    for (const m of messages) {
      expect(m).not.toContain(hex);
      expect(m).not.toContain(hex.slice(0, 62));
    }
  });
});

describe('profile parameter (API.md 3.1)', () => {
  it('is checked by parseSessionParams', async () => {
    const { parseSessionParams } = await import('../../../src/sessions/params.js');
    expect(parseSessionParams(new URLSearchParams('')).profile).toBeNull();
    for (const bad of ['..', 'a/b', 'x'.repeat(65)]) expect(() => parseSessionParams(new URLSearchParams({ profile: bad })), bad).toThrow(/profile must/);
    expect(parseSessionParams(new URLSearchParams('profile=acme')).profile).toBe('acme');
  });
});
