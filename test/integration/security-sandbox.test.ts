import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, processTable, tryWs } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';
import { startPageServer } from '../helpers/pages.js';
import { hostLayout, SANDBOX_PATH, sandboxCommand, withMountedRoot } from '../../src/util/sandbox.js';

/**
 * API.md 2, issue 8 item 4: a session's browser sees only its own profile, downloads and
 * uploads on disk. The agent tries file:// URLs of the state dir (the live-link signing key,
 * the audit database), the daemon's HOME and the host's /tmp; the file chooser path is
 * DOM.setFileInputFiles, what the GTK chooser hands the page when a human types a path.
 */
let d: RunningDaemon;
let browser: Browser;
let page: Page;
const leaks = new LeakTracker();
const SESSION = 'sandboxed';
// The daemon's HOME and a file in the host's /tmp, each with a secret the browser must not see.
const home = mkdtempSync(join(tmpdir(), 'handoff-test-home-'));
const hostTmpFile = join(tmpdir(), `handoff-test-secret-${process.pid}.txt`);
const SECRET = 'not-for-the-browser-4f1c';

beforeAll(async () => {
  writeFileSync(join(home, 'secret.txt'), SECRET);
  writeFileSync(hostTmpFile, SECRET);
  d = await startDaemon({ env: { HOME: home } });
  browser = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=${SESSION}&auto_close=false`, defaultViewport: null });
  page = (await browser.pages())[0]!;
  leaks.note(d.stateDir, SESSION);
});

afterAll(async () => {
  await browser?.disconnect();
  await d?.cleanup();
  rmSync(home, { recursive: true, force: true });
  rmSync(hostTmpFile, { force: true });
  expect(leaks.leftovers()).toEqual([]);
});

/** What the agent gets for a file:// URL: the navigation error, or the text the page shows. */
async function readAsAgent(path: string): Promise<{ error?: string; text?: string }> {
  try {
    await page.goto(`file://${path}`, { timeout: 15_000 });
  } catch (e) {
    return { error: (e as Error).message };
  }
  return { text: await page.evaluate(() => document.body?.innerText ?? '') };
}

describe('file:// from the agent', () => {
  it('the state dir lists neither live-link.key nor handoff.db, and both files read nothing', async () => {
    const key = readFileSync(join(d.stateDir, 'live-link.key'));
    expect(key.length).toBeGreaterThan(0);
    const listing = await readAsAgent(`${d.stateDir}/`);
    expect(listing.text ?? '').not.toContain('live-link.key');
    expect(listing.text ?? '').not.toContain('handoff.db');
    for (const name of ['live-link.key', 'handoff.db']) {
      const r = await readAsAgent(join(d.stateDir, name));
      expect(r.error, `${name}: ${JSON.stringify(r)}`).toMatch(/ERR_FILE_NOT_FOUND/);
    }
  });

  it("the daemon's HOME and the host's /tmp read nothing", async () => {
    expect((await readAsAgent(join(home, 'secret.txt'))).error).toMatch(/ERR_FILE_NOT_FOUND/);
    const listing = await readAsAgent(`${home}/`);
    expect(listing.text ?? '').not.toContain('secret.txt');
    expect((await readAsAgent(hostTmpFile)).error).toMatch(/ERR_FILE_NOT_FOUND/);
  });

  it("no process of the daemon's is visible through /proc", async () => {
    const r = await readAsAgent(`/proc/${d.proc.pid}/environ`);
    expect(r.error).toMatch(/ERR_FILE_NOT_FOUND/);
  });
});

