import { existsSync, lstatSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, relative } from 'node:path';
import { HandoffError } from './errors.js';

/**
 * Every process a session starts (Xvfb, Chromium, ffmpeg) runs in a bubblewrap filesystem
 * sandbox (API.md 2: the browser sees only its own profile, downloads and uploads): the
 * system read-only, a private /tmp and /dev/shm, and only the host paths its policy names.
 * Nothing of the state dir (live-link.key, handoff.db), /etc/handoff or the daemon's home
 * is there, so neither a file:// URL nor the native file chooser can reach them.
 */

/** Debian's bubblewrap package; HANDOFF_BWRAP points elsewhere (another distro's path, tests). */
export const BWRAP = process.env.HANDOFF_BWRAP || '/usr/bin/bwrap';
/** coreutils env: sets the signal dispositions around bwrap (see sandboxCommand). */
const ENV = '/usr/bin/env';

export interface SandboxPolicy {
  /** Host paths bound read-write at the same path (they must exist). */
  writable?: string[];
  /** Host paths (files or dirs) bound read-only at the same path (they must exist). */
  readable?: string[];
  /** The whole environment inside: nothing of the daemon's passes (it may hold the API key). */
  env: Record<string, string>;
  /**
   * false: no pid namespace and no /proc at all. For a program that moves itself to a new
   * process group when getpgrp() is 0, which it is in a pid namespace whose group leader
   * (bwrap) is outside: Xvfb does, and then the launcher's SIGTERM to the group misses it.
   */
  pidNamespace?: boolean;
}

/** What of the host system a sandbox sees; hostLayout() reads it from this machine. */
export interface HostLayout {
  /** Dirs bound read-only at the same path (/usr, /etc, fontconfig's cache...). */
  system: string[];
  /** Top-level symlinks re-created inside (merged /usr: /bin -> usr/bin). */
  symlinks: Array<{ path: string; target: string }>;
  /** Dirs inside the system dirs hidden behind an empty tmpfs (/etc/handoff). */
  hiddenDirs: string[];
  /** Files inside the system dirs hidden behind /dev/null (/etc/shadow for a root daemon). */
  hiddenFiles: string[];
}

/**
 * The command line that runs `program args` sandboxed: pure, so it is unit-tested as is.
 *
 * - `--unshare-pid`: the sandbox's /proc shows only its own processes (with the host's pids
 *   a root browser could read the daemon's environment and `/proc/PID/root`).
 * - No `--new-session`: the launcher already made the process a session and group leader
 *   without a terminal, and its stop signals the whole group, bwrap and the program alike.
 * - `--die-with-parent`: when bwrap dies (the launcher's parent-death SIGKILL when the daemon
 *   dies) the pid namespace and everything in it dies too.
 * - bwrap does not forward signals and SIGTERM kills it at once, which would SIGKILL the
 *   program before it can finish (ffmpeg's last fragment, Chromium's profile). So bwrap runs
 *   with SIGTERM ignored and the program with it reset: the group's SIGTERM reaches the
 *   program alone, and bwrap exits with its status when it has finished.
 * - `--cap-drop ALL`: a root daemon's bwrap would keep root's capabilities inside (mount,
 *   mknod, DAC override); none of these programs needs any.
 * - Network, IPC (X MIT-SHM segments) and users stay shared: the browser browses.
 */
export function sandboxCommand(program: string, args: string[], policy: SandboxPolicy, layout: HostLayout, bwrap = BWRAP): { cmd: string; args: string[] } {
  const a: string[] = [];
  for (const dir of layout.system) a.push('--ro-bind', dir, dir);
  for (const { path, target } of layout.symlinks) a.push('--symlink', target, path);
  for (const dir of layout.hiddenDirs) a.push('--tmpfs', dir);
  for (const file of layout.hiddenFiles) a.push('--ro-bind', '/dev/null', file);
  const pidNs = policy.pidNamespace ?? true;
  a.push('--dev', '/dev', '--tmpfs', '/dev/shm', ...(pidNs ? ['--proc', '/proc'] : []), '--tmpfs', '/tmp');
  // After the tmpfs mounts, so paths under /tmp and /dev/shm are bound over them.
  for (const p of policy.readable ?? []) a.push('--ro-bind', p, p);
  for (const p of policy.writable ?? []) a.push('--bind', p, p);
  a.push('--clearenv');
  for (const [k, v] of Object.entries(policy.env)) a.push('--setenv', k, v);
  a.push('--chdir', '/', ...(pidNs ? ['--unshare-pid'] : []), '--die-with-parent', '--cap-drop', 'ALL');
  return {
    cmd: ENV,
    args: ['--ignore-signal=TERM', bwrap, ...a, '--', ENV, '--default-signal=TERM', program, ...args],
  };
}

