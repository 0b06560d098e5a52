import type { Logger } from '../util/logger.js';
import { X11Connection, type DisplayAddress, type XEvent } from './x11client.js';
import { XK_F11 } from './input.js';

const SUBSTRUCTURE_NOTIFY = 0x00080000;
/** EWMH _NET_WM_STATE client message: data[0] 0 remove, 1 add, 2 toggle. */
const NET_WM_STATE_REMOVE = 0;
/** How long an F11 may take to be answered by Chromium's fullscreen message before another. */
const FULLSCREEN_RETRY_MS = 500;
/** After this many F11s unanswered, a window is tried again only every FULLSCREEN_SLOW_RETRY_MS. */
const MAX_FULLSCREEN_TRIES = 20;
/**
 * Never give up for good: a window out of fullscreen shows the address bar (security review: a
 * human holding Shift turned our F11s into Shift+F11 until we stopped trying).
 */
const FULLSCREEN_SLOW_RETRY_MS = 5000;
/** How long after our own F11 Chromium's "Press F11 to exit full screen" notice is hidden. */
const NOTICE_WINDOW_MS = 3000;
/** An X window's position that no screen shows. */
const OFF_SCREEN = -30000;
/** X protocol: GetWindowAttributes map-state IsViewable. */
const IS_VIEWABLE = 2;
/** A window that keeps fighting the size we set is left alone after this many fits. */
const MAX_FITS_PER_WINDOW = 20;

interface XTest {
  KeyPress: number;
  KeyRelease: number;
  FakeInput(type: number, detail: number, time: number, root: number, x: number, y: number): void;
}

/**
 * The daemon's window manager for a session's display (there is no other: Xvfb alone).
 *
 * Size. Chromium on X11 with no window manager makes a window of the screen's exact size one
 * pixel smaller each way (measured: 1279x719 on 1280x720, also after its fullscreen switch),
 * so the page would not fill the display. We watch top-level windows (SubstructureNotify on
 * the root) and configure them to fill. Override-redirect windows (menus, <select> lists,
 * the context menu) are left alone.
 *
 * Fullscreen. Chromium runs without --kiosk, which turned the page's context menu off (so
 * does app mode, --force-app-mode). Each browser window is put in Chromium's own browser
 * fullscreen instead (no tab strip, no toolbar): the same as a user's F11, so we press F11 in
 * it (XTest, the window focused) when it maps, and again whenever Chromium asks the (absent)
 * window manager to leave fullscreen (the human's F11, a held Esc). Chromium announces both
 * ways with an EWMH _NET_WM_STATE client message to the root, which SubstructureNotify brings
 * us. Not DevTools' Browser.setWindowBounds: that fullscreen ends at the next navigation
 * (measured). The "Press F11 to exit full screen" notice (an override-redirect window of type
 * _NET_WM_WINDOW_TYPE_NOTIFICATION) that follows our own F11 is moved off screen.
 *
 * Focus. Chromium focuses a window it opens (a popup) with revert-to Parent; when that window
 * goes, X reverts the focus to None and nobody gives it back, so the browser window stays
 * unfocused: keys still arrive (to the window under the pointer) but Chromium closes every
 * <select> list the moment it opens, as it does when its window loses focus (measured: after
 * one window.open popup opened and closed, focus "0x50d, revert to None", and no <select>
 * list ever showed again). So when a top-level window unmaps, the topmost remaining one gets
 * the focus back.
 */
export class WindowFitter {
  private readonly fits = new Map<number, number>();
  private readonly filledListeners: (() => void)[] = [];
  private filled = false;
  /** Windows at exactly the screen's size, and windows Chromium says are fullscreen. */
  private readonly fullSize = new Set<number>();
  private readonly fullscreen = new Set<number>();
  /** F11s sent per window, and the retry timer of each window still waiting. */
  private readonly tries = new Map<number, number>();
  private readonly retries = new Map<number, NodeJS.Timeout>();
  /** Until when a fullscreen notice that maps is hidden (ms since epoch). */
  private hideNoticesUntil = 0;
  /** Notice windows we moved off screen (Chromium animates them back: moved again). */
  private readonly hidden = new Set<number>();

  private constructor(
    private readonly x: X11Connection,
    private readonly xtest: XTest,
    private readonly f11: number | undefined,
    private readonly atoms: { wmState: number; fullscreen: number; windowType: number; notification: number },
  ) {}