describe('the file chooser path (DOM.setFileInputFiles)', () => {
  /** Gives `path` to a file input the way the native chooser does and reads it in the page. */
  async function pageReads(path: string): Promise<{ bytes?: number; text?: string; error?: string }> {
    await page.goto('about:blank');
    await page.setContent('<input type="file" id="f">');
    const input = (await page.$('input'))!;
    await input.uploadFile(path);
    return page.evaluate(
      () =>
        new Promise<{ bytes?: number; text?: string; error?: string }>((resolve) => {
          const file = (document.getElementById('f') as HTMLInputElement).files?.[0];
          if (!file) return resolve({ error: 'no file' });
          const reader = new FileReader();
          reader.onload = () => {
            const buf = new Uint8Array(reader.result as ArrayBuffer);
            resolve({ bytes: buf.length, text: new TextDecoder().decode(buf) });
          };
          reader.onerror = () => resolve({ error: reader.error?.name ?? 'error' });
          reader.readAsArrayBuffer(file);
        }),
    );
  }

  it('STATE_DIR/live-link.key gives the page no bytes', async () => {
    const r = await pageReads(join(d.stateDir, 'live-link.key'));
    expect(r.bytes ?? 0, JSON.stringify(r)).toBe(0);
    expect(r.error).toBeTruthy();
  });

  it("a file in the session's own uploads dir reaches the page", async () => {
    const path = join(d.stateDir, 'uploads', SESSION, 'form.txt');
    writeFileSync(path, SECRET);
    const r = await pageReads(path);
    expect(r).toEqual({ bytes: SECRET.length, text: SECRET });
  });
});

describe('what a page needs still works inside', () => {
  it('WebGL draws (SwiftShader), system fonts are found, the page renders', async () => {
    await page.goto('about:blank');
    const r = await page.evaluate(() => {
      const gl = document.createElement('canvas').getContext('webgl');
      let pixel: number[] = [];
      if (gl) {
        gl.clearColor(0, 1, 0, 1);
        gl.clear(gl.COLOR_BUFFER_BIT);
        const px = new Uint8Array(4);
        gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
        pixel = [...px];
      }
      // A named font is found when text in it measures differently from the generic fallback.
      const ctx = document.createElement('canvas').getContext('2d')!;
      const width = (font: string) => ((ctx.font = `40px ${font}`), ctx.measureText('mmmmmmmmmmlli WWW').width);
      return { webgl: !!gl, pixel, liberation: width('"Liberation Serif", monospace') !== width('monospace'), dejavu: width('"DejaVu Sans", monospace') !== width('monospace') };
    });
    expect(r).toEqual({ webgl: true, pixel: [0, 255, 0, 255], liberation: true, dejavu: true });
  });
});

describe('a throwaway profile', () => {
  it("lives in the sandbox's own 512 MB tmpfs: not on the host, and what a page stores is bounded by it", async () => {
    const pages = await startPageServer();
    try {
      await page.goto(`${pages.url}/`);
      const r = await page.evaluate(async () => {
        localStorage.setItem('k', 'v');
        const { quota } = await navigator.storage.estimate();
        return { quota: quota ?? 0, stored: localStorage.getItem('k') };
      });
      expect(r.stored).toBe('v');
      // Chromium sizes the quota from the profile's volume (with a floor of its own), not the host's disk.
      expect(r.quota).toBeGreaterThan(0);
      expect(r.quota).toBeLessThanOrEqual(1024 ** 3);
    } finally {
      await pages.close();
    }
    const chromium = leaks.note(d.stateDir, SESSION).find((row) => row.kind === 'chromium')!;
    expect(chromium.path).toBeNull();
    expect(readFileSync(`/proc/${chromium.pid}/cmdline`, 'utf8')).toContain('--user-data-dir=/tmp/profile');
    // The browser's leader is bwrap; the profile is seen only through a process inside the sandbox.
    const inside = [...processTable()].find(([, p]) => p.ppid === chromium.pid)![0];
    expect(readdirSync(`/proc/${inside}/root/tmp/profile`)).toContain('Default');
    // What bounds the profile, whatever the quota says: its tmpfs.
    const fs = statfsSync(`/proc/${inside}/root/tmp`);
    expect(fs.blocks * fs.bsize).toBe(512 * 1024 * 1024);
    expect(existsSync('/tmp/profile') && readdirSync('/tmp/profile').includes('Default')).toBe(false);
  });
});

