/**
 * Walks a WebSocket byte stream (RFC 6455 5.2) to know where frames begin and end, without
 * copying payloads. The relay forwards bytes as they arrive and uses this only to see frame
 * boundaries (to inject a close frame cleanly) and, for small text frames, their content.
 */
export class FrameTracker {
  private header = Buffer.alloc(14);
  private headerLen = 0;
  private need = 2;
  private remaining = 0;
  private masked = false;
  private mask = Buffer.alloc(4);
  private inspect: Buffer | null = null;
  private inspectOffset = 0;
  /** A close frame went by (RFC 6455 5.5.1): this side started the closing handshake. */
  sawClose = false;

  constructor(
    /** Text frames up to this size are handed, unmasked, to `onText`. */
    private readonly inspectLimit: number,
    private readonly onText?: (payload: Buffer) => void,
  ) {}

  /** True between frames: a frame written now would not split another. */
  get atBoundary(): boolean {
    return this.headerLen === 0 && this.remaining === 0;
  }

  push(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - i);
        if (this.inspect) {
          chunk.copy(this.inspect, this.inspectOffset, i, i + n);
          this.inspectOffset += n;
        }
        this.remaining -= n;
        i += n;
        if (this.remaining === 0) this.frameDone();
        continue;
      }
      // Header: 2 bytes, then 0/2/8 bytes of length, then 0/4 bytes of mask key.
      this.header[this.headerLen++] = chunk[i++]!;
      if (this.headerLen === 2) {
        const len7 = this.header[1]! & 0x7f;
        this.masked = (this.header[1]! & 0x80) !== 0;
        this.need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (this.masked ? 4 : 0);
      }
      if (this.headerLen >= 2 && this.headerLen === this.need) this.headerDone();
    }
  }

  private headerDone(): void {
    const h = this.header;
    const len7 = h[1]! & 0x7f;
    let offset = 2;
    let length = len7;
    if (len7 === 126) {
      length = h.readUInt16BE(2);
      offset = 4;
    } else if (len7 === 127) {
      // Lengths beyond 2^53 cannot be real; treat them as "until the socket ends".
      length = Number(h.readBigUInt64BE(2));
      offset = 10;
    }
    if (this.masked) h.copy(this.mask, 0, offset, offset + 4);
    this.headerLen = 0;
    this.remaining = length;
    const opcode = h[0]! & 0x0f;
    const fin = (h[0]! & 0x80) !== 0;
    if (opcode === 0x8) this.sawClose = true;
    this.inspect = this.onText && fin && opcode === 1 && length <= this.inspectLimit ? Buffer.allocUnsafe(length) : null;
    this.inspectOffset = 0;
    if (length === 0) this.frameDone();
  }

  private frameDone(): void {
    const payload = this.inspect;
    this.inspect = null;
    if (!payload) return;
    if (this.masked) for (let j = 0; j < payload.length; j++) payload[j]! ^= this.mask[j & 3]!;
    this.onText?.(payload);
  }
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
