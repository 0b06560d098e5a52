import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative } from 'node:path';
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
/** Size of a sandbox's private /dev/shm. */
const SHM_BYTES = 64 * 1024 * 1024;
/** coreutils env: sets the signal dispositions around bwrap (see sandboxCommand). */
const ENV = '/usr/bin/env';

export interface SandboxPolicy {
  /** Host paths bound read-write at the same path (they must exist). */
  writable?: string[];
  /** Host paths (files or dirs) bound read-only at the same path (they must exist). */
  readable?: string[];
  /** Host files bound read-only at another path inside (Chromium's managed policy file). */
  readableAt?: Array<{ source: string; dest: string }>;
  /** The whole environment inside: nothing of the daemon's passes (it may hold the API key). */
  env: Record<string, string>;
  /**
   * false: no pid namespace and no /proc at all. For a program that moves itself to a new
   * process group when getpgrp() is 0, which it is in a pid namespace whose group leader
   * (bwrap) is outside: Xvfb does, and then the launcher's SIGTERM to the group misses it.
   */
  pidNamespace?: boolean;
  /** Size cap of the private /tmp in bytes (default: the kernel's, half the memory). */
  tmpBytes?: number;
}

/** What of the host system a sandbox sees; hostLayout() reads it from this machine. */
export interface HostLayout {
  /** Dirs and files bound read-only at the same path (/usr, the allowed /etc entries, fontconfig's cache...). */
  system: string[];
  /** Symlinks re-created inside (merged /usr: /bin -> usr/bin; /etc/localtime, whose target names the time zone). */
  symlinks: Array<{ path: string; target: string }>;
  /** Dirs inside the system dirs hidden behind an empty tmpfs (/etc/ssl/private, /etc/handoff). */
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
  const tmpSize = policy.tmpBytes ? ['--size', String(policy.tmpBytes)] : [];
  // A tmpfs is memory a program can pin until it exits: /dev/shm is small (Chromium's shared
  // memory is memfds), /tmp capped where asked (a browser's profile lives there), /dev (device
  // nodes only) read-only once made.
  a.push('--dev', '/dev', '--size', String(SHM_BYTES), '--tmpfs', '/dev/shm', ...(pidNs ? ['--proc', '/proc'] : []), ...tmpSize, '--tmpfs', '/tmp');
  // After the tmpfs mounts, so paths under /tmp and /dev/shm are bound over them.
  for (const p of policy.readable ?? []) a.push('--ro-bind', p, p);
  for (const { source, dest } of policy.readableAt ?? []) a.push('--ro-bind', source, dest);
  for (const p of policy.writable ?? []) a.push('--bind', p, p);
  a.push('--remount-ro', '/dev', '--clearenv');
  for (const [k, v] of Object.entries(policy.env)) a.push('--setenv', k, v);
  a.push('--chdir', '/', ...(pidNs ? ['--unshare-pid'] : []), '--die-with-parent', '--cap-drop', 'ALL');
  return {
    cmd: ENV,
    args: ['--ignore-signal=TERM', bwrap, ...a, '--', ENV, '--default-signal=TERM', program, ...args],
  };
}

/** Read-only system dirs; the `/lib*`, `/bin`, `/sbin` that are symlinks (merged /usr) are re-created as such. */
const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/var/cache/fontconfig'];
/** Read-only too: the CPU count Chromium and ffmpeg size their threads by. */
const SYSTEM_EXTRA = ['/sys/devices/system/cpu'];
/**
 * What of /etc a session sees: an allow-list, not /etc minus a deny-list, since a root
 * daemon's browser runs as uid 0 and would read every root-only file a deny-list forgot
 * (/etc/default/cacerts). These are what Chromium, Xvfb and ffmpeg read: the dynamic linker,
 * fonts (and the alternatives their links go through), TLS trust, name resolution, users
 * and groups (getpwuid), the time zone, MIME types, X, GTK and XDG defaults, GL/Vulkan
 * loaders and audio client config. Entries missing on a host are skipped.
 */
