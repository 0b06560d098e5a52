import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
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
        // The leader may exit before its children have: a sandbox's init (bwrap's child, pid 1
        // of its namespace) ends only once everything in the namespace has torn down its
        // memory, and the outer bwrap does not wait for that when the group is SIGKILLed.
        const below = hasExited ? [] : childrenOf(pid);
        // No grace: straight to SIGKILL (a SIGTERM first would start a shutdown that only
        // costs CPU, and the timer can fire late on a loaded loop).
        if (!hasExited) signalGroup(pid, graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
        const timer = setTimeout(() => signalGroup(pid, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
        // Children that outlived the leader still belong to the group.
        signalGroup(pid, 'SIGKILL');
        if (!(await allGone(below, CHILDREN_WAIT_MS))) logger?.warn('a child process outlived its parent', { pid, children: below.map((c) => c.pid) });
      })();
      return closing;
    },
  };
}

/**
 * How long close() waits for the leader's children once the leader is gone: an exit stuck in
 * D state (a hung disk) must not hold a stop, and a session closes up to four parts in turn.
 */
const CHILDREN_WAIT_MS = 5000;

interface ProcessRef {
  pid: number;
  /** Start time (field 22 of /proc/PID/stat): a reused pid is another process. */
  started: string;
}

/** /proc/PID/stat's fields we use, or null once the pid is free (Linux). */
export function procStat(pid: number): { comm: string; state: string; ppid: number; started: string } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split at the last ')'.
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    return { comm: stat.slice(stat.indexOf('(') + 1, close), state: fields[0]!, ppid: Number(fields[1]), started: fields[19]! };
  } catch {
    return null;
  }
}

/** The direct children of `pid` now; none where the kernel does not list them. */
function childrenOf(pid: number): ProcessRef[] {
  let list: string;
  try {
    list = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8');
  } catch {
    return [];
  }
  const out: ProcessRef[] = [];
  for (const word of list.split(' ')) {
    const child = Number(word);
    const stat = word && procStat(child);
    if (stat) out.push({ pid: child, started: stat.started });
  }
  return out;
}

/**
 * Resolves true once each process has exited (gone, or a zombie: its memory is released and,
 * as a namespace's init, everything in the namespace is gone), false after `timeoutMs`.
 */
async function allGone(procs: ProcessRef[], timeoutMs: number): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  for (let left = procs; ; ) {
    left = left.filter((p) => {
      const stat = procStat(p.pid);
      return stat !== null && stat.started === p.started && stat.state !== 'Z' && stat.state !== 'X';
    });
    if (left.length === 0) return true;
    if (performance.now() > until) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
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
