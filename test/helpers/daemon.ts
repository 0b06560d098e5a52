import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const BIN = resolve(import.meta.dirname, '../../bin/handoff.js');

export interface RunningDaemon {
  url: string;
  port: number;
  wsUrl: string;
  stateDir: string;
  proc: ChildProcess;
  logs: () => string;
  /** SIGTERM (default) and wait for exit; returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Stops the daemon (if running) and removes the state dir. */
  cleanup(): Promise<void>;
}

/**
 * Starts `handoff serve` on free ports with a fresh state dir (or the one given). Without a
 * spare Chromium (`--warm 0`) unless the test asks for the pool (`--warm` in args, or
 * HANDOFF_WARM): one idle browser per test daemon would cost the whole suite CPU.
 */
export async function startDaemon(opts: { args?: string[]; env?: Record<string, string>; stateDir?: string; startTimeoutMs?: number } = {}): Promise<RunningDaemon> {
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'handoff-test-state-'));
  const warm = opts.args?.includes('--warm') || opts.env?.HANDOFF_WARM !== undefined ? [] : ['--warm', '0'];
  const proc = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--vnc-port', '0', '--state-dir', stateDir, ...warm, ...(opts.args ?? [])], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const url = await new Promise<string>((res, rej) => {
    // A daemon that did not come up is not left running (nobody else holds its pid).
    const timer = setTimeout(() => (proc.kill('SIGKILL'), rej(new Error(`daemon did not start:\n${out}`))), opts.startTimeoutMs ?? 60_000); // 2 cores shared
    const onData = () => {
      const m = /handoff listening on (http:\/\/\S+?)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        res(m[1]!);
      }
    };
    proc.stdout!.on('data', onData);
    exited.then(() => rej(new Error(`daemon exited:\n${out}`)));
  });
  const port = Number(new URL(url).port);
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
    proc.kill(signal);
    return exited;
  };
  return {
    url,
    port,
    wsUrl: url.replace('http://', 'ws://'),
    stateDir,
    proc,
    logs: () => out,
    stop,
    async cleanup() {
      await stop();
      if (!opts.stateDir) rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
