import type { InputSink } from './types.js';
import { X11Connection, type DisplayAddress, type XEvent } from './x11client.js';
import type { Logger } from '../util/logger.js';

// ---------------------------------------------------------------------------------------------
// Keyboard mapping (X11 protocol, section 5 "Keyboards"): each keycode has a list of keysyms;
// the first two are group 1 unshifted and shifted. A second element of NoSymbol means the
// first is used for both, except that an alphabetic keysym stands for its (lower, upper) pair.

export const NO_SYMBOL = 0;
export const XK_SHIFT_L = 0xffe1;
export const XK_SHIFT_R = 0xffe2;

/** Lower/upper case of a Latin-1 letter keysym (the implied case pairs of the core protocol). */
function latin1Case(ks: number): { lower: number; upper: number } | undefined {
  if ((ks >= 0x41 && ks <= 0x5a) || (ks >= 0xc0 && ks <= 0xde && ks !== 0xd7)) return { lower: ks + 0x20, upper: ks };
  if ((ks >= 0x61 && ks <= 0x7a) || (ks >= 0xe0 && ks <= 0xfe && ks !== 0xf7)) return { lower: ks, upper: ks - 0x20 };
  return undefined;
}

/** The X keysym for one character: Latin-1 is its code point, the rest 0x01000000 | cp. */
export function keysymForChar(ch: string): number {
  const cp = ch.codePointAt(0)!;
  if ((cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xff)) return cp;
  return 0x01000000 | cp;
}

/** The character a Latin-1 or Unicode keysym stands for. */
function charForKeysym(ks: number): string | undefined {
  if ((ks >= 0x20 && ks <= 0x7e) || (ks >= 0xa0 && ks <= 0xff)) return String.fromCodePoint(ks);
  if (ks >>> 24 === 0x01) return String.fromCodePoint(ks & 0xffffff);
  return undefined;
}

export interface KeyLocation {
  keycode: number;
  /** The keysym is at the shifted position: Shift must be down to get it. */
  shifted: boolean;
  /** What the keycode gives without and with Shift. */
  levels: [number, number];
}

export class KeyboardMap {
  private readonly byKeysym = new Map<number, KeyLocation>();
  private readonly rows: number[][];

  /** `rows[i]` are the keysyms of keycode `minKeycode + i` (GetKeyboardMapping's reply). */
  constructor(
    readonly minKeycode: number,
    rows: number[][],
  ) {
    this.rows = rows.map((r) => [...r]);
    this.rebuild();
  }

  get keysymsPerKeycode(): number {
    return this.rows[0]?.length ?? 2;
  }

  lookup(keysym: number): KeyLocation | undefined {
    return this.byKeysym.get(keysym);
  }

  /** Keycodes with no keysym at all, highest first (the least likely to be in anyone's way). */
  spareKeycodes(): number[] {
    const spare: number[] = [];
    for (let i = this.rows.length - 1; i >= 0; i--) {
      if (this.rows[i]!.every((k) => k === NO_SYMBOL)) spare.push(this.minKeycode + i);
    }
    return spare;
  }

  /**
   * The row ChangeKeyboardMapping gets to put `keysym` on a spare keycode: a letter with a
   * one-character case partner goes in as (lower, upper) like on a real layout, so typing
   * mixed case needs half the bindings; anything else at both levels, so Shift is irrelevant.
   */
  bindingRow(keysym: number): number[] {
    const row = new Array<number>(Math.max(2, this.keysymsPerKeycode)).fill(NO_SYMBOL);
    const ch = charForKeysym(keysym);
    const lower = ch?.toLowerCase();
    const upper = ch?.toUpperCase();
    if (lower && upper && lower !== upper && [...lower].length === 1 && [...upper].length === 1) {
      row[0] = keysymForChar(lower);
      row[1] = keysymForChar(upper);
    } else {
      row[0] = keysym;
      row[1] = keysym;
    }
    return row;
  }

  /** Records what ChangeKeyboardMapping did to `keycode`. */
  setRow(keycode: number, row: number[]): void {
    this.rows[keycode - this.minKeycode] = [...row];
    this.rebuild();
  }

