import { mkdtemp, rm, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchProcess, type LaunchedProcess } from '../util/process.js';
import type { Logger } from '../util/logger.js';
import { HandoffError } from '../util/errors.js';
import { displayClientPaths, localeEnv, SANDBOX_PATH, sandboxed } from '../util/sandbox.js';

export interface ChromiumOptions {
  binary: string;
  width: number;
  height: number;
  /** DISPLAY and XAUTHORITY of the session's Xvfb. */
  displayEnv: Record<string, string>;
  /** The session's own dirs (downloads, uploads): the only host dirs it may write besides its profile. */
  sessionDirs?: string[];
  logger?: Logger;
  startTimeoutMs?: number;
}

/**
 * Flags for a headful Chromium that fills its Xvfb screen exactly and stays quiet on a
 * closed network (DESIGN.md "Facts measured here").
 */
export function chromiumArgs(o: { width: number; height: number; profileDir: string; asRoot: boolean }): string[] {
  return [
    `--user-data-dir=${o.profileDir}`,
    '--remote-debugging-port=0',
    '--remote-debugging-address=127.0.0.1',
    // --test-type hides the "unsupported flag" infobar; kiosk + exact size = page fills the screen.
    '--test-type',
    '--kiosk',
    '--window-position=0,0',
    `--window-size=${o.width},${o.height}`,
    '--force-device-scale-factor=1',
    '--no-first-run',
    '--no-default-browser-check',
    // No traffic to Google's services: air-gapped hosts refuse it and it is noise.
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-domain-reliability',
    '--disable-breakpad',
    '--disable-crash-reporter',
    '--metrics-recording-only',
    '--password-store=basic',
    '--disable-features=Translate,MediaRouter,OptimizationHints,DialMediaRouteProvider',
    // WebGL without a GPU.
    '--use-angle=swiftshader',
    '--enable-unsafe-swiftshader',
    // ...but compositing in Chromium's own software path: through SwiftShader a 720p page
    // animates at 14-24 fps here, in software at 60.
    '--disable-gpu-compositing',
    // The sandbox needs user namespaces that root cannot have.
    ...(o.asRoot ? ['--no-sandbox'] : []),
    'about:blank',
  ];
}

/** One headful Chromium in a fresh profile dir, reached over its browser-level DevTools socket. */
export class ChromiumBrowser {
  private constructor(
    readonly process: LaunchedProcess,
    readonly profileDir: string,
    /** ws://127.0.0.1:PORT/devtools/browser/UUID */
    readonly wsEndpoint: string,
  ) {}

  get pid(): number {
    return this.process.pid;
  }
  /** 127.0.0.1:PORT of Chromium's own DevTools server (page sockets live there too). */
  get devtoolsHost(): string {
    return new URL(this.wsEndpoint).host;
  }

  static async launch(o: ChromiumOptions): Promise<ChromiumBrowser> {
    const profileDir = await mkdtemp(join(tmpdir(), 'handoff-profile-'));
    // Chromium asks to restore the last session after a crash; a fresh profile never crashed.
    await mkdir(join(profileDir, 'Default'), { recursive: true });
    await writeFile(join(profileDir, 'Default', 'Preferences'), JSON.stringify({ profile: { exit_type: 'Normal' } }));
    // Chromium's own temp files (its SingletonSocket dir) go inside the profile dir too, so
    // removing that one dir leaves nothing behind even when Chromium is killed.
    const tmp = join(profileDir, 'tmp');
    await mkdir(tmp);
    let proc: LaunchedProcess | undefined;
    try {
      // Sandboxed (API.md 2): its profile and the session's dirs at the same paths (CDP names
      // them), its display, the system read-only; HOME is the profile.
      const cmd = sandboxed(o.binary, chromiumArgs({ ...o, profileDir, asRoot: process.getuid?.() === 0 }), {
        writable: [profileDir, ...(o.sessionDirs ?? [])],
        readable: displayClientPaths({ name: o.displayEnv.DISPLAY ?? '', authFile: o.displayEnv.XAUTHORITY ?? '' }),
        env: { PATH: SANDBOX_PATH, HOME: profileDir, ...o.displayEnv, TMPDIR: tmp, ...localeEnv() },
      });
      proc = launchProcess(cmd.cmd, cmd.args, { env: {}, logger: o.logger });
      const wsEndpoint = await waitForDevTools(proc, o.startTimeoutMs ?? 15_000);
      return new ChromiumBrowser(proc, profileDir, wsEndpoint);
    } catch (e) {
      await proc?.close(500);
      await rm(profileDir, { recursive: true, force: true });
      throw e;
    }
  }

  private closing?: Promise<void>;
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.process.close(2000);
      await rm(this.profileDir, { recursive: true, force: true, maxRetries: 3 });
    })();
    return this.closing;
  }
}

function waitForDevTools(proc: LaunchedProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const stderr = proc.child.stderr!;
    let seen = '';
    const onData = (s: string | Buffer) => {
      seen = (seen + s.toString()).slice(-4096);
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(seen);
      if (m) finish(null, m[1]);
    };
    const timer = setTimeout(() => finish(new Error(`no DevTools endpoint after ${timeoutMs} ms`)), timeoutMs);
    const finish = (err: Error | null, url?: string) => {
      clearTimeout(timer);
      stderr.off('data', onData);
      if (err) reject(new HandoffError('browser_failed', 'the browser could not start', {}, `${err.message}: ${proc.stderrTail()}`));
      else resolve(url!);
    };
    stderr.on('data', onData);
    proc.exited.then((code) => finish(new Error(`chromium exited (${code})`)));
  });
}
