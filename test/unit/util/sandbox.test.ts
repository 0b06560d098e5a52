import { describe, expect, it } from 'vitest';
import { lstatSync, mkdtempSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { displayClientPaths, hostLayout, remountDir, sandboxCommand, type HostLayout } from '../../../src/util/sandbox.js';

const layout: HostLayout = {
  system: ['/usr', '/etc/fonts', '/etc/ssl', '/etc/passwd', '/var/cache/fontconfig'],
  symlinks: [{ path: '/bin', target: 'usr/bin' }, { path: '/etc/localtime', target: '/usr/share/zoneinfo/Etc/UTC' }],
  hiddenDirs: ['/etc/ssl/private'],
  hiddenFiles: ['/etc/ssl/secret.pem'],
};

/** The bwrap options between `bwrap` and `--`, as [option, ...operands] groups for readable checks. */
function bwrapOptions(args: string[]): string[] {
  const start = args.indexOf('/usr/bin/bwrap') + 1;
  return args.slice(start, args.indexOf('--', start));
}

/** Index of the first occurrence of this exact option sequence, -1 when absent. */
function at(opts: string[], ...seq: string[]): number {
  for (let i = 0; i + seq.length <= opts.length; i++) if (seq.every((s, j) => opts[i + j] === s)) return i;
  return -1;
}

describe('sandboxCommand', () => {
  const policy = {
    writable: ['/tmp/handoff-profile-x', '/state/downloads/s1'],
    readable: ['/dev/shm/handoff-x-1/Xauthority'],
    readableAt: [{ source: '/state/chromium-policy.json', dest: '/etc/chromium/policies/managed/handoff.json' }],
    env: { PATH: '/usr/bin', HOME: '/tmp/handoff-profile-x', DISPLAY: ':5' },
  };
  const { cmd, args } = sandboxCommand('/usr/lib/chromium/chromium', ['--kiosk', 'about:blank'], policy, layout, '/usr/bin/bwrap');
  const opts = bwrapOptions(args);

  it('runs bwrap with SIGTERM ignored and the program with it reset, the program and its args last and untouched', () => {
    expect(cmd).toBe('/usr/bin/env');
    expect(args.slice(0, 2)).toEqual(['--ignore-signal=TERM', '/usr/bin/bwrap']);
    expect(args.slice(args.lastIndexOf('--'))).toEqual(['--', '/usr/bin/env', '--default-signal=TERM', '/usr/lib/chromium/chromium', '--kiosk', 'about:blank']);
  });

  it('binds the system read-only, re-creates merged-/usr links and hides secrets inside it', () => {
    for (const dir of layout.system) expect(at(opts, '--ro-bind', dir, dir)).toBeGreaterThanOrEqual(0);
    expect(at(opts, '--symlink', 'usr/bin', '/bin')).toBeGreaterThanOrEqual(0);
    // The mask comes after the bind it hides part of.
    expect(at(opts, '--symlink', '/usr/share/zoneinfo/Etc/UTC', '/etc/localtime')).toBeGreaterThanOrEqual(0);
    expect(at(opts, '--tmpfs', '/etc/ssl/private')).toBeGreaterThan(at(opts, '--ro-bind', '/etc/ssl', '/etc/ssl'));
    expect(at(opts, '--ro-bind', '/dev/null', '/etc/ssl/secret.pem')).toBeGreaterThan(at(opts, '--ro-bind', '/etc/ssl', '/etc/ssl'));
    expect(opts).not.toContain('--bind-try');
  });

  it('caps /dev/shm, makes /dev read-only once made, and caps the private /tmp when asked (a throwaway profile lives there)', () => {
    expect(at(opts, '--size', String(64 * 1024 * 1024), '--tmpfs', '/dev/shm')).toBeGreaterThan(at(opts, '--dev', '/dev'));
    expect(at(opts, '--remount-ro', '/dev')).toBeGreaterThan(at(opts, '--tmpfs', '/dev/shm'));
    expect(opts[at(opts, '--tmpfs', '/tmp') - 2]).not.toBe('--size');
    const capped = bwrapOptions(sandboxCommand('/usr/lib/chromium/chromium', [], { ...policy, tmpBytes: 512 * 1024 * 1024 }, layout, '/usr/bin/bwrap').args);
    expect(at(capped, '--size', String(512 * 1024 * 1024), '--tmpfs', '/tmp')).toBeGreaterThanOrEqual(0);
  });

  it('gives a fresh /dev, /proc, a private /tmp and /dev/shm, then the policy paths on top at the same paths', () => {
    const tmp = at(opts, '--tmpfs', '/tmp');
    const shm = at(opts, '--tmpfs', '/dev/shm');
    expect(at(opts, '--dev', '/dev')).toBeGreaterThanOrEqual(0);
    expect(shm).toBeGreaterThan(at(opts, '--dev', '/dev'));
    expect(at(opts, '--proc', '/proc')).toBeGreaterThanOrEqual(0);
    expect(tmp).toBeGreaterThanOrEqual(0);
    for (const p of policy.writable) expect(at(opts, '--bind', p, p)).toBeGreaterThan(tmp);
    for (const p of policy.readable) expect(at(opts, '--ro-bind', p, p)).toBeGreaterThan(shm);
    expect(at(opts, '--ro-bind', '/state/chromium-policy.json', '/etc/chromium/policies/managed/handoff.json')).toBeGreaterThan(tmp);
    // Nothing else of the host is bound: every bind source is a system dir, /dev/null or a policy path.
    const sources = opts.flatMap((o, i) => (o === '--bind' || o === '--ro-bind' || o === '--dev-bind' ? [opts[i + 1]!] : []));
    expect(new Set(sources)).toEqual(new Set([...layout.system, '/dev/null', ...policy.writable, ...policy.readable, '/state/chromium-policy.json']));
  });

  it('replaces the environment with the policy one', () => {
    const clear = opts.indexOf('--clearenv');
    expect(clear).toBeGreaterThanOrEqual(0);
    for (const [k, v] of Object.entries(policy.env)) expect(at(opts, '--setenv', k, v)).toBeGreaterThan(clear);
    expect(opts.filter((o) => o === '--setenv')).toHaveLength(Object.keys(policy.env).length);
  });

  it('unshares the pid namespace, dies with its parent, drops every capability, keeps the network and the process group', () => {
    expect(opts).toContain('--unshare-pid');
    expect(opts).toContain('--die-with-parent');
    expect(at(opts, '--cap-drop', 'ALL')).toBeGreaterThanOrEqual(0);
    for (const o of ['--unshare-net', '--unshare-all', '--new-session', '--as-pid-1']) expect(opts).not.toContain(o);
  });

  it('pidNamespace: false has neither a pid namespace nor a /proc', () => {
    const o = bwrapOptions(sandboxCommand('Xvfb', [], { ...policy, pidNamespace: false }, layout, '/usr/bin/bwrap').args);
    expect(o).not.toContain('--unshare-pid');
    expect(o).not.toContain('--proc');
    expect(o).toContain('--die-with-parent');
  });

  it('paths with spaces or leading dashes stay single operands', () => {
    const odd = '/state dir/--downloads/s 1';
    const o = bwrapOptions(sandboxCommand('ffmpeg', ['-y', '/out file.mp4'], { writable: [odd], env: {} }, layout, '/usr/bin/bwrap').args);
    expect(at(o, '--bind', odd, odd)).toBeGreaterThanOrEqual(0);
  });
});

describe('displayClientPaths', () => {
  it('is the cookie file and the display socket, those that exist', () => {
    const dir = mkdtempSync(join(tmpdir(), 'handoff-sandbox-unit-'));
    try {
      const authFile = join(dir, 'Xauthority');
      expect(displayClientPaths({ name: ':98765', authFile })).toEqual([]);
      writeFileSync(authFile, '');
      expect(displayClientPaths({ name: ':98765', authFile })).toEqual([authFile]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('hostLayout on this (Debian) host', () => {
  it('binds /usr and an allow-list of /etc (not /etc itself), hides /etc/ssl/private, and binds nothing of the state, home or /tmp', () => {
    const l = hostLayout();
    expect(l.system).toEqual(expect.arrayContaining(['/usr', '/etc/fonts', '/etc/ssl', '/etc/passwd', '/etc/ld.so.cache']));
    for (const secret of ['/etc', '/etc/default', '/etc/shadow', '/etc/gshadow', '/etc/ssh', '/etc/handoff', '/etc/sudoers', '/etc/chromium']) expect(l.system).not.toContain(secret);
    expect(l.system.filter((p) => p.startsWith('/etc/')).every((p) => p.split('/').length === 3)).toBe(true);
    expect(l.hiddenDirs).toContain('/etc/ssl/private');
    for (const dir of l.system) expect(dir === '/' || dir === '/tmp' || dir === '/var' || dir === '/home' || dir === '/root' || dir.startsWith('/var/lib')).toBe(false);
  });
});

describe('the directory a chroot host bind-mounts "/" on (security review: a fixed /tmp path let another user swap in their own tree)', () => {
  it('is made by the daemon under a random name, 0700, owned by it, and the same for every launch', () => {
    const dir = remountDir();
    expect(dir).not.toBe('/tmp/.handoff-root');
    expect(dir).toMatch(/\.handoff-root-[A-Za-z0-9]{6}$/);
    const st = lstatSync(dir);
    expect(st.isDirectory() && !st.isSymbolicLink()).toBe(true);
    expect(st.mode & 0o777).toBe(0o700);
    expect(st.uid).toBe(process.getuid!());
    expect(remountDir()).toBe(dir);
    rmdirSync(dir); // the daemon removes it at exit; a test worker may not run exit handlers
  });
});