  static async start(display: DisplayAddress, logger: Logger): Promise<WindowFitter> {
    const x = await X11Connection.open(display, logger);
    let fitter: WindowFitter;
    try {
      const [wmState, fullscreen, windowType, notification] = await Promise.all(
        ['_NET_WM_STATE', '_NET_WM_STATE_FULLSCREEN', '_NET_WM_WINDOW_TYPE', '_NET_WM_WINDOW_TYPE_NOTIFICATION'].map((n) => x.internAtom(n)),
      );
      const xtest = await x.extension<XTest>('xtest');
      const rows = await new Promise<number[][]>((res, rej) =>
        x.client.GetKeyboardMapping(x.minKeycode, x.maxKeycode - x.minKeycode + 1, (e, r) => (e ? rej(e) : res(r))),
      );
      const i = rows.findIndex((row) => row.includes(XK_F11));
      if (i < 0) logger.warn('no keycode for F11: browser windows stay out of fullscreen');
      fitter = new WindowFitter(x, xtest, i < 0 ? undefined : x.minKeycode + i, {
        wmState: wmState!, fullscreen: fullscreen!, windowType: windowType!, notification: notification!,
      });
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
        if (ev.name === 'DestroyNotify') fitter.forget(ev.wid);
        return fitter.refocus();
      }
      if (ev.overrideRedirect) {
        if (ev.name === 'MapNotify') fitter.maybeHideNotice(ev.wid);
        if (ev.name === 'ConfigureNotify' && fitter.hidden.has(ev.wid1) && ev.x !== OFF_SCREEN) fitter.moveOff(ev.wid1);
        return;
      }
      if (ev.name === 'MapNotify') {
        fitter.fit(ev.wid);
        fitter.makeFullscreen(ev.wid);
      }
      if (ev.name === 'ConfigureNotify') fitter.configured(ev.wid1, ev as XEvent & { x: number; y: number; width: number; height: number });
    });
    // Windows mapped before we listened.
    const tree = await new Promise<{ children: number[] }>((res, rej) => x.client.QueryTree(x.root, (e, t) => (e ? rej(e) : res(t))));
    for (const w of tree.children) {
      x.client.GetWindowAttributes(w, (e, a) => {
        if (!e && a.mapState === IS_VIEWABLE && !a.overrideRedirect) {
          fitter.fit(w);
          fitter.makeFullscreen(w);
        }
      });
    }
    return fitter;
  }

  /** Resolves once a browser window fills the screen in fullscreen, or false after `timeoutMs`. */
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
   * Presses F11 in window `w` until Chromium says it is fullscreen (it may not listen to keys
   * yet right after mapping). Focus goes to `w` first: XTest keys go to the focused window.
   */
  private makeFullscreen(w: number): void {
    if (this.f11 === undefined || this.fullscreen.has(w) || this.retries.has(w) || !this.x.alive) return;
    const n = this.tries.get(w) ?? 0;
    this.tries.set(w, n + 1);
    this.x.client.GetWindowAttributes(w, (err, a) => {
      if (err || a.mapState !== IS_VIEWABLE || a.overrideRedirect || this.fullscreen.has(w) || !this.x.alive) return;
      this.x.client.QueryKeymap((e, keys) => {
        if (e || this.fullscreen.has(w) || !this.x.alive) return;
        this.hideNoticesUntil = Date.now() + NOTICE_WINDOW_MS;
        this.x.client.SetInputFocus(w, 2 /* RevertToParent */);
        // Keys a viewer holds down (Shift, Ctrl) would turn our F11 into another shortcut.
        for (const keycode of pressedKeycodes(keys)) this.xtest.FakeInput(this.xtest.KeyRelease, keycode, 0, this.x.root, 0, 0);
        this.xtest.FakeInput(this.xtest.KeyPress, this.f11!, 0, this.x.root, 0, 0);
        this.xtest.FakeInput(this.xtest.KeyRelease, this.f11!, 0, this.x.root, 0, 0);
        this.retries.set(w, setTimeout(() => {
          this.retries.delete(w);
          this.makeFullscreen(w);
        }, n + 1 < MAX_FULLSCREEN_TRIES ? FULLSCREEN_RETRY_MS : FULLSCREEN_SLOW_RETRY_MS));
      });
    });
  }

  private clientMessage(ev: XEvent): void {
    const data = ev.data as number[] | undefined;
    if (ev.message_type !== this.atoms.wmState || !data) return;
    if (data[1] !== this.atoms.fullscreen && data[2] !== this.atoms.fullscreen) return;
    const w = ev.wid as number;
    if (data[0] === NET_WM_STATE_REMOVE) {
      this.fullscreen.delete(w);
      this.tries.delete(w);
      this.makeFullscreen(w);
    } else {
      this.fullscreen.add(w);
      clearTimeout(this.retries.get(w));
      this.retries.delete(w);
      this.checkFilled();
    }
  }

  private forget(w: number): void {
    clearTimeout(this.retries.get(w));
    for (const m of [this.retries, this.tries, this.fits]) m.delete(w);
    this.fullscreen.delete(w);
    this.fullSize.delete(w);
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
      this.fullSize.add(w);
      this.checkFilled();
    } else {
      this.fullSize.delete(w);
      if (this.fits.has(w)) this.fit(w);
    }
  }

  /** Filled: a window at the screen's size that is in Chromium's fullscreen (no toolbar). */
  private checkFilled(): void {
    if (this.filled || ![...this.fullSize].some((w) => this.fullscreen.has(w))) return;
    this.filled = true;
    for (const l of this.filledListeners.splice(0)) l();
  }

  close(): Promise<void> {
    for (const t of this.retries.values()) clearTimeout(t);
    this.retries.clear();
    return this.x.close();
  }
}

/** The keycodes set in a QueryKeymap reply (32 bytes, bit k of byte i is keycode 8*i + k). */
export function pressedKeycodes(keys: ArrayLike<number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < keys.length && i < 32; i++) {
    for (let bit = 0; bit < 8; bit++) if (keys[i]! & (1 << bit)) out.push(i * 8 + bit);
  }
  return out;
}
