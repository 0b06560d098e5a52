import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { accessSync, constants, existsSync, readFileSync, realpathSync, statfsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ConfigError, isLoopback, type Config } from '../config/config.js';
import { BWRAP, sandboxed, SANDBOX_PATH } from '../util/sandbox.js';
import { THROWAWAY_TMP_BYTES } from '../browser/chromium.js';

export interface Check {
  name: string;
  ok: boolean;
  info: string;
  fix?: string;
}

const run = promisify(execFile);
const APT = 'sudo apt-get install -y';
/** The app's root: dist/cli/doctor.js -> the checkout, or /opt/handoff for a bundle install. */
const APP_ROOT = resolve(import.meta.dirname, '../..');
const MB = 1e6;
/** Recordings and downloads grow in the state dir; below this it is a problem. */
export const MIN_STATE_FREE = 1000 * MB;

/**
 * `handoff doctor`: each prerequisite, what was found, and on the same line the command that
 * fixes it. `load` reads the config; `extraEnv` lets the doctor read the rest of it when the
 * only problem is a missing API key (which it then reports as a check of its own).
 */
export async function runDoctor(load: (extraEnv?: Record<string, string>) => Readonly<Config>): Promise<number> {
  let config: Readonly<Config>;
  let keyCheck: Check;
  try {
    config = load();
    keyCheck = apiKey(config.host, config.apiKey);
  } catch (e) {
    if (!(e instanceof ConfigError) || !/requires an API key/.test(e.message)) throw e;
    config = load({ HANDOFF_API_KEY: 'doctor-placeholder' });
    keyCheck = { name: 'API key', ok: false, info: e.message.replace(/: set .*$/, ''), fix: 'set HANDOFF_API_KEY (in /etc/handoff/env under systemd) or --api-key; or bind to 127.0.0.1' };
  }
  const checks: Check[] = [
    await version('chromium', config.chromiumPath, ['--version'], `${APT} chromium`),
    await version('Xvfb', config.xvfbPath, ['-help'], `${APT} xvfb`, /usage|use:/i),
    await version('ffmpeg', 'ffmpeg', ['-version'], `${APT} ffmpeg`),
    await sandbox(),
    shm(config.framebufferDir, config.maxSessions),
    stateDisk(config.stateDir),
    await fonts(),
    keyCheck,
    await port('HTTP port', config.host, config.port),
    ...(config.vncPort ? [await port('VNC port', config.host, config.vncPort)] : []),
    ...(isBundle(APP_ROOT) ? bundleChecks(APP_ROOT, process.execPath) : []),
  ];
  for (const c of checks) process.stdout.write(formatCheck(c) + '\n');
  const failed = checks.filter((c) => !c.ok).length;
  process.stdout.write(failed ? `\n${failed} problem(s) found\n` : '\nall good\n');
  return failed ? 1 : 0;
}

/** One line per check; a problem carries its fix on the same line. */
export function formatCheck(c: Check): string {
  const line = `${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(10)} ${c.info}`;
  return !c.ok && c.fix ? `${line}  -> fix: ${c.fix}` : line;
}

async function version(name: string, bin: string, args: string[], fix: string, accept?: RegExp): Promise<Check> {
  try {
    const { stdout, stderr } = await run(bin, args, { timeout: 15_000 });
    const text = (stdout || stderr).trim().split('\n')[0] ?? '';
    return { name, ok: true, info: text.slice(0, 80) };
  } catch (e) {
    const err = e as { code?: string; stderr?: string };
    // Xvfb -help prints its usage and exits non-zero.
    if (accept && err.stderr && accept.test(err.stderr)) return { name, ok: true, info: `${bin} found` };
    return { name, ok: false, info: err.code === 'ENOENT' ? `${bin} not found` : `${bin} does not run`, fix };
  }
}

