import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The unit file the README tells users to install (API.md 1: "/var/lib/handoff under systemd"). */
const UNIT = resolve(import.meta.dirname, '../../systemd/handoff.service');

function verify(path: string): Promise<{ code: number; output: string }> {
  return new Promise((res) => {
    execFile('systemd-analyze', ['verify', path], { env: { ...process.env, SYSTEMD_LOG_LEVEL: 'warning' }, timeout: 60_000 }, (err, stdout, stderr) => {
      res({ code: err ? Number((err as { code?: unknown }).code ?? -1) : 0, output: stdout + stderr });
    });
  });
}

describe('systemd/handoff.service', () => {
  it('passes systemd-analyze verify without warnings about the unit', async () => {
    const text = readFileSync(UNIT, 'utf8');
    expect(text).toMatch(/^ExecStart=\S*node\s+\S*bin\/handoff\.js serve/m);
    expect(text).toMatch(/^StateDirectory=handoff$/m);
    expect(text).toMatch(/^KillSignal=SIGTERM$/m);
    const r = await verify(UNIT);
    expect(r.output.split('\n').filter((l) => l.includes('handoff.service'))).toEqual([]);
    expect(r.code).toBe(0);
  });

  it('the check can fail: a copy with a missing ExecStart binary is rejected', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'handoff-unit-'));
    try {
      const copy = join(dir, 'handoff.service');
      writeFileSync(copy, readFileSync(UNIT, 'utf8').replace(/^ExecStart=\S+/m, 'ExecStart=/nonexistent/handoff-node'));
      const r = await verify(copy);
      expect(r.code).not.toBe(0);
      expect(r.output).toMatch(/nonexistent/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
