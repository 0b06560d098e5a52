import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN } from '../helpers/daemon.js';

const stateDir = mkdtempSync(join(tmpdir(), 'handoff-doctor-state-'));
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

function doctor(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string }> {
  const base = { ...process.env, HANDOFF_API_KEY: '', ...env };
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'doctor', '--port', '0', '--vnc-port', '0', '--state-dir', stateDir, ...args], { env: base, timeout: 60_000 }, (err, stdout) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? -1) : 0, stdout });
    });
  });
}

describe('handoff doctor (the CLI)', () => {
  it('off loopback without an API key: every other check still runs, the key is the one problem, its fix on the same line', async () => {
    const r = await doctor(['--host', '0.0.0.0']);
    expect(r.stdout).toMatch(/^ok\s+chromium/m);
    expect(r.stdout).toMatch(/^ok\s+shm\s+\/dev\/shm is tmpfs/m);
    expect(r.stdout).toMatch(/^ok\s+state dir\s/m);
    expect(r.stdout).toMatch(/^FAIL\s+API key\s+listening on 0\.0\.0\.0 \(not loopback\) requires an API key\s+-> fix: set HANDOFF_API_KEY/m);
    expect(r.stdout).toContain('1 problem(s) found');
    expect(r.code).toBe(1);
  });

  it('off loopback with a key, or on loopback without one: all good', async () => {
    const withKey = await doctor(['--host', '0.0.0.0'], { HANDOFF_API_KEY: 'a-long-enough-key-1234' });
    expect(withKey.stdout).toMatch(/^ok\s+API key\s+0\.0\.0\.0 is not loopback: API key set/m);
    expect(withKey.code).toBe(0);
    const local = await doctor([]);
    expect(local.stdout).toMatch(/^ok\s+API key\s+127\.0\.0\.1 is loopback: no API key needed/m);
    expect(local.stdout).not.toMatch(/^FAIL/m);
    // Not a bundle install: no bundle lines from a checkout.
    expect(local.stdout).not.toMatch(/^\S+\s+bundle/m);
    expect(local.code).toBe(0);
  });
});
