import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Logger } from './logger.js';

/**
 * util-linux's setpriv sets the parent-death signal and then execs the program (same pid),
 * so a process we start is killed if this process dies without closing it (SIGKILL, a
 * crash). A restarted daemon still reaps what is left (their children, temp dirs).
 */
const SETPRIV = '/usr/bin/setpriv';
const canSetPdeathsig = existsSync(SETPRIV);

/**
 * The one way we start a child process: its own process group (so a kill reaches its
 * children too), the tail of stderr kept for error messages, a graceful stop that escalates
 * to SIGKILL of the group, and a close() that always awaits the real exit.
 */
export interface LaunchedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code (or signal name) once the process has really exited. */
  readonly exited: Promise<number | string>;
  readonly hasExited: boolean;
  stderrTail(): string;
  /** SIGTERM the group, SIGKILL after `graceMs` (0: SIGKILL at once), await exit. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

export interface LaunchOptions extends Omit<SpawnOptions, 'detached'> {
  logger?: Logger;
  /** Bytes of stderr to keep. */
  tailBytes?: number;
}

export function launchProcess(cmd: string, args: string[], opts: LaunchOptions = {}): LaunchedProcess {
  const { logger, tailBytes = 8192, ...spawnOpts } = opts;
  const [file, argv] = canSetPdeathsig ? [SETPRIV, ['--pdeathsig', 'KILL', '--', cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, { stdio: ['ignore', 'ignore', 'pipe'], ...spawnOpts, detached: true });
  let tail = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    tail = (tail + s).slice(-tailBytes);
  });
  let hasExited = false;
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      hasExited = true;
      resolve(code ?? signal ?? -1);
    });
    child.once('error', (err) => {
      tail += String(err.message);
      hasExited = true;
      resolve(-1);
    });
  });
  const pid = child.pid ?? -1;
  logger?.debug('process started', { cmd, pid });
  let closing: Promise<void> | undefined;
  return {
    child,
    pid,
    exited,
    get hasExited() {
      return hasExited;
    },
    stderrTail: () => tail,
    close(graceMs = 2000) {
      closing ??= (async () => {
        // No grace: straight to SIGKILL (a SIGTERM first would start a shutdown that only
        // costs CPU, and the timer can fire late on a loaded loop).
        if (!hasExited) signalGroup(pid, graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
        const timer = setTimeout(() => signalGroup(pid, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
        // Children that outlived the leader still belong to the group.
        signalGroup(pid, 'SIGKILL');
      })();
      return closing;
    },
  };
}

export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
