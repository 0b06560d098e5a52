import { createRequire } from 'node:module';
import type { Logger } from '../util/logger.js';
import { HandoffError } from '../util/errors.js';

/**
 * A thin typed wrapper over one connection of the `x11` npm package (which ships no types):
 * connects with the display's MIT-MAGIC-COOKIE-1, promisifies the calls we use, logs X errors
 * instead of letting an unhandled 'error' event kill the process, and reports the server going
 * away once. Framebuffer and XInput each own one.
 */

/** What we need to reach a display: `XvfbDisplay` satisfies it. */
export interface DisplayAddress {
  /** ':N' */
  name: string;
  /** MIT-MAGIC-COOKIE-1 data. */
  cookie: Buffer;
}

/** The parts of the x11 package's client we use. Callbacks are node-style. */
export interface XClient {
  AllocID(): number;
  require(ext: string, cb: (err: Error | null, ext: any) => void): void;
  InternAtom(onlyIfExists: boolean, name: string, cb: (err: Error | null, atom: number) => void): void;
  GetKeyboardMapping(first: number, count: number, cb: (err: Error | null, rows: number[][]) => void): void;
  /** 32 bytes: bit k of byte i set when keycode 8*i + k is down. */
  QueryKeymap(cb: (err: Error | null, keys: Buffer) => void): void;
  ChangeKeyboardMapping(first: number, keysymsPerKeycode: number, keysyms: number[]): void;
  CreateWindow(id: number, parent: number, x: number, y: number, w: number, h: number,
    border: number, depth: number, cls: number, visual: number, values: Record<string, number>): void;
  DestroyWindow(id: number): void;
  SetSelectionOwner(owner: number, selection: number, time: number): void;
  GetSelectionOwner(selection: number, cb: (err: Error | null, owner: number) => void): void;
  ConvertSelection(requestor: number, selection: number, target: number, property: number, time: number): void;
  GetProperty(del: number, wid: number, name: number, type: number, longOffset: number, longLength: number,
    cb: (err: Error | null, prop: { type: number; format?: number; bytesAfter?: number; data: Buffer }) => void): void;
  ChangeProperty(mode: number, wid: number, name: number, type: number, format: number, data: Buffer | number[]): void;
  SendEvent(destination: number, propagate: number, eventMask: number, event: Record<string, unknown>): void;
  GetInputFocus(cb: (err: Error | null) => boolean | void): void;
  QueryTree(w: number, cb: (err: Error | null, tree: { children: number[] }) => void): void;
  GetWindowAttributes(w: number, cb: (err: Error | null, a: { mapState: number; overrideRedirect: number }) => void): void;
  ChangeWindowAttributes(w: number, values: Record<string, number>): void;
  ConfigureWindow(w: number, values: Record<string, number>): void;
  /** revertTo: 0 None, 1 PointerRoot, 2 Parent; time is CurrentTime. */
  SetInputFocus(w: number, revertTo: number): void;
  on(event: 'event', listener: (ev: XEvent) => void): void;
  on(event: 'error' | 'end', listener: (err?: Error) => void): void;
  removeAllListeners(): void;
  close(cb?: (err?: Error) => void): void;
  terminate(): void;
  stream?: { destroy(): void; destroyed?: boolean };
}

export interface XEvent {
  name?: string;
  type: number;
  [field: string]: any;
}

interface SetupInfo {
  min_keycode: number;
  max_keycode: number;
  screen: { root: number; pixel_width: number; pixel_height: number; root_depth: number }[];
}

const x11 = createRequire(import.meta.url)('x11') as {
  createClient(opts: Record<string, unknown>, cb: (err: Error | undefined, display: SetupInfo) => void): XClient;
};

/** X11 protocol appendix B: atoms 1..68 are predefined, the same on every server. */
const LAST_PREDEFINED_ATOM = 68;

/**
 * The x11 package keeps one atom cache for the whole process (every client's `atoms` is the
 * same object), so an atom interned on one display answered InternAtom on every other one
 * with the first display's number: CLIPBOARD, TARGETS and UTF8_STRING were wrong in every
 * session but the first. Each connection gets its own cache of the predefined atoms only.
 */
