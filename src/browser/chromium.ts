import { launchProcess, type LaunchedProcess } from '../util/process.js';
import type { Logger } from '../util/logger.js';
import { HandoffError } from '../util/errors.js';
import type { Readable, Writable } from 'node:stream';
import { MANAGED_POLICY_FILE } from './policy.js';
import { displayClientPaths, localeEnv, SANDBOX_PATH, sandboxed } from '../util/sandbox.js';

/**
 * A client of Chromium's DevTools pipe (cdp/ provides the one the daemon uses; sessions wire
 * it in, so browser/ and cdp/ stay independent of each other).
 */
export interface DevToolsPipeClient {
  /** A command on the pipe's root session. */
  send(method: string, params?: object): Promise<any>;
  /** Resolves once the pipe from Chromium has ended and all it carried was handled. */
  readonly closed: Promise<void>;
}

export interface ChromiumOptions<C extends DevToolsPipeClient> {
  binary: string;
  width: number;
  height: number;
  /** DISPLAY and XAUTHORITY of the session's Xvfb. */
  displayEnv: Record<string, string>;
  /** The session's own dirs (downloads, uploads): the only host dirs it may write besides its profile. */
  sessionDirs?: string[];
  /** A managed policy file (policy.ts) bound as Chromium's only one; none: no policy at all. */
  policyFile?: string;
  logger?: Logger;
  startTimeoutMs?: number;
  /**
   * A profile dir kept across runs (persistent profiles); absent: a fresh one in the sandbox's
   * private /tmp (THROWAWAY_PROFILE_DIR), which ends with the browser.
   */
  userDataDir?: string;
  /** Makes the pipe's client: `toBrowser` is Chromium's fd 3, `fromBrowser` its fd 4. */
  connect: (toBrowser: Writable, fromBrowser: Readable) => C;
}

/**
 * A throwaway profile lives in the sandbox's private /tmp, a tmpfs of THROWAWAY_TMP_BYTES that
 * the kernel frees when the browser's last process exits: nothing of it reaches the host's disk
 * and nothing is left to remove (removing profile dirs from disk was most of a daemon stop with
 * many sessions). The cap bounds what a page can store (Chromium sizes its storage quota from
 * the volume) and the memory that takes; the HTTP cache gets a cap of its own within it.
 */
export const THROWAWAY_PROFILE_DIR = '/tmp/profile';
export const THROWAWAY_TMP_BYTES = 512 * 1024 * 1024;
const THROWAWAY_CACHE_BYTES = 64 * 1024 * 1024;

/**
 * Flags for a headful Chromium that fills its Xvfb screen exactly and stays quiet on a
 * closed network (DESIGN.md "Facts measured here").
 */