  private rebuild(): void {
    this.byKeysym.clear();
    // Unshifted placements win over shifted ones, lower keycodes over higher.
    for (const shifted of [false, true]) {
      this.rows.forEach((row, i) => {
        const levels = groupOne(row);
        const ks = levels[shifted ? 1 : 0];
        if (ks !== NO_SYMBOL && !this.byKeysym.has(ks)) {
          this.byKeysym.set(ks, { keycode: this.minKeycode + i, shifted, levels });
        }
      });
    }
  }
}

/** The effective (unshifted, shifted) pair of a keycode's keysyms. */
function groupOne(row: number[]): [number, number] {
  const first = row[0] ?? NO_SYMBOL;
  const second = row[1] ?? NO_SYMBOL;
  if (second !== NO_SYMBOL) return [first, second];
  const pair = latin1Case(first);
  return pair ? [pair.lower, pair.upper] : [first, first];
}

/**
 * What pressing a keysym takes: its keycode and what to do about Shift. `add`: press Shift
 * around it (shifted keysym, no Shift held). `lift`: release the held Shift around it (the
 * keysym is unshifted and Shift would change it: a client whose own layout put it on a
 * shifted key, like '/' on a German Shift+7). `keep`: nothing. Or `bind` when no keycode has it.
 */
export type KeyPlan = { kind: 'press'; keycode: number; shift: 'add' | 'lift' | 'keep' } | { kind: 'bind' };

export function planKey(map: KeyboardMap, keysym: number, shiftHeld: boolean): KeyPlan {
  const loc = map.lookup(keysym);
  if (!loc) return { kind: 'bind' };
  let shift: 'add' | 'lift' | 'keep' = 'keep';
  if (loc.shifted && !shiftHeld) shift = 'add';
  // Only a character changes with Shift: Shift+Tab (Tab's shifted level is ISO_Left_Tab),
  // Shift+arrows and the like keep the Shift the user holds.
  else if (!loc.shifted && shiftHeld && loc.levels[1] !== keysym && charForKeysym(keysym) !== undefined) shift = 'lift';
  return { kind: 'press', keycode: loc.keycode, shift };
}

// ---------------------------------------------------------------------------------------------

interface XTestExt {
  KeyPress: number;
  KeyRelease: number;
  ButtonPress: number;
  ButtonRelease: number;
  MotionNotify: number;
  FakeInput(type: number, detail: number, time: number, root: number, x: number, y: number): void;
}

export interface XInputOptions {
  display: DisplayAddress;
  logger: Logger;
}

/** RFB mask bits 3-6 are the wheel (X buttons 4-7): clicks, never held. */
const WHEEL_BITS = 0b0111_1000;
/** Spare keycodes we bind unmapped keysyms to, least recently used first. */
const SPARE_POOL = 32;
/**
 * A spare keycode is rebound only this long after its last use. Clients re-read the map in their
 * own time after MappingNotify, so a key event still queued in, say, Chromium would be read with
 * the new binding if we rebound its keycode too soon.
 */
const REBIND_AFTER_MS = 250;
/**
 * After binding, the key is pressed this much later, for the same reason. Measured with a burst
 * of ~25 binds into Chromium: at 1 ms one run in three typed a rebound keycode as its previous
 * keysym; at 20 ms every run was right. Already bound keysyms type at full speed.
 */
const BIND_SETTLE_MS = 20;
/** Input held back while waiting for a rebind is bounded; beyond this it is dropped. */
const MAX_QUEUED = 10_000;
/** No INCR transfers (ICCCM 2.7.2): one property must carry the text, well under BigRequests. */
const MAX_CLIPBOARD_CHARS = 1 << 20;

const STD_ATOM = { PRIMARY: 1, ATOM: 4, STRING: 31 } as const;
/**
 * How often the CLIPBOARD is looked at while someone wants copies (onCopy). Core X has no
 * "selection changed" event and an owner that copies again stays the same owner, so the
 * text itself is compared: one small round trip to the owner per interval, only while a
 * viewer listens.
 */
