import type { Rect } from '../../display/types.js';
import { ClientMessage, MAX_FENCE_PAYLOAD } from './protocol.js';
import { readPixelFormat, type PixelFormat } from './pixel-format.js';

/** Everything a client sends, handshake included, in wire order. */
export type ClientMsg =
  | { type: 'version'; minor: 3 | 7 | 8 }
  | { type: 'securityType'; securityType: number }
  | { type: 'authResponse'; response: Buffer }
  | { type: 'clientInit'; shared: boolean }
  | { type: 'setPixelFormat'; format: PixelFormat }
  | { type: 'setEncodings'; encodings: number[] }
  | { type: 'updateRequest'; incremental: boolean; rect: Rect }
  | { type: 'key'; down: boolean; keysym: number }
  | { type: 'pointer'; buttonMask: number; x: number; y: number }
  | { type: 'cutText'; text: string }
  | { type: 'setDesktopSize'; width: number; height: number }
  | { type: 'enableContinuousUpdates'; enable: boolean; rect: Rect }
  | { type: 'fence'; flags: number; payload: Buffer };

export const MAX_ENCODINGS = 1024;
export const MAX_CUT_TEXT = 1024 * 1024;

const enum State {
  Version,
  SecurityType,
  AuthResponse,
  ClientInit,
  MessageType,
  SetPixelFormat,
  SetEncodingsHead,
  SetEncodingsBody,
  UpdateRequest,
  KeyEvent,
  PointerEvent,
  CutTextHead,
  CutTextBody,
  DesktopSizeHead,
  DesktopSizeScreens,
  ContinuousUpdates,
  FenceHead,
  FenceBody,
  Dead,
}

/** Bytes each message needs after its type byte (RFC 6143 7.5, rfbproto SetDesktopSize). */
const BODY: Record<number, [State, number]> = {
  [ClientMessage.SetPixelFormat]: [State.SetPixelFormat, 19],
  [ClientMessage.SetEncodings]: [State.SetEncodingsHead, 3],
  [ClientMessage.FramebufferUpdateRequest]: [State.UpdateRequest, 9],
  [ClientMessage.KeyEvent]: [State.KeyEvent, 7],
  [ClientMessage.PointerEvent]: [State.PointerEvent, 5],
  [ClientMessage.ClientCutText]: [State.CutTextHead, 7],
  [ClientMessage.SetDesktopSize]: [State.DesktopSizeHead, 7],
  [ClientMessage.EnableContinuousUpdates]: [State.ContinuousUpdates, 9],
  [ClientMessage.Fence]: [State.FenceHead, 8],
};

/**
 * The client side of RFB as an explicit state machine, in the style of ws's receiver: bytes
 * arrive in any split, each state waits for the fixed number of bytes it needs, every length
 * field has a limit, and any violation goes through the one fail() path, after which the parser
 * ignores all input.
 */
export class RfbParser {
  private buffers: Buffer[] = [];
  private buffered = 0;
  private state = State.Version;
  private need = 12;
  private desktopSize = { width: 0, height: 0 };
  private fenceFlags = 0;

  constructor(
    private readonly onMessage: (msg: ClientMsg) => void,
    private readonly onError: (reason: string) => void,
  ) {}

  push(chunk: Buffer): void {
    if (!this.running()) return;
    this.buffers.push(chunk);
    this.buffered += chunk.length;
    while (this.running() && this.buffered >= this.need) this.step(this.consume(this.need));
  }

  /** Stops parsing for good (the connection is closing). */
  stop(): void {
    this.state = State.Dead;
    this.buffers = [];
    this.buffered = 0;
  }

