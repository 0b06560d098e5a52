import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pty from 'node-pty';
import { BIN } from '../helpers/daemon.js';

/** The CLI as a person meets it: in a terminal, reading what it prints and how it exits. */
function runInTerminal(args: string[], env: Record<string, string> = {}): Promise<{ output: string; exitCode: number }> {
  return new Promise((resolve) => {
    const term = pty.spawn(process.execPath, [BIN, ...args], { cols: 100, rows: 40, env: { ...process.env, ...env } as Record<string, string> });
    let output = '';
    term.onData((d) => (output += d));
    term.onExit(({ exitCode }) => resolve({ output: output.replace(/\r/g, ''), exitCode }));
  });
}

describe('handoff in a terminal', () => {
  it('--help lists the commands and every option with its environment variable', async () => {
    const { output, exitCode } = await runInTerminal(['--help']);
    expect(exitCode).toBe(0);
    for (const cmd of ['handoff serve', 'handoff sessions', 'handoff audit verify', 'handoff doctor']) expect(output).toContain(cmd);
    for (const opt of ['--port', 'HANDOFF_PORT', '--vnc-port', '--api-key', 'HANDOFF_API_KEY', '--state-dir']) expect(output).toContain(opt);
  });

  it('doctor checks each prerequisite and says all good on this machine', async () => {
    const { output, exitCode } = await runInTerminal(['doctor', '--port', '0', '--vnc-port', '0']);
    expect(output).toMatch(/ok\s+chromium/);
    expect(output).toMatch(/ok\s+Xvfb/);
    expect(output).toMatch(/ok\s+ffmpeg/);
    expect(output).toContain('all good');
    expect(exitCode).toBe(0);
  });

  it('talking to a daemon that is not there says so and how to point at one', async () => {
    const { output, exitCode } = await runInTerminal(['sessions', '--url', 'http://127.0.0.1:9']);
    expect(exitCode).toBe(1);
    expect(output).toContain('cannot reach the daemon at http://127.0.0.1:9');
    expect(output).toContain('--url');
  });

  it('a bad option names itself and exits 2', async () => {
    const { output, exitCode } = await runInTerminal(['serve', '--prot', '9222']);
    expect(exitCode).toBe(2);
    expect(output).toContain('unknown option --prot');
  });

  it('audit verify on an empty state dir reports an intact chain', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'handoff-test-cli-'));
    try {
      const { output, exitCode } = await runInTerminal(['audit', 'verify', '--state-dir', dir]);
      expect(output).toContain('audit chain OK: 0 rows verified');
      expect(exitCode).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