function isolateAtomCache(client: XClient): void {
  const c = client as unknown as { atoms: Record<string, number>; atom_names: Record<number, string> };
  const predefined = Object.entries(c.atoms).filter(([, v]) => v >= 1 && v <= LAST_PREDEFINED_ATOM);
  c.atoms = Object.fromEntries(predefined);
  c.atom_names = Object.fromEntries(predefined.map(([k, v]) => [v, k]));
}

export class X11Connection {
  private closing?: Promise<void>;
  private deadListeners: ((reason: string) => void)[] = [];
  private dead = false;

  private constructor(
    readonly client: XClient,
    private readonly setup: SetupInfo,
    private readonly logger: Logger,
  ) {
    client.on('error', (err) => {
      // X protocol errors for requests without a callback land here; an 'error' with no
      // listener would throw, so log and carry on (the requests are independent).
      this.logger.warn('x11 error', { err: err?.message, code: (err as { error?: number })?.error });
      if ((err as NodeJS.ErrnoException | undefined)?.code) this.markDead(err!.message);
    });
    client.on('end', () => this.markDead('connection closed by the X server'));
  }

  /**
   * Generous (README "Start-up waits"): on a busy machine Xvfb may take seconds to answer the
   * setup; a display that is gone fails at once (the socket errors), not at the timeout.
   */
  static open(display: DisplayAddress, logger: Logger, timeoutMs = 30_000): Promise<X11Connection> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        client.removeAllListeners();
        client.stream?.destroy();
        reject(new HandoffError('browser_failed', 'the X display is not reachable', {}, `${display.name}: ${err.message}`));
      };
      const timer = setTimeout(() => fail(new Error('X connection setup timed out')), timeoutMs);
      const client = x11.createClient(
        {
          display: display.name,
          auth: { name: 'MIT-MAGIC-COOKIE-1', data: display.cookie.toString('latin1') },
          // No MIT-SHM: it would need fd passing through Node internals we have no use for.
          shm: false,
        },
        (err, setup) => {
          if (err) return fail(err);
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          isolateAtomCache(client);
          resolve(new X11Connection(client, setup, logger));
        },
      );
      client.on('error', (err) => fail(err ?? new Error('x11 error')));
    });
  }

  get root(): number {
    return this.setup.screen[0]!.root;
  }
  get width(): number {
    return this.setup.screen[0]!.pixel_width;
  }
  get height(): number {
    return this.setup.screen[0]!.pixel_height;
  }
  get minKeycode(): number {
    return this.setup.min_keycode;
  }
  get maxKeycode(): number {
    return this.setup.max_keycode;
  }
  get alive(): boolean {
    return !this.dead && !this.closing;
  }

  /** Loads an extension (e.g. 'damage', 'xtest'); rejects when the server lacks it. */
  extension<T = any>(name: string): Promise<T> {
    return new Promise((resolve, reject) =>
      this.client.require(name, (err, ext) => (err ? reject(err) : resolve(ext as T))),
    );
  }

  internAtom(name: string): Promise<number> {
    return new Promise((resolve, reject) =>
      this.client.InternAtom(false, name, (err, atom) => (err ? reject(err) : resolve(atom))),
    );
  }

  /** A round trip: every request sent before it has been processed when this resolves. */
  sync(): Promise<void> {
    return new Promise((resolve, reject) =>
      this.client.GetInputFocus((err) => {
        if (err) reject(err);
        else resolve();
        return true;
      }),
    );
  }

  /** Called once if the X server goes away (not after our own close()). */
  onDead(listener: (reason: string) => void): void {
    this.deadListeners.push(listener);
  }

  private markDead(reason: string): void {
    if (this.dead || this.closing) return;
    this.dead = true;
    this.logger.warn('x11 connection lost', { reason });
    for (const l of this.deadListeners) l(reason);
  }

  /** Flushes what was sent, then closes the socket. Idempotent; never rejects. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      if (this.dead) {
        this.client.stream?.destroy();
        return resolve();
      }
      // A dead server never answers the closing round trip: don't wait forever.
      const timer = setTimeout(() => {
        this.client.stream?.destroy();
        resolve();
      }, 1000);
      this.client.close(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return this.closing;
  }
}