  private step(b: Buffer): void {
    switch (this.state) {
      case State.Version: {
        // RFC 6143 7.1.1: "RFB xxx.yyy\n". 3.7 and 3.8 are spoken as such; anything else
        // (3.3, 3.5, Apple's 3.889, 4.x) as 3.3, which every client understands.
        const m = /^RFB (\d{3})\.(\d{3})\n$/.exec(b.toString('latin1'));
        if (!m) return this.fail('bad protocol version');
        const minor = m[1] === '003' && (m[2] === '007' || m[2] === '008') ? (Number(m[2]) as 7 | 8) : 3;
        this.onMessage({ type: 'version', minor });
        return minor === 3 ? this.next(State.AuthResponse, 16) : this.next(State.SecurityType, 1);
      }
      case State.SecurityType:
        this.onMessage({ type: 'securityType', securityType: b[0]! });
        return this.next(State.AuthResponse, 16);
      case State.AuthResponse:
        this.onMessage({ type: 'authResponse', response: Buffer.from(b) });
        return this.next(State.ClientInit, 1);
      case State.ClientInit:
        this.onMessage({ type: 'clientInit', shared: b[0] !== 0 });
        return this.next(State.MessageType, 1);
      case State.MessageType: {
        const body = BODY[b[0]!];
        if (!body) return this.fail(`unknown message type ${b[0]}`);
        return this.next(...body);
      }
      case State.SetPixelFormat:
        this.onMessage({ type: 'setPixelFormat', format: readPixelFormat(b, 3) });
        return this.message();
      case State.SetEncodingsHead: {
        const count = b.readUInt16BE(1);
        if (count > MAX_ENCODINGS) return this.fail(`SetEncodings with ${count} encodings`);
        return this.next(State.SetEncodingsBody, 4 * count);
      }
      case State.SetEncodingsBody: {
        const encodings: number[] = [];
        for (let off = 0; off < b.length; off += 4) encodings.push(b.readInt32BE(off));
        this.onMessage({ type: 'setEncodings', encodings });
        return this.message();
      }
      case State.UpdateRequest:
        this.onMessage({
          type: 'updateRequest',
          incremental: b[0] !== 0,
          rect: { x: b.readUInt16BE(1), y: b.readUInt16BE(3), width: b.readUInt16BE(5), height: b.readUInt16BE(7) },
        });
        return this.message();
      case State.KeyEvent:
        this.onMessage({ type: 'key', down: b[0] !== 0, keysym: b.readUInt32BE(3) });
        return this.message();
      case State.PointerEvent:
        this.onMessage({ type: 'pointer', buttonMask: b[0]!, x: b.readUInt16BE(1), y: b.readUInt16BE(3) });
        return this.message();
      case State.CutTextHead: {
        const length = b.readUInt32BE(3);
        if (length > MAX_CUT_TEXT) return this.fail(`ClientCutText of ${length} bytes`);
        return this.next(State.CutTextBody, length);
      }
      case State.CutTextBody:
        // RFC 6143 7.5.6: the text is ISO 8859-1.
        this.onMessage({ type: 'cutText', text: b.toString('latin1') });
        return this.message();
      case State.DesktopSizeHead:
        this.desktopSize = { width: b.readUInt16BE(1), height: b.readUInt16BE(3) };
        return this.next(State.DesktopSizeScreens, 16 * b[5]!);
      case State.DesktopSizeScreens:
        // The screen layout is irrelevant: every request is refused (we own the size).
        this.onMessage({ type: 'setDesktopSize', ...this.desktopSize });
        return this.message();
      case State.ContinuousUpdates:
        this.onMessage({
          type: 'enableContinuousUpdates',
          enable: b[0] !== 0,
          rect: { x: b.readUInt16BE(1), y: b.readUInt16BE(3), width: b.readUInt16BE(5), height: b.readUInt16BE(7) },
        });
        return this.message();
      case State.FenceHead: {
        // rfbproto ClientFence: 3 padding bytes, U32 flags, U8 length, then the payload.
        const length = b[7]!;
        if (length > MAX_FENCE_PAYLOAD) return this.fail(`Fence with ${length} payload bytes`);
        this.fenceFlags = b.readUInt32BE(3);
        return this.next(State.FenceBody, length);
      }
      case State.FenceBody:
        this.onMessage({ type: 'fence', flags: this.fenceFlags, payload: Buffer.from(b) });
        return this.message();
    }
  }

  private running(): boolean {
    return this.state !== State.Dead;
  }

  private next(state: State, need: number): void {
    if (!this.running()) return; // onMessage may have stopped us
    this.state = state;
    this.need = need;
  }

  private message(): void {
    this.next(State.MessageType, 1);
  }

  private fail(reason: string): void {
    this.stop();
    this.onError(reason);
  }

  private consume(n: number): Buffer {
    this.buffered -= n;
    const first = this.buffers[0];
    if (n === 0 || !first) return Buffer.alloc(0);
    if (n <= first.length) {
      this.buffers[0] = first.subarray(n);
      if (n === first.length) this.buffers.shift();
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    for (let off = 0; off < n; ) {
      const b = this.buffers[0]!;
      const take = Math.min(b.length, n - off);
      b.copy(out, off, 0, take);
      off += take;
      if (take === b.length) this.buffers.shift();
      else this.buffers[0] = b.subarray(take);
    }
    return out;
  }
}