/** Session processes run only in bubblewrap: it must be there and able to make its namespaces here. */
async function sandbox(): Promise<Check> {
  const name = 'sandbox';
  let cmd: { cmd: string; args: string[] };
  try {
    // With the options a browser's sandbox uses (a capped /tmp: bwrap's --size, not in old ones).
    cmd = sandboxed('true', [], { env: { PATH: SANDBOX_PATH }, tmpBytes: THROWAWAY_TMP_BYTES });
  } catch {
    return { name, ok: false, info: `${BWRAP} not found`, fix: `${APT} bubblewrap` };
  }
  try {
    await run(cmd.cmd, cmd.args, { timeout: 15_000, env: {} });
    return { name, ok: true, info: `${BWRAP} runs` };
  } catch (e) {
    const err = (e as { stderr?: string }).stderr?.trim().split('\n').pop() ?? (e as Error).message;
    return {
      name,
      ok: false,
      info: `${BWRAP} fails: ${err.slice(0, 120)}`,
      // As a user bwrap needs unprivileged user namespaces; `env --ignore-signal` needs coreutils 8.31+.
      fix: 'sudo sysctl -w kernel.unprivileged_userns_clone=1 user.max_user_namespaces=10000 (and kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 24.04+); coreutils 8.31 or newer',
    };
  }
}

/**
 * Xvfb framebuffers live in the framebuffer dir (/dev/shm): a tmpfs with room for every
 * session's 1280x720x32 frame (3.7 MB) and margin. Docker's default /dev/shm is 64 MB.
 */
export function shm(dir: string, maxSessions: number): Check {
  const need = Math.max(64, maxSessions * 8) * MB;
  const size = `${Math.ceil((need * 4) / MB / 256) * 256}m`;
  try {
    accessSync(dir, constants.W_OK);
    const mounts = readFileSync('/proc/mounts', 'utf8');
    const real = realpathSync(dir);
    const isTmpfs = mounts.split('\n').some((l) => l.split(' ')[1] === real && l.split(' ')[2] === 'tmpfs');
    const st = statfsSync(dir);
    const free = st.bavail * st.bsize;
    const ok = isTmpfs && free >= need;
    return {
      name: 'shm',
      ok,
      info: `${dir} ${isTmpfs ? 'is tmpfs' : 'is not a tmpfs'}, ${Math.round((st.blocks * st.bsize) / MB)} MB, ${Math.round(free / MB)} MB free (${maxSessions} sessions need ${need / MB} MB)`,
      fix: ok ? undefined : isTmpfs ? `sudo mount -o remount,size=${size} ${dir} (Docker: --shm-size=${size})` : `sudo mount -t tmpfs -o size=${size} tmpfs ${dir}`,
    };
  } catch {
    return { name: 'shm', ok: false, info: `${dir} is not writable`, fix: `sudo mount -t tmpfs -o size=${size} tmpfs ${dir}` };
  }
}

/** The state dir (audit database, downloads, recordings): writable, or creatable, with room. */
export function stateDisk(dir: string, minFree = MIN_STATE_FREE): Check {
  const name = 'state dir';
  let probe = dir;
  while (!existsSync(probe) && dirname(probe) !== probe) probe = dirname(probe);
  try {
    accessSync(probe, constants.W_OK);
  } catch {
    return { name, ok: false, info: `${dir} is not writable by this user`, fix: `sudo install -d -o $(id -un) -m 0700 ${dir}, or choose another --state-dir` };
  }
  const st = statfsSync(probe);
  const free = st.bavail * st.bsize;
  const ok = free >= minFree;
  return {
    name,
    ok,
    info: `${dir}${probe === dir ? '' : ' (to be created)'}: ${Math.round(free / MB)} MB free`,
    fix: ok ? undefined : `free at least ${Math.round(minFree / MB)} MB on that filesystem (old recordings, downloads) or choose another --state-dir`,
  };
}

/** Off loopback an API key is required (API.md 1): the daemon refuses to start without one. */
export function apiKey(host: string, key: string | null): Check {
  if (isLoopback(host)) return { name: 'API key', ok: true, info: `${host} is loopback: no API key needed${key ? ' (one is set)' : ''}` };
  return key
    ? { name: 'API key', ok: true, info: `${host} is not loopback: API key set` }
    : { name: 'API key', ok: false, info: `${host} is not loopback and no API key is set`, fix: 'set HANDOFF_API_KEY (in /etc/handoff/env under systemd) or --api-key' };
}

