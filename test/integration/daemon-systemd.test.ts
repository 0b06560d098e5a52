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

/** `systemd-analyze security --offline=true`: the overall exposure (0 safest .. 10) and the failed checks. */
function security(path: string): Promise<{ exposure: number; output: string }> {
  return new Promise((res, rej) => {
    execFile('systemd-analyze', ['security', '--offline=true', '--no-pager', path], { env: { ...process.env, SYSTEMD_LOG_LEVEL: 'warning', SYSTEMD_COLORS: '0' }, timeout: 60_000 }, (_err, stdout, stderr) => {
      const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(stdout + stderr);
      if (!m) rej(new Error(`no exposure level in: ${(stdout + stderr).slice(-500)}`));
      else res({ exposure: Number(m[1]), output: stdout });
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

  it('runs as an unprivileged user with no capabilities, and systemd-analyze security rates it 3.0 or less', async () => {
    const text = readFileSync(UNIT, 'utf8');
    // Not root (Chromium's own sandbox is on only as a user), nothing to regain privileges with.
    expect(text).toMatch(/^User=handoff$/m);
    expect(text).not.toMatch(/^User=root$/m);
    expect(text).toMatch(/^CapabilityBoundingSet=$/m);
    expect(text).toMatch(/^NoNewPrivileges=yes$/m);
    // What bubblewrap and Chromium's sandbox need stays allowed: user, mount, pid, net namespaces and mount(2).
    expect(text).toMatch(/^RestrictNamespaces=user mnt pid net$/m);
    expect(text).toMatch(/^SystemCallFilter=@system-service @mount seccomp$/m);
    const { exposure, output } = await security(UNIT);
    expect(exposure, output).toBeLessThanOrEqual(3.0);
    // The rating reads these settings: a unit without them would score far worse (below).
    expect(output).toMatch(/✓ CapabilityBoundingSet=~CAP_SYS_ADMIN/);
  });

  it('the exposure check can fail: the same unit without its hardening scores above 3.0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'handoff-unit-'));
    try {
      const copy = join(dir, 'handoff.service');
      const hardening = /^(CapabilityBoundingSet|RestrictAddressFamilies|RestrictNamespaces|SystemCallFilter|PrivateDevices|ProtectClock|ProtectKernelLogs|ProtectHostname|PrivateMounts|User|Group)=.*$/gm;
      writeFileSync(copy, readFileSync(UNIT, 'utf8').replace(hardening, ''));
      const { exposure } = await security(copy);
      expect(exposure).toBeGreaterThan(3.0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
