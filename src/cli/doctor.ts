import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { accessSync, constants, readFileSync, statfsSync } from 'node:fs';
import { promisify } from 'node:util';
import type { Config } from '../config/config.js';
import { BWRAP, sandboxed, SANDBOX_PATH } from '../util/sandbox.js';

interface Check {
  name: string;
  ok: boolean;
  info: string;
  fix?: string;
}

const run = promisify(execFile);
const APT = 'sudo apt-get install -y';

/** `handoff doctor`: each prerequisite, what was found, and the command that fixes it. */
export async function runDoctor(config: Readonly<Config>): Promise<number> {
  const checks: Check[] = [
    await version('chromium', config.chromiumPath, ['--version'], `${APT} chromium`),
    await version('Xvfb', 'Xvfb', ['-help'], `${APT} xvfb`, /usage|use:/i),
    await version('ffmpeg', 'ffmpeg', ['-version'], `${APT} ffmpeg`),
    await sandbox(),
    tmpfs(config.framebufferDir),
    await fonts(),
    await port('HTTP port', config.host, config.port),
    ...(config.vncPort ? [await port('VNC port', config.host, config.vncPort)] : []),
  ];
  for (const c of checks) {
    process.stdout.write(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(10)} ${c.info}\n`);
    if (!c.ok && c.fix) process.stdout.write(`      fix: ${c.fix}\n`);
  }
  const failed = checks.filter((c) => !c.ok).length;
  process.stdout.write(failed ? `\n${failed} problem(s) found\n` : '\nall good\n');
  return failed ? 1 : 0;
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
    cmd = sandboxed('true', [], { env: { PATH: SANDBOX_PATH } });
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
      fix: 'sudo sysctl -w kernel.unprivileged_userns_clone=1 (and kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 24.04+); coreutils 8.31 or newer',
    };
  }
}

function tmpfs(dir: string): Check {
  try {
    accessSync(dir, constants.W_OK);
    const mounts = readFileSync('/proc/mounts', 'utf8');
    const isTmpfs = mounts.split('\n').some((l) => l.split(' ')[1] === dir && l.split(' ')[2] === 'tmpfs');
    const st = statfsSync(dir);
    const freeMb = Math.round((st.bavail * st.bsize) / 1e6);
    // A 1280x720x32 framebuffer is 3.7 MB; a few sessions need a few tens of MB.
    const ok = isTmpfs && freeMb >= 64;
    return {
      name: 'tmpfs',
      ok,
      info: `${dir} ${isTmpfs ? 'is tmpfs' : 'is not tmpfs'}, ${freeMb} MB free`,
      fix: ok ? undefined : `mount a tmpfs on ${dir} with at least 64 MB (e.g. mount -o remount,size=512m ${dir})`,
    };
  } catch {
    return { name: 'tmpfs', ok: false, info: `${dir} is not writable`, fix: `mount -t tmpfs -o size=512m tmpfs ${dir}` };
  }
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
