/** The contract between the display (framebuffer, input) and every live view transport. */

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * Pixels as the X server keeps them at depth 24: 4 bytes per pixel in memory order
 * B, G, R, X; rows of `stride` bytes. `data` is only valid until the next event-loop turn
 * unless the consumer copies what it needs.
 */
export interface FrameView {
  width: number;
  height: number;
  stride: number;
  data: Buffer;
}

/** One consumer's view of a framebuffer: it accumulates its own dirty region. */
export interface FrameSubscriber {
  /** Called (at most once per event-loop turn) when the dirty region becomes non-empty. */
  onDirty(listener: () => void): void;
  /** True when something changed since the last takeDirty(). */
  readonly dirty: boolean;
  /** Returns and clears the accumulated changed region (tile-aligned, merged rects). */
  takeDirty(): Rect[];
  /** The current pixels; the rects just taken are up to date in it. */
  frame(): FrameView;
  /** Marks the whole screen dirty (a new client, a full non-incremental request). */
  invalidate(): void;
  close(): void;
}

export interface FrameSource {
  readonly width: number;
  readonly height: number;
  subscribe(): FrameSubscriber;
  /** The pointer's shape, for viewers that draw the pointer themselves (absent: not known). */
  readonly cursor?: CursorSource;
}

/** The pointer shape the X server shows (XFIXES): premultiplied ARGB, rows top down. */
export interface CursorShape {
  width: number;
  height: number;
  hotX: number;
  hotY: number;
  argb: Uint32Array;
}

export interface CursorSource {
  /** The shape shown now; null while not known yet (or too large to pass on). */
  current(): CursorShape | null;
  /** `listener` runs on each change while subscribed; tracking runs only while someone is. Returns the unsubscribe. */
  onChange(listener: (shape: CursorShape | null) => void): () => void;
}

/** Real X input through XTest. Buttons use the RFB mask: bit 0 = button 1 ... bit 7 = button 8. */
export interface InputSink {
  pointer(x: number, y: number, buttonMask: number): void;
  /** An X keysym (RFC 6143 7.5.4); keysyms without a keycode are bound to a spare one. */
  key(keysym: number, down: boolean): void;
  /** Makes `text` the X clipboard (and primary) selection so Ctrl+V pastes it. */
  setClipboard(text: string): void;
  /** Lifts every held key and button; runs whenever a human detaches. */
  releaseAll(): void;
  /**
   * Text copied inside the session (the X CLIPBOARD selection of another client than us):
   * `listener` gets each new copy while subscribed. Returns the unsubscribe.
   */
  onCopy?(listener: (text: string) => void): () => void;
}