const COPY_POLL_MS = 400;
/** A selection owner that does not answer a conversion within this is asked again next poll. */
const CONVERT_TIMEOUT_MS = 2000;
const PROP_MODE_REPLACE = 0;

/** X keysyms F11 and F12: not passed from viewers (see XInput.key); F11 is the daemon's own (window.ts). */
export const XK_F11 = 0xffc8;
const XK_F12 = 0xffc9;

/** One queued input operation: does its work and returns 0, or asks to run again after that many ms. */
type Op = () => number;

/**
 * Real input into the X server through XTEST FakeInput, so pages see trusted events and native
 * popups get them too. Also owns CLIPBOARD and PRIMARY for setClipboard(). Calls take effect in
 * order; they only queue while a keysym bound to a spare keycode settles (see BIND_SETTLE_MS).
 */
export class XInput implements InputSink {
  private buttons = 0;
  private x = -1;
  private y = -1;
  /** keysym -> the keycode pressed for it, so the release lifts the same key. */
  private readonly held = new Map<number, number>();
  private readonly shiftKeycodes: Set<number>;
  /** Spare keycode -> when it was last pressed, released or bound. */
  private readonly spareUsed = new Map<number, number>();
  private readonly bound = new Set<number>();
  private readonly selections = new Map<number, string>();
  private readonly queue: Op[] = [];
  private readonly copyListeners = new Set<(text: string) => void>();
  private copyTimer?: NodeJS.Timeout;
  /** The clipboard text last seen (undefined: not looked at yet, so the first look is no copy). */
  private lastCopy?: string;
  private converting = 0;
  private queueTimer?: NodeJS.Timeout;
  private closing?: Promise<void>;

  private constructor(
    private readonly conn: X11Connection,
    private readonly xtest: XTestExt,
    private readonly keymap: KeyboardMap,
    private readonly window: number,
    private readonly atoms: Record<'CLIPBOARD' | 'TARGETS' | 'UTF8_STRING' | 'TEXT' | 'HANDOFF_COPY', number>,
    private readonly logger: Logger,
  ) {
    this.shiftKeycodes = new Set(
      [XK_SHIFT_L, XK_SHIFT_R].map((ks) => keymap.lookup(ks)?.keycode).filter((k): k is number => k !== undefined),
    );
    for (const kc of keymap.spareKeycodes().slice(0, SPARE_POOL)) this.spareUsed.set(kc, -Infinity);
    conn.client.on('event', (ev) => this.handleEvent(ev));
  }

  static async open(opts: XInputOptions): Promise<XInput> {
    const conn = await X11Connection.open(opts.display, opts.logger);
    try {
      const xtest = await conn.extension<XTestExt>('xtest');
      const rows = await new Promise<number[][]>((resolve, reject) =>
        conn.client.GetKeyboardMapping(conn.minKeycode, conn.maxKeycode - conn.minKeycode + 1, (err, r) =>
          err ? reject(err) : resolve(r),
        ),
      );
      // Interned on this connection (x11client isolates the package's atom cache per display).
      const names = ['CLIPBOARD', 'TARGETS', 'UTF8_STRING', 'TEXT', 'HANDOFF_COPY'] as const;
      const values = await Promise.all(names.map((n) => conn.internAtom(n)));
      const atoms = Object.fromEntries(names.map((n, i) => [n, values[i]!])) as Record<(typeof names)[number], number>;
      // An unmapped InputOnly window is all a selection owner needs (ICCCM 2.1).
      const window = conn.client.AllocID();
      conn.client.CreateWindow(window, conn.root, -10, -10, 1, 1, 0, 0, 2 /* InputOnly */, 0, { overrideRedirect: 1 });
      await conn.sync();
      return new XInput(conn, xtest, new KeyboardMap(conn.minKeycode, rows), window, atoms, opts.logger);
    } catch (e) {
      await conn.close();
      throw e;
    }
  }

  private get usable(): boolean {
    return !this.closing && this.conn.alive;
  }