/** Read-only system dirs; the `/lib*`, `/bin`, `/sbin` that are symlinks (merged /usr) are re-created as such. */
const SYSTEM_DIRS = ['/usr', '/etc', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/var/cache/fontconfig'];
/** Read-only too: the CPU count Chromium and ffmpeg size their threads by. */
const SYSTEM_EXTRA = ['/sys/devices/system/cpu'];
/**
 * Secrets inside /etc: the daemon's configuration and environment file (API key), and what a
 * daemon running as root could otherwise read (password hashes, host keys, private keys).
 */
const HIDDEN = ['/etc/handoff', '/etc/shadow', '/etc/shadow-', '/etc/gshadow', '/etc/gshadow-', '/etc/ssh', '/etc/ssl/private', '/etc/sudoers', '/etc/sudoers.d', '/etc/credstore', '/etc/credstore.encrypted'];

/**
 * The system part of the sandbox as this host lays it out now: read at every launch (a few
 * lstat calls), so a secret made after the daemon started (/etc/handoff) is hidden too.
 */
export function hostLayout(): HostLayout {
  const layout: HostLayout = { system: [], symlinks: [], hiddenDirs: [], hiddenFiles: [] };
  for (const p of SYSTEM_DIRS) {
    const st = lstatSafe(p);
    if (!st) continue;
    if (st.isSymbolicLink() && dirname(p) === '/') layout.symlinks.push({ path: p, target: readlinkSync(p) });
    else if (st.isDirectory()) layout.system.push(p);
  }
  for (const p of SYSTEM_EXTRA) if (existsSync(p)) layout.system.push(p);
  // /etc/resolv.conf is often a link into /run (systemd-resolved): DNS needs its target too.
  try {
    const resolv = realpathSync('/etc/resolv.conf');
    if (!layout.system.some((d) => inside(resolv, d))) layout.system.push(dirname(resolv));
  } catch {
    // No resolv.conf: Chromium falls back to its defaults.
  }
  for (const p of HIDDEN) {
    const st = lstatSafe(p);
    if (!st) continue;
    if (st.isDirectory()) layout.hiddenDirs.push(p);
    else layout.hiddenFiles.push(p);
  }
  return layout;
}

function lstatSafe(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}

function inside(p: string, dir: string): boolean {
  const r = relative(dir, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
}

/**
 * `sandboxCommand` for this host, or `browser_failed` naming the package when bubblewrap is
 * missing: a session never runs unsandboxed.
 */
export function sandboxed(program: string, args: string[], policy: SandboxPolicy): { cmd: string; args: string[] } {
  if (!isExecutable(BWRAP)) {
    throw new HandoffError('browser_failed', `bubblewrap is not installed (${BWRAP}); sessions run only sandboxed: apt-get install bubblewrap`);
  }
  const layout = hostLayout();
  // A browser installed outside the system dirs (/opt/google/chrome...) needs its own dir.
  const readable = [...(policy.readable ?? [])];
  const real = isAbsolute(program) && existsSync(program) ? realpathSync(program) : null;
  if (real && !layout.system.some((d) => inside(dirname(real), d))) readable.push(dirname(real));
  return sandboxCommand(program, args, { ...policy, readable }, layout);
}

function isExecutable(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** What a client of an X display needs inside its sandbox: the display's socket and cookie file, those that exist. */
export function displayClientPaths(display: { name: string; authFile: string }): string[] {
  const n = /^:(\d+)$/.exec(display.name)?.[1];
  // The abstract socket (shared network namespace) is what xcb tries first; the file is the fallback.
  const socket = n !== undefined ? `${X11_SOCKET_DIR}/X${n}` : null;
  return [display.authFile, socket].filter((p): p is string => !!p && existsSync(p));
}

/** Where X servers put their sockets; Xvfb's sandbox binds it so the daemon finds them. */
export const X11_SOCKET_DIR = '/tmp/.X11-unix';

/** The daemon's own locale and time zone, harmless and wanted inside (dates, fonts). */
export function localeEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && (k === 'LANG' || k === 'LANGUAGE' || k === 'TZ' || k.startsWith('LC_'))) out[k] = v;
  }
  return out;
}

/** PATH inside a sandbox: system dirs only. */
export const SANDBOX_PATH = '/usr/local/bin:/usr/bin:/bin';
