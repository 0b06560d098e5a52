import { createRequire } from 'node:module';

/* The x11 package ships no types; these are the few calls used here. */
interface XClient {
  QueryTree(w: number, cb: (e: unknown, t: { children: number[] }) => void): void;
  GetWindowAttributes(w: number, cb: (e: unknown, a: { mapState: number; overrideRedirect: number }) => void): void;
  ConfigureWindow(w: number, values: Record<string, number>): void;
  ChangeWindowAttributes(w: number, values: Record<string, number>): void;
  on(ev: 'event', cb: (e: { name?: string; wid?: number; wid1?: number; x: number; y: number; width: number; height: number; overrideRedirect: number | boolean }) => void): void;
  on(ev: 'error', cb: (e: unknown) => void): void;
  close(cb?: () => void): void;
}
interface XDisplay {
  client: XClient;
  screen: { root: number }[];
}

const x11 = createRequire(import.meta.url)('x11') as { createClient(o: object, cb: (e: unknown, d: XDisplay) => void): XClient };
const SUBSTRUCTURE_NOTIFY = 0x00080000;
/** A window that keeps fighting the size we set is left alone after this many fits. */
const MAX_FITS_PER_WINDOW = 20;

/**
 * Keeps the browser's top-level windows at exactly the screen's size. Chromium on X11 with no
 * window manager makes a window of the screen's exact size one pixel smaller each way
 * (measured: 1279x719 on 1280x720, kiosk or not, also after its fullscreen switch), so the
 * page would not fill the display. We play the window manager's one part that matters:
 * watch top-level windows (SubstructureNotify on the root) and configure them to fill.
 * Override-redirect windows (menus, <select> popups) are left alone.
 */
export class WindowFitter {
  private readonly fits = new Map<number, number>();
  private fittedListeners: (() => void)[] = [];
  private filled = false;

  private constructor(
    private readonly X: XDisplay,
    private readonly width: number,
    private readonly height: number,
  ) {}

  static async start(display: { name: string; cookie: Buffer }, width: number, height: number): Promise<WindowFitter> {
    const X = await new Promise<XDisplay>((resolve, reject) => {
      const client = x11.createClient(
        { display: display.name, auth: { name: 'MIT-MAGIC-COOKIE-1', data: display.cookie.toString('latin1') } },
        (err, d) => (err ? reject(err) : resolve(d)),
      );
      // Errors after connect (the server going away) must not become uncaught exceptions.
      client.on('error', () => {});
    });
    const fitter = new WindowFitter(X, width, height);
    const root = X.screen[0]!.root;
    X.client.ChangeWindowAttributes(root, { eventMask: SUBSTRUCTURE_NOTIFY });
    X.client.on('event', (ev) => {
      if (ev.overrideRedirect) return;
      if (ev.name === 'MapNotify') fitter.fit(ev.wid!);
      if (ev.name === 'ConfigureNotify') fitter.check(ev.wid1!, ev);
    });
    // Windows mapped before we listened.
    const tree = await new Promise<{ children: number[] }>((res, rej) => X.client.QueryTree(root, (e, t) => (e ? rej(e) : res(t))));
    for (const w of tree.children) {
      X.client.GetWindowAttributes(w, (e, a) => {
        if (!e && a.mapState === 2 && !a.overrideRedirect) fitter.fit(w);
      });
    }
    return fitter;
  }

  /** Resolves once a top-level window has been configured to fill the screen (or after `timeoutMs`). */
  whenFilled(timeoutMs: number): Promise<boolean> {
    if (this.filled) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.fittedListeners.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  private fit(w: number): void {
    const n = this.fits.get(w) ?? 0;
    if (n >= MAX_FITS_PER_WINDOW) return;
    this.fits.set(w, n + 1);
    this.X.client.ConfigureWindow(w, { x: 0, y: 0, width: this.width, height: this.height });
  }

  private check(w: number, g: { x: number; y: number; width: number; height: number }): void {
    if (g.x === 0 && g.y === 0 && g.width === this.width && g.height === this.height) {
      if (!this.filled) {
        this.filled = true;
        for (const l of this.fittedListeners.splice(0)) l();
      }
      return;
    }
    if (this.fits.has(w)) this.fit(w);
  }

  close(): void {
    this.X.client.close();
  }
}