  pointer(x: number, y: number, buttonMask: number): void {
    this.enqueue(() => {
      const t = this.xtest;
      const cx = Math.max(0, Math.min(this.conn.width - 1, Math.round(x)));
      const cy = Math.max(0, Math.min(this.conn.height - 1, Math.round(y)));
      if (cx !== this.x || cy !== this.y) {
        // MotionNotify detail 0 = absolute coordinates on `root` (XTEST 2.2, FakeInput).
        t.FakeInput(t.MotionNotify, 0, 0, this.conn.root, cx, cy);
        this.x = cx;
        this.y = cy;
      }
      const heldMask = buttonMask & ~WHEEL_BITS & 0xff;
      const changed = heldMask ^ this.buttons;
      for (let bit = 0; bit < 8; bit++) {
        const m = 1 << bit;
        if (changed & m) t.FakeInput(heldMask & m ? t.ButtonPress : t.ButtonRelease, bit + 1, 0, 0, 0, 0);
        else if (buttonMask & m & WHEEL_BITS) {
          t.FakeInput(t.ButtonPress, bit + 1, 0, 0, 0, 0);
          t.FakeInput(t.ButtonRelease, bit + 1, 0, 0, 0, 0);
        }
      }
      this.buttons = heldMask;
      return 0;
    });
  }

  key(keysym: number, down: boolean): void {
    // F11 leaves the browser's fullscreen (the address bar shows), F12 would open DevTools (off
    // by policy too): the human never needs either (README "Keys").
    if (keysym === XK_F11 || keysym === XK_F12) return;
    this.enqueue(() => (down ? this.press(keysym) : this.release(keysym)));
  }

  private press(keysym: number): number {
    const t = this.xtest;
    const repeat = this.held.get(keysym);
    if (repeat !== undefined) {
      t.FakeInput(t.KeyPress, repeat, 0, 0, 0, 0); // auto-repeat from the client
      this.touch(repeat);
      return 0;
    }
    const shiftsHeld = [...new Set(this.held.values())].filter((kc) => this.shiftKeycodes.has(kc));
    const plan = planKey(this.keymap, keysym, shiftsHeld.length > 0);
    if (plan.kind === 'bind') {
      const spare = this.pickSpare();
      if (spare === undefined) {
        this.logger.warn('no spare keycode for keysym', { keysym });
        return 0;
      }
      if (spare.waitMs > 0) return spare.waitMs;
      const row = this.keymap.bindingRow(keysym);
      this.conn.client.ChangeKeyboardMapping(spare.keycode, row.length, row);
      this.keymap.setRow(spare.keycode, row);
      this.bound.add(spare.keycode);
      this.touch(spare.keycode);
      // Pressed on the next run, once clients have had a moment to take in the new map.
      return BIND_SETTLE_MS;
    }
    const shift = [...this.shiftKeycodes][0];
    // The character is produced on press, so our own Shift changes are undone right after it:
    // nothing leaks into what the user types next.
    if (plan.shift === 'add' && shift !== undefined) t.FakeInput(t.KeyPress, shift, 0, 0, 0, 0);
    if (plan.shift === 'lift') for (const kc of shiftsHeld) t.FakeInput(t.KeyRelease, kc, 0, 0, 0, 0);
    t.FakeInput(t.KeyPress, plan.keycode, 0, 0, 0, 0);
    if (plan.shift === 'add' && shift !== undefined) t.FakeInput(t.KeyRelease, shift, 0, 0, 0, 0);
    if (plan.shift === 'lift') for (const kc of shiftsHeld) t.FakeInput(t.KeyPress, kc, 0, 0, 0, 0);
    this.held.set(keysym, plan.keycode);
    this.touch(plan.keycode);
    return 0;
  }

  private release(keysym: number): number {
    let keycode = this.held.get(keysym);
    if (keycode === undefined) {
      // Some clients release a key under another keysym than they pressed it with
      // (xtightvncviewer: press 'O' with Shift, release 'o' after it): the same key is the
      // same keycode. Without this the key stayed down and auto-repeated.
      const kc = this.keymap.lookup(keysym)?.keycode;
      const pressedAs = kc === undefined ? undefined : [...this.held].find(([, k]) => k === kc)?.[0];
      if (pressedAs === undefined) return 0; // never pressed, or already lifted by releaseAll
      keysym = pressedAs;
      keycode = kc!;
    }
    this.held.delete(keysym);
    this.xtest.FakeInput(this.xtest.KeyRelease, keycode, 0, 0, 0, 0);
    this.touch(keycode);
    return 0;
  }

