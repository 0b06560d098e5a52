import type { Config } from '../config/config.js';
import { XvfbDisplay } from '../display/xvfb.js';
import { WindowFitter } from '../display/window.js';
import { DisplayRecorder } from '../display/recorder.js';
import { Framebuffer } from '../display/framebuffer.js';
import { XInput } from '../display/input.js';
import { ChromiumBrowser } from '../browser/chromium.js';
import { BrowserControl } from '../browser/control.js';
import { chromiumPolicyPath } from '../browser/policy.js';
import { connectPipe, type CdpPipeMux } from '../cdp/pipe-mux.js';
import { Screencast } from '../liveview/screencast/screencast.js';
import { WebRtcHub } from '../liveview/webrtc/hub.js';
import type { BrowserOptions, BrowserPart, DisplayPart, OwnedProcess, SessionFactories } from './parts.js';
import { PartStack } from './parts.js';

/** How long a browser on a persistent profile may take to exit by itself (it flushes its data). */
const PROFILE_FLUSH_MS = 10_000;

/** The real parts (Xvfb, Chromium, ffmpeg, the live view hubs), wired from the config by main.ts. */
export function realFactories(config: Readonly<Config>): SessionFactories {
  return {
    display: ({ width, height, logger }) => startDisplay(config, width, height, logger),
    browser: (o) => startBrowser(config, o),
    recorder: async ({ display, width, height, path, logger }) => {
      const r = await DisplayRecorder.start({ display: display.address, width, height, path, logger });
      return { processes: [{ kind: 'ffmpeg', pid: r.pid, dir: null }], close: () => r.close() };
    },
    screencast: (view, logger) => new Screencast(view, logger),
    webrtc: (view, o) =>
      new WebRtcHub(view, {
        display: o.display.address,
        width: o.width,
        height: o.height,
        credentials: o.credentials,
        host: config.host === 'localhost' ? '127.0.0.1' : config.host,
        portRange: config.rtcPorts,
        iceServers: config.iceServers,
        onAuthFailed: o.onAuthFailed,
        onEncoderProcess: o.onEncoderProcess,
        logger: o.logger,
      }),
  };
}

/** Xvfb first, then what needs only it side by side; a failure closes what was built. */
async function startDisplay(config: Readonly<Config>, width: number, height: number, logger: BrowserOptions['logger']): Promise<DisplayPart> {
  const xvfb = await XvfbDisplay.start({ width, height, tmpRoot: config.framebufferDir, logger });
  const stack = new PartStack((what, e) => logger.warn(`closing ${what} failed`, { error: e.message }));
  stack.push('xvfb', xvfb);
  // allSettled: a part that succeeds while another fails is still closed.
  const [fitter, fb, input] = await Promise.allSettled([
    WindowFitter.start(xvfb, logger).then((f) => stack.push('window fitter', f)),
    Framebuffer.open({ fbPath: xvfb.fbPath, display: xvfb, logger }).then((f) => stack.push('framebuffer', f)),
    XInput.open({ display: xvfb, logger }).then((i) => stack.push('input', i)),
  ]);
  if (fitter.status === 'rejected' || fb.status === 'rejected' || input.status === 'rejected') {
    await stack.close();
    throw [fitter, fb, input].find((p): p is PromiseRejectedResult => p.status === 'rejected')!.reason;
  }
  const processes: OwnedProcess[] = [{ kind: 'xvfb', pid: xvfb.pid, dir: xvfb.dir }];
  return {
    address: { name: xvfb.name, authFile: xvfb.authFile },
    framebuffer: fb.value,
    input: input.value,
    processes,
    exited: xvfb.process.exited,
    whenFilled: (ms) => fitter.value.whenFilled(ms),
    close: () => stack.close(),
  };
}

async function startBrowser(config: Readonly<Config>, o: BrowserOptions): Promise<BrowserPart> {
  const xvfbEnv = { DISPLAY: o.display.address.name, XAUTHORITY: o.display.address.authFile };
  const chromium: ChromiumBrowser<CdpPipeMux> = await ChromiumBrowser.launch({
    binary: config.chromiumPath,
    width: o.width,
    height: o.height,
    displayEnv: xvfbEnv,
    sessionDirs: [o.downloadDir, o.uploadDir],
    policyFile: chromiumPolicyPath(config.stateDir),
    userDataDir: o.userDataDir,
    logger: o.logger,
    connect: connectPipe,
  });
  let control: BrowserControl;
  try {
    control = await BrowserControl.connect(chromium.cdp, o.downloadDir, o.logger);
  } catch (e) {
    await chromium.close();
    throw e;
  }
  let closing: Promise<void> | undefined;
  return {
    // No dir to reap: a throwaway profile is in the sandbox's own tmpfs, a persistent one is not ours.
    processes: [{ kind: 'chromium', pid: chromium.pid, dir: null }],
    exited: chromium.exited,
    stderrTail: () => chromium.process.stderrTail(),
    openAgent: (targetId) => chromium.cdp.openAgent(targetId),
    pages: () => control.pages(),
    hasTarget: (id) => control.hasTarget(id),
    version: () => control.version(),
    openTab: async (url) => (await chromium.cdp.send('Target.createTarget', { url })).targetId as string,
    control,
    on(event: 'download' | 'navigated', listener: (x: any) => void) {
      return control.on(event, listener);
    },
    close: () =>
      (closing ??= (async () => {
        // A persistent profile: Chromium writes its cookies and storage to disk while it shuts
        // down after Browser.close, so it gets time to exit on its own before the signal. A
        // throwaway profile has nothing to keep: straight to the signal (a Browser.close first
        // cost up to a second per session of a daemon stop under load).
        if (o.userDataDir) {
          await control.close().catch(() => {});
          await Promise.race([chromium.exited, new Promise((r) => setTimeout(r, PROFILE_FLUSH_MS).unref())]);
        }
        await chromium.close();
      })()),
  };
}
