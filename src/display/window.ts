import type { Logger } from '../util/logger.js';
import { X11Connection, type DisplayAddress, type XEvent } from './x11client.js';

const SUBSTRUCTURE_NOTIFY = 0x00080000;
/** EWMH _NET_WM_STATE client message: data[0] 0 remove, 1 add, 2 toggle. */
const NET_WM_STATE_REMOVE = 0;
/** How long after the daemon's own fullscreen switch Chromium's "to exit full screen" notice is hidden. */
const NOTICE_WINDOW_MS = 3000;
/** An X window's position that no screen shows. */
const OFF_SCREEN = -30000;
/** X protocol: GetWindowAttributes map-state IsViewable. */
const IS_VIEWABLE = 2;
/** A window that keeps fighting the size we set is left alone after this many fits. */
const MAX_FITS_PER_WINDOW = 20;

/**
 * Keeps the browser's top-level windows at exactly the screen's size. Chromium on X11 with no
 * window manager makes a window of the screen's exact size one pixel smaller each way
 * (measured: 1279x719 on 1280x720, kiosk or not, also after its fullscreen switch), so the
 * page would not fill the display. We play the one part of a window manager that matters:
 * watch top-level windows (SubstructureNotify on the root) and configure them to fill.
 * Override-redirect windows (menus, <select> popups) are left alone.
 *
 * The other part of a window manager that matters is focus. Chromium focuses a window it
 * opens (a popup) with revert-to Parent; when that window goes, X reverts the focus to None
 * and nobody gives it back, so the browser window stays unfocused: keys still arrive (to the
 * window under the pointer) but Chromium closes every <select> popup the moment it opens, as
 * it does when its window loses focus (measured: after one window.open popup opened and
 * closed, focus "0x50d, revert to None", and no <select> list ever showed again). So when a
 * top-level window unmaps, the topmost remaining one gets the focus back.
 */
export class WindowFitter {
  private readonly fits = new Map<number, number>();
  private readonly filledListeners: (() => void)[] = [];
  private readonly changeListeners: (() => void)[] = [];
  private filled = false;
  /** Until when a fullscreen notice that maps is hidden (ms since epoch). */
  private hideNoticesUntil = 0;
  /** Notice windows we moved off screen (Chromium animates them back: moved again). */
  private readonly hidden = new Set<number>();

  private constructor(
    private readonly x: X11Connection,
    private readonly atoms: { wmState: number; fullscreen: number; windowType: number; notification: number },
  ) {}

  static async start(display: DisplayAddress, logger: Logger): Promise<WindowFitter> {
    const x = await X11Connection.open(display, logger);
    let fitter: WindowFitter;
    try {
      const [wmState, fullscreen, windowType, notification] = await Promise.all(
        ['_NET_WM_STATE', '_NET_WM_STATE_FULLSCREEN', '_NET_WM_WINDOW_TYPE', '_NET_WM_WINDOW_TYPE_NOTIFICATION'].map((n) => x.internAtom(n)),
      );
      fitter = new WindowFitter(x, { wmState: wmState!, fullscreen: fullscreen!, windowType: windowType!, notification: notification! });
    } catch (e) {
      await x.close();
      throw e;
    }
    // SubstructureNotify on the root also brings the EWMH client messages Chromium sends there.
    x.client.ChangeWindowAttributes(x.root, { eventMask: SUBSTRUCTURE_NOTIFY });
    x.client.on('event', (ev: XEvent) => {
      if (ev.name === 'ClientMessage') return fitter.clientMessage(ev);
      if (ev.name === 'UnmapNotify' || ev.name === 'DestroyNotify') {
        fitter.hidden.delete(ev.wid); // a notice shown again later is judged again
        return fitter.refocus();
      }
      if (ev.overrideRedirect) {
        if (ev.name === 'MapNotify') fitter.maybeHideNotice(ev.wid);
        if (ev.name === 'ConfigureNotify' && fitter.hidden.has(ev.wid1) && ev.x !== OFF_SCREEN) fitter.moveOff(ev.wid1);
        return;
      }
      if (ev.name === 'MapNotify') {
        fitter.fit(ev.wid);
        fitter.changed();
      }
      if (ev.name === 'ConfigureNotify') fitter.configured(ev.wid1, ev as XEvent & { x: number; y: number; width: number; height: number });
    });
    // Windows mapped before we listened.
    const tree = await new Promise<{ children: number[] }>((res, rej) => x.client.QueryTree(x.root, (e, t) => (e ? rej(e) : res(t))));
    for (const w of tree.children) {
      x.client.GetWindowAttributes(w, (e, a) => {
        if (!e && a.mapState === IS_VIEWABLE && !a.overrideRedirect) fitter.fit(w);
      });
    }
    return fitter;
  }