  private touch(keycode: number): void {
    if (this.spareUsed.has(keycode)) this.spareUsed.set(keycode, performance.now());
  }

  /** The least recently used spare keycode not held down, and how long until it may be rebound. */
  private pickSpare(): { keycode: number; waitMs: number } | undefined {
    const inUse = new Set(this.held.values());
    let best: [number, number] | undefined;
    for (const [kc, at] of this.spareUsed) if (!inUse.has(kc) && (!best || at < best[1])) best = [kc, at];
    if (!best) return undefined;
    return { keycode: best[0], waitMs: Math.ceil(Math.max(0, best[1] + REBIND_AFTER_MS - performance.now())) };
  }

  /**
   * Runs `op` now, or after the ops queued before it. The queue only fills while a rebind
   * waits (ChangeKeyboardMapping: every client gets MappingNotify and re-reads the map).
   */
  private enqueue(op: Op): void {
    if (!this.usable) return;
    if (this.queue.length >= MAX_QUEUED) {
      this.logger.warn('input queue full: dropping input');
      return;
    }
    this.queue.push(op);
    this.drain();
  }

  private drain(): void {
    if (this.queueTimer) return;
    while (this.queue.length > 0 && this.usable) {
      const wait = this.queue[0]!();
      if (wait > 0) {
        this.queueTimer = setTimeout(() => {
          this.queueTimer = undefined;
          this.drain();
        }, wait);
        return;
      }
      this.queue.shift();
    }
  }

  /** Drops input still waiting (it belonged to whoever is leaving) and lifts everything held. */
  releaseAll(): void {
    this.dropQueued();
    if (this.usable) this.liftAll();
  }

  private dropQueued(): void {
    clearTimeout(this.queueTimer);
    this.queueTimer = undefined;
    this.queue.length = 0;
  }

  private liftAll(): void {
    const t = this.xtest;
    for (const keycode of new Set(this.held.values())) t.FakeInput(t.KeyRelease, keycode, 0, 0, 0, 0);
    this.held.clear();
    for (let bit = 0; bit < 8; bit++) {
      if (this.buttons & (1 << bit)) t.FakeInput(t.ButtonRelease, bit + 1, 0, 0, 0, 0);
    }
    this.buttons = 0;
  }

  setClipboard(text: string): void {
    if (text.length > MAX_CLIPBOARD_CHARS) {
      this.logger.warn('clipboard text truncated', { chars: text.length });
      text = text.slice(0, MAX_CLIPBOARD_CHARS);
    }
    // CurrentTime rather than a server timestamp: the owner change then reaches the server
    // before any key event sent after it (a Ctrl+V right after must find us as the owner).
    this.enqueue(() => {
      for (const selection of [this.atoms.CLIPBOARD, STD_ATOM.PRIMARY]) {
        this.selections.set(selection, text);
        this.conn.client.SetSelectionOwner(this.window, selection, 0);
      }
      return 0;
    });
  }

  onCopy(listener: (text: string) => void): () => void {
    this.copyListeners.add(listener);
    if (!this.copyTimer) {
      this.copyTimer = setInterval(() => this.pollCopy(), COPY_POLL_MS);
      this.copyTimer.unref();
      this.pollCopy();
    }
    return () => {
      this.copyListeners.delete(listener);
      if (this.copyListeners.size === 0) {
        clearInterval(this.copyTimer);
        this.copyTimer = undefined;
        this.lastCopy = undefined;
      }
    };
  }