describe('/etc is an allow-list (a root browser reads no root-only file in it)', () => {
  it('a root-only dir made under /etc, and /etc/default, /etc/shadow, /etc/ssh, are not there', async () => {
    // Only root can make one (the daemon under test runs as root here, as in the review).
    const root = process.getuid?.() === 0;
    const name = `handoff-test-secret-${process.pid}-${Date.now()}`;
    const dir = join('/etc', name);
    if (root) mkdirSync(dir, { mode: 0o700 });
    try {
      if (root) writeFileSync(join(dir, 'key'), SECRET, { mode: 0o600 });
      const listing = await readAsAgent('/etc/');
      expect(listing.text ?? '', JSON.stringify(listing)).toContain('passwd');
      for (const hidden of [name, 'default', 'shadow', 'ssh', 'sudoers']) expect(listing.text).not.toContain(hidden);
      expect((await readAsAgent(join(dir, 'key'))).error).toMatch(/ERR_FILE_NOT_FOUND/);
      expect((await readAsAgent('/etc/default/')).text ?? '').not.toContain('cacerts');
      expect((await readAsAgent('/etc/shadow')).error).toMatch(/ERR_FILE_NOT_FOUND/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('what the browser needs is there: TLS trust, DNS config, name resolution', async () => {
    expect((await readAsAgent('/etc/ssl/certs/')).text).toMatch(/ca-certificates\.crt/);
    expect((await readAsAgent('/etc/resolv.conf')).text?.trim()).toBe(readFileSync('/etc/resolv.conf', 'utf8').trim());
    // "localhost" resolves through nsswitch.conf and /etc/hosts.
    const pages = await startPageServer();
    try {
      await page.goto(`${pages.url.replace('127.0.0.1', 'localhost')}/other`);
      expect(await page.$eval('#p', (e) => e.textContent)).toBe('other page');
    } finally {
      await pages.close();
    }
  });
});

describe('the masks inside system dirs (as /etc/handoff and /etc/shadow are hidden)', () => {
  it('a hidden dir is empty and a hidden file reads nothing, while the rest of the dir stays readable', async () => {
    // A stand-in for /etc, so the test needs no change to the host's /etc (not under /tmp,
    // which is the sandbox's own tmpfs).
    const etc = mkdtempSync('/var/tmp/handoff-test-etc-');
    try {
      mkdirSync(join(etc, 'handoff'));
      writeFileSync(join(etc, 'handoff', 'env'), `HANDOFF_API_KEY=${SECRET}`);
      writeFileSync(join(etc, 'shadow'), SECRET);
      writeFileSync(join(etc, 'hostname'), 'visible');
      const base = hostLayout();
      const layout = { ...base, system: [...base.system, etc], hiddenDirs: [join(etc, 'handoff')], hiddenFiles: [join(etc, 'shadow')] };
      const script = `ls -A ${etc}/handoff; cat ${etc}/shadow; cat ${etc}/hostname`;
      const cmd = withMountedRoot(sandboxCommand('/bin/sh', ['-c', script], { env: { PATH: SANDBOX_PATH } }, layout));
      const { stdout } = await promisify(execFile)(cmd.cmd, cmd.args, { env: {} });
      expect(stdout).toBe('visible');
    } finally {
      rmSync(etc, { recursive: true, force: true });
    }
  });
});

describe('without bubblewrap', () => {
  it('the daemon refuses to start a session with browser_failed naming the package', async () => {
    const bare = await startDaemon({ env: { HANDOFF_BWRAP: '/nonexistent/bwrap' } });
    try {
      const o = await tryWs(`${bare.wsUrl}/?session=nobwrap`);
      if (o.kind === 'open') o.ws.close();
      expect(o.kind).toBe('refused');
      if (o.kind !== 'refused') return;
      expect(o.status).toBe(502);
      expect(o.body.error.code).toBe('browser_failed');
      expect(o.body.error.message).toMatch(/bubblewrap/);
      expect((await api(bare.url, '/session/nobwrap')).body.state).toBe('crashed');
    } finally {
      await bare.cleanup();
    }
  });
});