const ETC_ALLOWED = [
  'ld.so.cache', 'ld.so.conf', 'ld.so.conf.d',
  'fonts', 'alternatives',
  'ssl', 'ca-certificates', 'ca-certificates.conf', 'pki', 'crypto-policies',
  'resolv.conf', 'hosts', 'nsswitch.conf', 'host.conf', 'gai.conf', 'services', 'protocols', 'networks',
  'passwd', 'group',
  'localtime', 'timezone', 'locale.alias', 'locale.conf',
  'mime.types', 'magic', 'magic.mime',
  'X11', 'gtk-2.0', 'gtk-3.0', 'xdg', 'dconf',
  'glvnd', 'vulkan', 'drirc', 'OpenCL',
  'pulse', 'alsa', 'asound.conf', 'openal',
  'os-release', 'lsb-release', 'debian_version',
].map((e) => `/etc/${e}`);
/**
 * Secrets inside the allowed /etc entries (private keys), and the daemon's configuration and
 * environment file (API key): not bound anyway, masked too so it stays hidden if it ever is.
 */
const HIDDEN = ['/etc/handoff', '/etc/ssl/private', '/etc/pki/tls/private'];

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
  for (const p of ETC_ALLOWED) {
    const st = lstatSafe(p);
    if (!st) continue;
    // A link stays a link (ICU reads the zone name from /etc/localtime's target); its target
    // is bound when it is outside the dirs already there (resolv.conf into /run, say).
    if (st.isSymbolicLink()) {
      layout.symlinks.push({ path: p, target: readlinkSync(p) });
      const real = realpathSafe(p);
      if (real && !layout.system.some((d) => inside(real, d))) layout.system.push(real);
    } else if (st.isDirectory() || st.isFile()) layout.system.push(p);
  }
  for (const p of HIDDEN) {
    const st = lstatSafe(p);
    if (!st) continue;
    if (st.isDirectory()) layout.hiddenDirs.push(p);
    else layout.hiddenFiles.push(p);
  }
  return layout;
}

function realpathSafe(p: string): string | null {
  try {
    return realpathSync(p);
  } catch {
    return null;
  }
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
  return withMountedRoot(sandboxCommand(program, args, { ...policy, readable }, layout));
}

/**
 * bwrap needs "/" to be a mount point (it first makes it a slave mount). In a plain chroot
 * (a build root, some CI) it is not, and bwrap fails with "Failed to make / slave". There a
 * sandboxed command first enters a mount namespace of its own in which the same tree is
 * bind-mounted on a directory and chrooted into: the files seen are the same, only "/" is now
 * a mount point. On an ordinary host (and under systemd) the command is unchanged.
 */
export function withMountedRoot(c: { cmd: string; args: string[] }): { cmd: string; args: string[] } {
  if (rootIsMountPoint()) return c;
  const mountDir = remountDir();
  return {
    cmd: '/usr/bin/unshare',
    // --propagation unchanged: making a non-mount "/" private fails just like bwrap does.
    args: ['--mount', '--propagation', 'unchanged', '--', '/bin/sh', '-c', 'mount --rbind / "$0" && cd "$0" && exec chroot . "$@"', mountDir, c.cmd, ...c.args],
  };
}

let rootMounted: boolean | undefined;
let remountedRoot: string | undefined;

/**
 * The directory the tree is bind-mounted on: made by this process under a random name (so
 * nobody can create it first), 0700, in the sticky /tmp (so nobody else can rename or swap
 * it between the mount and the chroot: root would chroot into their tree). Removed at exit.
 */
export function remountDir(): string {
  if (remountedRoot === undefined) {
    const dir = mkdtempSync(join(tmpdir(), '.handoff-root-'));
    process.once('exit', () => {
      try {
        rmdirSync(dir);
      } catch {
        // already gone, or something is mounted on it still: leave it
      }
    });
    remountedRoot = dir;
  }
  return remountedRoot;
}

/** Whether this process's "/" is a mount point (/proc/self/mountinfo lists one at "/"). */
function rootIsMountPoint(): boolean {
  if (rootMounted === undefined) {
    try {
      rootMounted = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((line) => line.split(' ')[4] === '/');
    } catch {
      rootMounted = true; // no /proc: leave the command as it is
    }
  }
  return rootMounted;
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
