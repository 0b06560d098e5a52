import { afterAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, startDaemon } from '../helpers/daemon.js';
import { api } from '../helpers/client.js';

const dirs: string[] = [];
const tmp = (prefix: string) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A profile as a session leaves it: a user-data dir with a cookie database, and its metadata. */
function leaveProfile(stateDir: string, name: string, secret: string): void {
  const dir = join(stateDir, 'profiles', name);
  mkdirSync(join(dir, 'user-data', 'Default'), { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, 'user-data', 'Default', 'Cookies'), `SQLite format 3\0 ${secret}`);
  writeFileSync(join(dir, 'meta.json'), JSON.stringify({ created_at: '2026-11-30T08:00:00.000Z', last_used_at: '2026-11-30T09:00:00.000Z', session_id: 'earlier', size: 0 }));
}

describe('profiles over REST, and the profile key', () => {
  it('a daemon with a profile key seals a profile left plain; GET /profiles lists it; DELETE removes it', async () => {
    const stateDir = tmp('handoff-profiles-state-');
    const keyFile = join(tmp('handoff-profiles-key-'), 'key');
    writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
    leaveProfile(stateDir, 'acme', 'COOKIE-SECRET-acme');
    const daemon = await startDaemon({ stateDir, args: ['--warm', '0', '--profile-key-file', keyFile] });
    try {
      // No readable cookie file at rest: one sealed file and the metadata.
      const dir = join(stateDir, 'profiles', 'acme');
      expect(readdirSync(dir).sort()).toEqual(['meta.json', 'user-data.sealed']);
      expect(readFileSync(join(dir, 'user-data.sealed')).includes('COOKIE-SECRET')).toBe(false);
      const list = await api(daemon.url, '/profiles');
      expect(list.status).toBe(200);
      expect(list.body.profiles).toEqual([{ name: 'acme', size: 0, created_at: '2026-11-30T08:00:00.000Z', last_used_at: '2026-11-30T09:00:00.000Z', session_id: 'earlier' }]);
      expect((await api(daemon.url, '/profiles/nope', { method: 'DELETE' })).body.error.code).toBe('not_found');
      expect((await api(daemon.url, '/profiles/...', { method: 'DELETE' })).status).toBe(400);
      expect((await api(daemon.url, '/profiles/acme', { method: 'DELETE' })).body).toEqual({ deleted: true });
      expect((await api(daemon.url, '/profiles')).body.profiles).toEqual([]);
      expect(readdirSync(join(stateDir, 'profiles'))).toEqual([]);
    } finally {
      await daemon.cleanup();
    }
  });

  it('GET and DELETE /profiles need the API key', async () => {
    const daemon = await startDaemon({ args: ['--warm', '0', '--api-key', 'k'.repeat(32)] });
    try {
      expect((await api(daemon.url, '/profiles')).status).toBe(401);
      expect((await api(daemon.url, '/profiles/x', { method: 'DELETE' })).status).toBe(401);
      expect((await api(daemon.url, `/profiles?api_key=${'k'.repeat(32)}`)).body).toEqual({ profiles: [] });
    } finally {
      await daemon.cleanup();
    }
  });

  it('refuses to start with a key file others can read, a short key or a bad hex key, and never prints the key', () => {
    const keyDir = tmp('handoff-profiles-key-');
    const key = randomBytes(32);
    const loose = join(keyDir, 'loose');
    writeFileSync(loose, key, { mode: 0o644 });
    const short = join(keyDir, 'short');
    writeFileSync(short, key.subarray(0, 16), { mode: 0o600 });
    const hexKey = key.toString('hex');
    for (const args of [['--profile-key-file', loose], ['--profile-key-file', short], ['--profile-key', hexKey.slice(0, 40)], ['--profile-key', hexKey, '--profile-key-file', short]]) {
      const stateDir = tmp('handoff-profiles-state-');
      const r = spawnSync(process.execPath, [BIN, 'serve', '--port', '0', '--vnc-port', '0', '--state-dir', stateDir, ...args], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status, args.join(' ')).not.toBe(0);
      const out = r.stdout + r.stderr;
      expect(out).toMatch(/profile[- ]key/i);
      expect(out).not.toContain(hexKey.slice(0, 40));
      expect(out).not.toContain(key.toString('base64').slice(0, 20));
    }
  });
});