export function chromiumArgs(o: { width: number; height: number; profileDir: string; asRoot: boolean; devtools?: 'pipe' | 'port' }): string[] {
  return [
    `--user-data-dir=${o.profileDir}`,
    ...(o.profileDir === THROWAWAY_PROFILE_DIR ? [`--disk-cache-size=${THROWAWAY_CACHE_BYTES}`] : []),
    // DevTools on fds 3/4 only: no TCP port any local user could drive (issue 8.3). 'port'
    // is for the benchmark's reference browser.
    ...(o.devtools === 'port' ? ['--remote-debugging-port=0', '--remote-debugging-address=127.0.0.1'] : ['--remote-debugging-pipe']),
    // --test-type hides the "unsupported flag" infobar. No --kiosk: it turns the page's context
    // menu off; the daemon's window manager puts every window in fullscreen (display/window.ts).
    '--test-type',
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
    // Idle memory (issue 14, bench/RESULTS.md): the omnibox popup WebUI that fullscreen never shows
    // (PreloadTopChromeWebUI, WebUIOmnibox*: two renderers) and the spare renderer kept for a
    // next navigation (SpareRendererForSitePerProcess: one) are not started.
    '--disable-features=Translate,MediaRouter,OptimizationHints,DialMediaRouteProvider,PreloadTopChromeWebUI,WebUIOmniboxPopup,WebUIOmniboxAimPopup,WebUIOmniboxFullPopup,SpareRendererForSitePerProcess',
    // The network service in the browser process: one utility process less.
    '--enable-features=NetworkServiceInProcess2',
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

/** One headful Chromium, driven over its DevTools pipe. */
export class ChromiumBrowser<C extends DevToolsPipeClient = DevToolsPipeClient> {
  private constructor(
    readonly process: LaunchedProcess,
    /** The only way to Chromium's DevTools: the daemon and the agent share it. */
    readonly cdp: C,
    /** A profile given by the caller (it is flushed before close); false: a throwaway one. */
    private readonly persistentProfile: boolean,
  ) {}

  get pid(): number {
    return this.process.pid;
  }

  /**
   * Resolves once the process exited and every message it wrote on the pipe was routed
   * (so a Browser.close or the last page's close is known before the exit is judged).
   */
  get exited(): Promise<number | string> {
    return this.process.exited.then(async (code) => {
      await Promise.race([this.cdp.closed, new Promise((r) => setTimeout(r, 1000))]);
      return code;
    });
  }

  static async launch<C extends DevToolsPipeClient>(o: ChromiumOptions<C>): Promise<ChromiumBrowser<C>> {
    const profileDir = o.userDataDir ?? THROWAWAY_PROFILE_DIR;
    let proc: LaunchedProcess | undefined;
    try {
      // Sandboxed (API.md 2): the session's dirs (and a persistent profile) at the same paths
      // (CDP names them), its display, the system read-only; HOME is the profile. Chromium's
      // temp files (its SingletonSocket dir) go to the private /tmp: a persistent profile may
      // sit too deep for a socket path (108 bytes).
      const cmd = sandboxed(o.binary, chromiumArgs({ ...o, profileDir, asRoot: process.getuid?.() === 0 }), {
        writable: [...(o.userDataDir ? [o.userDataDir] : []), ...(o.sessionDirs ?? [])],
        readable: displayClientPaths({ name: o.displayEnv.DISPLAY ?? '', authFile: o.displayEnv.XAUTHORITY ?? '' }),
        // The host's /etc/chromium is not in the sandbox: this file is the only policy.
        readableAt: o.policyFile ? [{ source: o.policyFile, dest: MANAGED_POLICY_FILE }] : [],
        env: { PATH: SANDBOX_PATH, HOME: profileDir, ...o.displayEnv, TMPDIR: '/tmp', ...localeEnv() },
        tmpBytes: THROWAWAY_TMP_BYTES,
      });
      // fd 3: commands to Chromium, fd 4: its answers and events (--remote-debugging-pipe).
      proc = launchProcess(cmd.cmd, cmd.args, { env: {}, stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'], logger: o.logger });
      const cdp = o.connect(proc.child.stdio[3] as Writable, proc.child.stdio[4] as Readable);
      // Generous for a busy machine (README "Start-up waits"); a Chromium that exits fails at once.
      await waitForDevTools(proc, cdp, o.startTimeoutMs ?? 60_000);
      return new ChromiumBrowser(proc, cdp, !!o.userDataDir);
    } catch (e) {
      await proc?.close(500);
      throw e;
    }
  }

  private closing?: Promise<void>;
  close(): Promise<void> {
    // A throwaway profile has nothing to save: SIGKILL at once (Chromium's own shutdown on
    // SIGTERM took seconds of CPU per browser, the bulk of a daemon stop). A persistent one
    // was flushed by Browser.close before this; it gets a short grace.
    this.closing ??= this.process.close(this.persistentProfile ? 1000 : 0);
    return this.closing;
  }
}

/** Chromium is up when it answers a first command on the pipe. */
function waitForDevTools(proc: LaunchedProcess, cdp: DevToolsPipeClient, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`no answer on the DevTools pipe after ${timeoutMs} ms`)), timeoutMs);
    const finish = (err: Error | null) => {
      clearTimeout(timer);
      if (err) reject(new HandoffError('browser_failed', 'the browser could not start', {}, `${err.message}: ${proc.stderrTail()}`));
      else resolve();
    };
    cdp.send('Browser.getVersion').then(
      () => finish(null),
      (e: Error) => finish(e),
    );
    proc.exited.then((code) => finish(new Error(`chromium exited (${code})`)));
  });
}