  /** Resolves once a top-level window fills the screen, or false after `timeoutMs`. */
  whenFilled(timeoutMs: number): Promise<boolean> {
    if (this.filled) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.filledListeners.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /**
   * Called when the browser may have a window that is not fullscreen: a top-level window
   * mapped, or Chromium asked (with no window manager to hear it) to leave fullscreen (F11,
   * a held Esc). browser/fullscreen.ts puts it back.
   */
  onChange(listener: () => void): void {
    this.changeListeners.push(listener);
  }

  /**
   * The daemon is about to switch a window to fullscreen: Chromium's "to exit full screen,
   * press and hold Esc" notice (a _NET_WM_WINDOW_TYPE_NOTIFICATION override-redirect window)
   * that follows is kept off screen. Kiosk mode never showed it; the human did not ask for
   * fullscreen, the daemon did, and the fullscreen is put back whenever it is left.
   */
  hideFullscreenNotice(): void {
    this.hideNoticesUntil = Date.now() + NOTICE_WINDOW_MS;
  }

  private changed(): void {
    for (const l of this.changeListeners) l();
  }

  private clientMessage(ev: XEvent): void {
    const data = ev.data as number[] | undefined;
    if (ev.message_type !== this.atoms.wmState || !data || data[0] !== NET_WM_STATE_REMOVE) return;
    if (data[1] === this.atoms.fullscreen || data[2] === this.atoms.fullscreen) this.changed();
  }

  private maybeHideNotice(w: number): void {
    if (Date.now() > this.hideNoticesUntil || !this.x.alive) return;
    this.x.client.GetProperty(0, w, this.atoms.windowType, 4 /* ATOM */, 0, 4, (e, prop) => {
      if (e || !prop?.data || prop.data.length < 4) return;
      if (prop.data.readUInt32LE(0) !== this.atoms.notification) return;
      this.hidden.add(w);
      this.moveOff(w);
    });
  }

  private moveOff(w: number): void {
    if (this.x.alive) this.x.client.ConfigureWindow(w, { x: OFF_SCREEN, y: OFF_SCREEN });
  }

  /** Focus to the topmost viewable top-level window that is not override-redirect (a menu). */
  private refocus(): void {
    if (!this.x.alive) return;
    this.x.client.QueryTree(this.x.root, (e, tree) => {
      if (e || !this.x.alive) return;
      // QueryTree lists children bottom to top; only windows we fitted are the browser's own.
      const candidates = tree.children.filter((w) => this.fits.has(w)).reverse();
      const next = (i: number): void => {
        const w = candidates[i];
        if (w === undefined) return;
        this.x.client.GetWindowAttributes(w, (err, a) => {
          if (!err && a.mapState === IS_VIEWABLE && !a.overrideRedirect) this.x.client.SetInputFocus(w, 2 /* RevertToParent */);
          else next(i + 1);
        });
      };
      next(0);
    });
  }

  private fit(w: number): void {
    const n = this.fits.get(w) ?? 0;
    if (n >= MAX_FITS_PER_WINDOW) return;
    this.fits.set(w, n + 1);
    this.x.client.ConfigureWindow(w, { x: 0, y: 0, width: this.x.width, height: this.x.height });
  }

  private configured(w: number, g: { x: number; y: number; width: number; height: number }): void {
    if (g.x === 0 && g.y === 0 && g.width === this.x.width && g.height === this.x.height) {
      if (!this.filled) {
        this.filled = true;
        for (const l of this.filledListeners.splice(0)) l();
      }
    } else if (this.fits.has(w)) {
      this.fit(w);
    }
  }

  close(): Promise<void> {
    return this.x.close();
  }
}