  /** Asks the CLIPBOARD's owner (unless it is us) for its text (ICCCM 2.4 ConvertSelection). */
  private pollCopy(): void {
    if (!this.usable || performance.now() - this.converting < CONVERT_TIMEOUT_MS) return;
    this.conn.client.GetSelectionOwner(this.atoms.CLIPBOARD, (err, owner) => {
      if (err || !this.usable) return;
      if (owner === 0) return void (this.lastCopy ??= '');
      // Our own selection is what a human pasted: it goes back to nobody.
      if (owner === this.window) return void (this.lastCopy = this.selections.get(this.atoms.CLIPBOARD) ?? this.lastCopy);
      this.converting = performance.now();
      this.conn.client.ConvertSelection(this.window, this.atoms.CLIPBOARD, this.atoms.UTF8_STRING, this.atoms.HANDOFF_COPY, 0);
    });
  }

  /** ICCCM 2.4: the owner put the text on our window's property (or refused: property None). */
  private copyConverted(ev: XEvent): void {
    this.converting = 0;
    if (!ev.property) return;
    this.conn.client.GetProperty(1, this.window, this.atoms.HANDOFF_COPY, 0, 0, MAX_CLIPBOARD_CHARS, (err, prop) => {
      // An INCR transfer (a huge copy) is not followed: not worth a round trip per chunk.
      if (err || !this.usable || prop.type !== this.atoms.UTF8_STRING || !prop.data) return;
      const text = Buffer.from(prop.data).toString('utf8');
      const first = this.lastCopy === undefined;
      if (text === this.lastCopy) return;
      this.lastCopy = text;
      if (!first) for (const l of this.copyListeners) l(text);
    });
  }

  /** ICCCM 2.2 (responsibilities of the selection owner) for SelectionRequest and SelectionClear. */
  private handleEvent(ev: XEvent): void {
    if (ev.name === 'SelectionNotify' && ev.requestor === this.window && ev.selection === this.atoms.CLIPBOARD) {
      this.copyConverted(ev);
      return;
    }
    if (ev.name === 'SelectionClear' && ev.owner === this.window) {
      this.selections.delete(ev.selection); // someone else copied something
      return;
    }
    if (ev.name !== 'SelectionRequest' || ev.owner !== this.window || !this.usable) return;
    const { requestor, selection, target, time } = ev as unknown as Record<string, number>;
    // A property of None comes from obsolete clients: use the target atom as the property.
    const property = ev.property || target;
    const text = this.selections.get(selection!);
    let ok = text !== undefined;
    const c = this.conn.client;
    if (ok) {
      const a = this.atoms;
      if (target === a.TARGETS) {
        c.ChangeProperty(PROP_MODE_REPLACE, requestor!, property, STD_ATOM.ATOM, 32,
          [a.TARGETS, a.UTF8_STRING, STD_ATOM.STRING, a.TEXT]);
      } else if (target === a.UTF8_STRING || target === a.TEXT) {
        // TEXT lets the owner pick the encoding (ICCCM 2.7.1); UTF-8 loses nothing.
        c.ChangeProperty(PROP_MODE_REPLACE, requestor!, property, a.UTF8_STRING, 8, Buffer.from(text!, 'utf8'));
      } else if (target === STD_ATOM.STRING) {
        const latin1 = Buffer.from(text!.replace(/[^\u0000-\u00ff]/gu, '?'), 'latin1');
        c.ChangeProperty(PROP_MODE_REPLACE, requestor!, property, STD_ATOM.STRING, 8, latin1);
      } else {
        ok = false;
      }
    }
    c.SendEvent(requestor!, 0, 0, {
      name: 'SelectionNotify',
      time,
      requestor,
      selection,
      target,
      property: ok ? property : 0,
    });
  }

  /** Lifts everything held, gives the spare keycodes back, closes the connection. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.dropQueued();
      clearInterval(this.copyTimer);
      this.copyListeners.clear();
      if (this.conn.alive) {
        this.liftAll();
        const empty = new Array<number>(this.keymap.keysymsPerKeycode).fill(NO_SYMBOL);
        for (const keycode of this.bound) this.conn.client.ChangeKeyboardMapping(keycode, empty.length, empty);
        this.conn.client.DestroyWindow(this.window);
      }
      this.held.clear();
      this.buttons = 0;
      await this.conn.close();
    })();
    return this.closing;
  }
}
