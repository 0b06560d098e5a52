import type { FrameSource, InputSink } from '../display/types.js';

/** X keysyms of the paste shortcut. */
const XK_CONTROL_L = 0xffe3;
const XK_V = 0x0076;
/** RFB button-mask bits of the wheel (RFC 6143 7.5.5): X buttons 4 up, 5 down, 6 left, 7 right. */
const WHEEL_UP = 1 << 3;
const WHEEL_DOWN = 1 << 4;
const WHEEL_LEFT = 1 << 5;
const WHEEL_RIGHT = 1 << 6;
const WHEEL_BITS = WHEEL_UP | WHEEL_DOWN | WHEEL_LEFT | WHEEL_RIGHT;

/**
 * One browser viewer's input, as the screencast and WebRTC viewers send it, turned into X
 * input: coordinates clamped to the screen, wheel notches as button 4-7 clicks that keep the
 * held buttons held, paste as clipboard + Ctrl+V. The caller checks control first.
 */
export class ViewerInput {
  /** Buttons this viewer holds, so a wheel notch during a drag keeps them held. */
  private buttons = 0;

  constructor(
    private readonly input: InputSink,
    private readonly screen: FrameSource,
  ) {}

  pointer(x: number, y: number, buttons: number): void {
    this.buttons = buttons & ~WHEEL_BITS;
    this.input.pointer(this.clampX(x), this.clampY(y), buttons);
  }

  /** `dx`/`dy` in notches; the sign is the direction (dy > 0 scrolls down). */
  wheel(x: number, y: number, dx: number, dy: number): void {
    const [cx, cy] = [this.clampX(x), this.clampY(y)];
    const notch = (bit: number, n: number) => {
      for (let i = 0; i < n; i++) {
        this.input.pointer(cx, cy, this.buttons | bit);
        this.input.pointer(cx, cy, this.buttons);
      }
    };
    notch(dy > 0 ? WHEEL_DOWN : WHEEL_UP, Math.round(Math.abs(dy)));
    notch(dx > 0 ? WHEEL_RIGHT : WHEEL_LEFT, Math.round(Math.abs(dx)));
  }

  /** Control was lost: whatever this viewer held is no longer held (the session releases it). */
  reset(): void {
    this.buttons = 0;
  }

  key(keysym: number, down: boolean): void {
    this.input.key(keysym, down);
  }

  paste(text: string): void {
    this.input.setClipboard(text);
    this.input.key(XK_CONTROL_L, true);
    this.input.key(XK_V, true);
    this.input.key(XK_V, false);
    this.input.key(XK_CONTROL_L, false);
  }

  private clampX(x: number): number {
    return Math.max(0, Math.min(this.screen.width - 1, Math.round(x)));
  }

  private clampY(y: number): number {
    return Math.max(0, Math.min(this.screen.height - 1, Math.round(y)));
  }
}
