/**
 * Splits a WebSocket byte stream (RFC 6455 5.2) into frames without re-encoding anything.
 * Frames whose payload is at most `holdLimit` bytes are held until complete and handed over
 * whole (raw bytes plus the unmasked payload), so the relay can look at a small command and
 * decide; every other byte is passed on as it arrives. With holdLimit -1 nothing is held and
 * the splitter only knows where frames end.
 */
export interface FrameSink {
  /** Bytes to forward unchanged. */
  pass(bytes: Buffer): void;
  /** A held frame: forward `raw`, or consume it. */
  frame?(raw: Buffer, payload: Buffer, opcode: number, fin: boolean): void;
}

export class FrameSplitter {
  private readonly header = Buffer.alloc(14);
  private headerLen = 0;
  private need = 2;
  private remaining = 0;
  private held: Buffer | null = null;
  private heldOffset = 0;
  private heldMask: Buffer | null = null;
  private heldPayloadAt = 0;
  private opcode = 0;
  private fin = true;
  /** A close frame went by (RFC 6455 5.5.1): this side started the closing handshake. */
  sawClose = false;

  constructor(
    private readonly holdLimit: number,
    private readonly sink: FrameSink,
  ) {}

  /** True between frames: a frame written now would not split another. */
  get atBoundary(): boolean {
    return this.headerLen === 0 && this.remaining === 0 && this.held === null;
  }

  push(chunk: Buffer): void {
    let i = 0;
    let run = 0; // start of the bytes not yet handed on
    while (i < chunk.length) {
      if (this.held) {
        const n = Math.min(this.held.length - this.heldOffset, chunk.length - i);
        chunk.copy(this.held, this.heldOffset, i, i + n);
        this.heldOffset += n;
        i += n;
        run = i;
        if (this.heldOffset === this.held.length) this.emitHeld();
        continue;
      }
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - i);
        this.remaining -= n;
        i += n;
        continue;
      }
      if (this.headerLen === 0 && i > run) this.sink.pass(chunk.subarray(run, i));
      // Header: 2 bytes, then 0/2/8 bytes of extended length, then 0/4 bytes of mask key.
      this.header[this.headerLen++] = chunk[i++]!;
      run = i;
      if (this.headerLen === 2) {
        const len7 = this.header[1]! & 0x7f;
        const masked = (this.header[1]! & 0x80) !== 0;
        this.need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
      }
      if (this.headerLen >= 2 && this.headerLen === this.need) this.headerDone();
    }
    if (run < chunk.length) this.sink.pass(chunk.subarray(run));
  }

  private headerDone(): void {
    const h = this.header;
    const len7 = h[1]! & 0x7f;
    const masked = (h[1]! & 0x80) !== 0;
    let at = 2;
    let length = len7;
    if (len7 === 126) {
      length = h.readUInt16BE(2);
      at = 4;
    } else if (len7 === 127) {
      length = Number(h.readBigUInt64BE(2));
      at = 10;
    }
    this.opcode = h[0]! & 0x0f;
    this.fin = (h[0]! & 0x80) !== 0;
    if (this.opcode === 0x8) this.sawClose = true;
    const headerBytes = Buffer.from(h.subarray(0, this.need));
    this.headerLen = 0;
    if (length <= this.holdLimit) {
      this.held = Buffer.allocUnsafe(this.need + length);
      headerBytes.copy(this.held);
      this.heldOffset = this.need;
      this.heldPayloadAt = this.need;
      this.heldMask = masked ? Buffer.from(h.subarray(at, at + 4)) : null;
      if (length === 0) this.emitHeld();
    } else {
      this.sink.pass(headerBytes);
      this.remaining = length;
    }
  }

  private emitHeld(): void {
    const raw = this.held!;
    this.held = null;
    const payload = Buffer.from(raw.subarray(this.heldPayloadAt));
    const mask = this.heldMask;
    if (mask) for (let j = 0; j < payload.length; j++) payload[j]! ^= mask[j & 3]!;
    if (this.sink.frame) this.sink.frame(raw, payload, this.opcode, this.fin);
    else this.sink.pass(raw);
  }
}

/** A server-to-client text frame (unmasked), for answers the relay gives itself. */
export function textFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x81, n]) : n < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  if (n >= 126 && n < 65536) {
    head[0] = 0x81;
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else if (n >= 65536) {
    head[0] = 0x81;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, payload]);
}

/** A server-to-client close frame (RFC 6455 5.5.1): unmasked, code + UTF-8 reason <= 123 bytes. */
export function closeFrame(code: number, reason: string): Buffer {
  let text = Buffer.from(reason);
  if (text.length > 123) text = text.subarray(0, 123);
  const frame = Buffer.alloc(4 + text.length);
  frame[0] = 0x88;
  frame[1] = 2 + text.length;
  frame.writeUInt16BE(code, 2);
  text.copy(frame, 4);
  return frame;
}
