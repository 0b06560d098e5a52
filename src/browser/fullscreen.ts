import type { Logger } from '../util/logger.js';
import type { RootCdp } from './root-cdp.js';

/** How long start() waits for the first page to be laid out at the full size. */
const FIRST_LAYOUT_MS = 3000;

/**
 * Keeps every browser window in Chromium's own fullscreen (no tab strip, no toolbar), so a
 * page fills the display exactly. This replaces --kiosk, which also turned off the page's
 * context menu (and app mode, --force-app-mode, does the same). With no window manager
 * Chromium cannot be told "fullscreen" through X, but Browser.setWindowBounds switches its
 * window state directly: at start, for every window a new page target lives in (new window,
 * popup), and whenever the display's window watcher (display/window.ts) reports that a window
 * mapped or asked to leave fullscreen (F11, a held Esc).
 */
export class FullscreenKeeper {
  private running: Promise<void> = Promise.resolve();
  private again = false;
  private busy = false;
  private closed = false;

  private constructor(
    private readonly cdp: RootCdp,
    /** Called right before a window is switched (display/window.ts hides Chromium's notice). */
    private readonly beforeSwitch: () => void,
    private readonly logger?: Logger,
  ) {}

  /** Switches the first window and waits until its page is laid out at `width` x `height`. */
  static async start(o: { cdp: RootCdp; width: number; height: number; beforeSwitch?: () => void; logger?: Logger }): Promise<FullscreenKeeper> {
    const k = new FullscreenKeeper(o.cdp, o.beforeSwitch ?? (() => {}), o.logger);
    o.cdp.on('event', (method, params, sessionId) => {
      if (sessionId === undefined && method === 'Target.targetCreated' && params?.targetInfo?.type === 'page') k.check();
    });
    o.cdp.once('closed', () => (k.closed = true));
    k.check();
    await k.running;
    await k.firstLayout(o.width, o.height);
    return k;
  }

  /** Puts every window that is not fullscreen back (coalesced: one pass at a time, one more queued). */
  check(): void {
    if (this.closed) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass().catch((e: Error) => {
          if (!this.closed) this.logger?.warn('fullscreen check failed', { error: e.message });
        });
      } while (this.again && !this.closed);
      this.busy = false;
    })();
  }

  private async pass(): Promise<void> {
    const { targetInfos } = (await this.cdp.send('Target.getTargets')) as { targetInfos: { targetId: string; type: string }[] };
    const windows = new Set<number>();
    for (const t of targetInfos.filter((t) => t.type === 'page')) {
      // A page closing meanwhile has no window: skip it.
      const w = await this.cdp.send('Browser.getWindowForTarget', { targetId: t.targetId }).catch(() => null);
      if (!w || windows.has(w.windowId)) continue;
      windows.add(w.windowId);
      if (w.bounds?.windowState === 'fullscreen') continue;
      // A minimized window cannot go fullscreen directly.
      if (w.bounds?.windowState === 'minimized') await this.cdp.send('Browser.setWindowBounds', { windowId: w.windowId, bounds: { windowState: 'normal' } });
      this.beforeSwitch();
      await this.cdp.send('Browser.setWindowBounds', { windowId: w.windowId, bounds: { windowState: 'fullscreen' } });
    }
  }

  /** Chromium lays the page out again after the switch: agents must never see the old size. */
  private async firstLayout(width: number, height: number): Promise<void> {
    const { targetInfos } = (await this.cdp.send('Target.getTargets')) as { targetInfos: { targetId: string; type: string }[] };
    const page = targetInfos.find((t) => t.type === 'page');
    if (!page) return;
    const { sessionId } = await this.cdp.send('Target.attachToTarget', { targetId: page.targetId, flatten: true });
    try {
      const deadline = Date.now() + FIRST_LAYOUT_MS;
      while (Date.now() < deadline && !this.closed) {
        const r = await this.cdp.send('Runtime.evaluate', { expression: '[innerWidth, innerHeight].join("x")', returnByValue: true }, sessionId);
        if (r?.result?.value === `${width}x${height}`) return;
        await new Promise((res) => setTimeout(res, 20));
      }
      this.logger?.warn('page not laid out at the display size', { width, height });
    } finally {
      await this.cdp.send('Target.detachFromTarget', { sessionId }).catch(() => {});
    }
  }
}