async function fonts(): Promise<Check> {
  try {
    const { stdout } = await run('fc-list', [], { timeout: 15_000 });
    const n = stdout.split('\n').filter(Boolean).length;
    return { name: 'fonts', ok: n > 0, info: `${n} fonts`, fix: `${APT} fonts-dejavu-core fonts-liberation fonts-noto-cjk` };
  } catch {
    return { name: 'fonts', ok: false, info: 'fc-list not found', fix: `${APT} fontconfig fonts-dejavu-core fonts-liberation` };
  }
}

function port(name: string, host: string, p: number): Promise<Check> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', (e: NodeJS.ErrnoException) =>
      resolve({ name, ok: false, info: `${host}:${p} ${e.code === 'EADDRINUSE' ? 'is in use' : e.code}`, fix: `stop what listens there (ss -ltnp 'sport = :${p}') or choose another port` }),
    );
    srv.listen(p, host, () => srv.close(() => resolve({ name, ok: true, info: `${host}:${p} is free` })));
  });
}

/** A bundle install (install.sh): VERSION and the bundled Node next to the app. */
export function isBundle(root: string): boolean {
  return existsSync(join(root, 'VERSION')) && existsSync(join(root, 'node/bin/node'));
}

/**
 * The bundle's own layout (npm run bundle, install.sh): its Node runs this, the native addons
 * load in it, the unit starts it, the service user exists. Each fix: rerun install.sh.
 */
export function bundleChecks(root: string, execPath: string, etc = '/etc'): Check[] {
  const reinstall = 'rerun install.sh from the bundle (it upgrades in place and keeps the state)';
  const node = join(root, 'node/bin/node');
  const checks: Check[] = [];
  const version = readText(join(root, 'VERSION'))?.trim() ?? '?';
  const same = realpathOr(execPath) === realpathOr(node);
  checks.push(
    same
      ? { name: 'bundle', ok: true, info: `handoff ${version} in ${root}, its own Node ${process.version}` }
      : { name: 'bundle', ok: false, info: `${root} is a bundle install but this runs ${execPath}, not ${node}`, fix: `run /usr/local/bin/handoff (or ${node} ${root}/bin/handoff.js)` },
  );
  const missing = ['dist/cli/main.js', 'bin/handoff.js', 'package.json', 'node_modules/ws/package.json', 'DEBS'].filter((p) => !existsSync(join(root, p)));
  checks.push(missing.length ? { name: 'bundle', ok: false, info: `missing in ${root}: ${missing.join(', ')}`, fix: reinstall } : { name: 'bundle', ok: true, info: 'layout complete (dist, bin, node_modules, DEBS)' });
  // Native addons built for another ABI fail here, not at the first session.
  try {
    const req = createRequire(join(root, 'package.json'));
    const Database = req('better-sqlite3') as new (f: string) => { close(): void };
    new Database(':memory:').close();
    req('sharp');
    checks.push({ name: 'bundle', ok: true, info: 'native addons (better-sqlite3, sharp) load' });
  } catch (e) {
    checks.push({ name: 'bundle', ok: false, info: `native addons do not load: ${(e as Error).message.split('\n')[0]!.slice(0, 120)}`, fix: reinstall });
  }
  const unit = readText(join(etc, 'systemd/system/handoff.service'));
  const exec = unit ? /^ExecStart=(\S+)/m.exec(unit)?.[1] : undefined;
  checks.push(
    exec === node
      ? { name: 'bundle', ok: true, info: `systemd unit runs ${node}` }
      : { name: 'bundle', ok: false, info: unit ? `the systemd unit runs ${exec}, not ${node}` : `no ${etc}/systemd/system/handoff.service`, fix: reinstall },
  );
  const user = /^handoff:/m.test(readText(join(etc, 'passwd')) ?? '');
  checks.push(user ? { name: 'bundle', ok: true, info: 'service user handoff exists' } : { name: 'bundle', ok: false, info: 'no handoff user (the unit runs as it)', fix: reinstall });
  return checks;
}

function readText(p: string): string | null {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return null;
  }
}

function realpathOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}
