/**
 * A small RFB 3.8 client on a raw socket (RFC 6143), for what rfb2 cannot do: any encoding
 * list, exact byte counts per update, None or VNC authentication (x11vnc -nopw offers None),
 * and clients that misbehave on purpose. It decodes Raw pixels; other encodings are parsed
 * only far enough to know their length.
 */
import net from 'node:net';
import { vncAuthResponse } from '../../src/liveview/vnc/des.js';

export const Enc = {
  Raw: 0,
  CopyRect: 1,
  Hextile: 5,
  Tight: 7,
  ZRLE: 16,
  DesktopSize: -223,
  LastRect: -224,
  DesktopName: -307,
  ExtendedDesktopSize: -308,
  Cursor: -239,
  Fence: -312,
  ContinuousUpdates: -313,
  /** Tight JPEG quality level n is QualityLevel0 + n. */
  QualityLevel0: -32,
  CompressLevel0: -256,
} as const;

export interface UpdateRect {
  x: number;
  y: number;
  w: number;
  h: number;
  enc: number;
  /** Bytes after the rectangle header. */
  bytes: number;
}

export interface Update {
  rects: UpdateRect[];
  /** Every byte of the FramebufferUpdate message, headers included. */
  bytes: number;
}

export class RawRfb {
  width = 0;
  height = 0;
  name = '';
  /** What Raw rectangles showed, as 0xRRGGBB (after setPixelFormat32, which connect() sends). */
  pixels = new Uint32Array(0);
  /** Server messages other than updates, in order: EndOfContinuousUpdates and ServerFence. */
  controls: Array<{ type: 'endOfContinuousUpdates' } | { type: 'fence'; flags: number; payload: Buffer }> = [];
  /** The last Cursor shape: hotspot, size, and its pixel and mask bytes. */
  cursor: { x: number; y: number; w: number; h: number; pixels: Buffer; mask: Buffer } | null = null;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private ended: Error | null = null;
  readonly closed: Promise<void>;

  constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.buffered += d.length;
      this.pump();
    });
    socket.on('error', () => {});
    this.closed = new Promise((r) => socket.once('close', () => r()));
    void this.closed.then(() => {
      this.ended = new Error('connection closed');
      this.pump();
    });
  }

  static open(port: number, host = '127.0.0.1'): Promise<RawRfb> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, host);
      s.once('connect', () => resolve(new RawRfb(s)));
      s.once('error', reject);
    });
  }

  /** Opens, authenticates (VNC auth with `password`, or None), sends ClientInit and a 32-bit pixel format. */
  static async connect(port: number, password: string | null, host = '127.0.0.1'): Promise<RawRfb> {
    const c = await RawRfb.open(port, host);
    try {
      await c.handshake(password);
    } catch (e) {
      c.destroy();
      throw e;
    }
    return c;
  }

  async handshake(password: string | null): Promise<void> {
    const version = (await this.read(12)).toString('latin1');
    if (!/^RFB 003\.00[78]\n$/.test(version)) throw new Error(`server speaks ${JSON.stringify(version)}`);
    this.write(Buffer.from('RFB 003.008\n', 'latin1'));
    const n = (await this.read(1))[0]!;
    if (n === 0) throw new Error((await this.read((await this.read(4)).readUInt32BE(0))).toString());
    const types = [...(await this.read(n))];
    const type = password !== null && types.includes(2) ? 2 : types.includes(1) ? 1 : -1;
    if (type < 0) throw new Error(`no usable security type in ${types}`);
    this.write(Buffer.of(type));
    if (type === 2) this.write(vncAuthResponse(password!, await this.read(16)));
    if ((await this.read(4)).readUInt32BE(0) !== 0) {
      throw new Error((await this.read((await this.read(4)).readUInt32BE(0))).toString());
    }
    this.write(Buffer.of(1)); // shared
    const init = await this.read(24);
    this.width = init.readUInt16BE(0);
    this.height = init.readUInt16BE(2);
    this.name = (await this.read(init.readUInt32BE(20))).toString();
    this.pixels = new Uint32Array(this.width * this.height);
    this.setPixelFormat32();
  }

  /** 32 bpp, depth 24, little-endian, red at bit 16 (what ServerInit usually says anyway). */
  setPixelFormat32(): void {
    const b = Buffer.alloc(20);
    b[0] = 0;
    b.set([32, 24, 0, 1], 4);
    b.writeUInt16BE(255, 8);
    b.writeUInt16BE(255, 10);
    b.writeUInt16BE(255, 12);
    b.set([16, 8, 0], 14);
    this.write(b);
  }

  setEncodings(encodings: number[]): void {
    const b = Buffer.alloc(4 + 4 * encodings.length);
    b[0] = 2;
    b.writeUInt16BE(encodings.length, 2);
    encodings.forEach((e, i) => b.writeInt32BE(e, 4 + 4 * i));
    this.write(b);
  }

  request(incremental: boolean, x = 0, y = 0, w = this.width, h = this.height): void {
    const b = Buffer.alloc(10);
    b[0] = 3;
    b[1] = incremental ? 1 : 0;
    b.writeUInt16BE(x, 2);
    b.writeUInt16BE(y, 4);
    b.writeUInt16BE(w, 6);
    b.writeUInt16BE(h, 8);
    this.write(b);
  }

  /** rfbproto EnableContinuousUpdates (message 150). */
  continuousUpdates(enable: boolean, x = 0, y = 0, w = this.width, h = this.height): void {
    const b = Buffer.alloc(10);
    b[0] = 150;
    b[1] = enable ? 1 : 0;
    b.writeUInt16BE(x, 2);
    b.writeUInt16BE(y, 4);
    b.writeUInt16BE(w, 6);
    b.writeUInt16BE(h, 8);
    this.write(b);
  }

  /** rfbproto ClientFence (message 248); `length` may lie about the payload on purpose. */
  fence(flags: number, payload: Buffer, length = payload.length): void {
    const b = Buffer.alloc(9);
    b[0] = 248;
    b.writeUInt32BE(flags >>> 0, 4);
    b[8] = length;
    this.write(Buffer.concat([b, payload]));
  }

  pointer(x: number, y: number, mask: number): void {
    const b = Buffer.alloc(6);
    b[0] = 5;
    b[1] = mask;
    b.writeUInt16BE(x, 2);
    b.writeUInt16BE(y, 4);
    this.write(b);
  }

  write(b: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(b);
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Reads server messages until a FramebufferUpdate and returns it (others are skipped). */
  async readUpdate(): Promise<Update> {
    for (;;) {
      const update = await this.readMessage();
      if (update) return update;
    }
  }

  /** Reads one server message: an update is returned, others are recorded (controls) or skipped. */
  async readMessage(): Promise<Update | null> {
    {
      const type = (await this.read(1))[0]!;
      if (type === 0) return this.readUpdateBody();
      if (type === 1) {
        const h = await this.read(5);
        await this.read(h.readUInt16BE(3) * 6);
      } else if (type === 2) {
        // Bell
      } else if (type === 3) {
        await this.read((await this.read(7)).readUInt32BE(3));
      } else if (type === 150) {
        this.controls.push({ type: 'endOfContinuousUpdates' });
      } else if (type === 248) {
        const h = await this.read(8);
        this.controls.push({ type: 'fence', flags: h.readUInt32BE(3), payload: Buffer.from(await this.read(h[7]!)) });
      } else throw new Error(`unknown server message ${type}`);
      return null;
    }
  }

  private async readUpdateBody(): Promise<Update> {
    const count = (await this.read(3)).readUInt16BE(1);
    const rects: UpdateRect[] = [];
    let bytes = 4;
    for (let i = 0; i < count; i++) {
      const h = await this.read(12);
      const r = { x: h.readUInt16BE(0), y: h.readUInt16BE(2), w: h.readUInt16BE(4), h: h.readUInt16BE(6), enc: h.readInt32BE(8), bytes: 0 };
      bytes += 12;
      if (r.enc === Enc.LastRect) break;
      r.bytes = await this.readRectBody(r);
      bytes += r.bytes;
      rects.push(r);
    }
    return { rects, bytes };
  }

  private async readRectBody(r: UpdateRect): Promise<number> {
    switch (r.enc) {
      case Enc.Raw: {
        const data = await this.read(r.w * r.h * 4);
        for (let row = 0; row < r.h; row++) {
          const base = (r.y + row) * this.width + r.x;
          for (let col = 0; col < r.w; col++) this.pixels[base + col] = data.readUInt32LE((row * r.w + col) * 4) & 0xffffff;
        }
        return data.length;
      }
      case Enc.CopyRect: {
        const src = await this.read(4);
        const sx = src.readUInt16BE(0);
        const sy = src.readUInt16BE(2);
        const copy = new Uint32Array(r.w * r.h);
        for (let row = 0; row < r.h; row++) copy.set(this.pixels.subarray((sy + row) * this.width + sx, (sy + row) * this.width + sx + r.w), row * r.w);
        for (let row = 0; row < r.h; row++) this.pixels.set(copy.subarray(row * r.w, (row + 1) * r.w), (r.y + row) * this.width + r.x);
        return 4;
      }
      case Enc.ZRLE:
        return 4 + (await this.read((await this.read(4)).readUInt32BE(0))).length;
      case Enc.Tight:
        return this.readTight(r);
      case Enc.DesktopSize:
        this.width = r.w;
        this.height = r.h;
        this.pixels = new Uint32Array(r.w * r.h);
        return 0;
      case Enc.ExtendedDesktopSize: {
        const head = await this.read(4);
        await this.read(16 * head[0]!);
        return 4 + 16 * head[0]!;
      }
      case Enc.Cursor: {
        const pixels = Buffer.from(await this.read(r.w * r.h * 4));
        const mask = Buffer.from(await this.read(Math.ceil(r.w / 8) * r.h));
        this.cursor = { x: r.x, y: r.y, w: r.w, h: r.h, pixels, mask };
        return pixels.length + mask.length;
      }
      case Enc.DesktopName: {
        const len = (await this.read(4)).readUInt32BE(0);
        this.name = (await this.read(len)).toString();
        return 4 + len;
      }
      default:
        throw new Error(`cannot parse rect encoding ${r.enc}`);
    }
  }

  /** rfbproto Tight, 24-bit TPIXELs (the 32 bpp depth 24 format this client always asks for). */
  private async readTight(r: UpdateRect): Promise<number> {
    const ctl = (await this.read(1))[0]!;
    let n = 1;
    const kind = ctl >> 4;
    if (kind === 8) return n + (await this.read(3)).length; // fill
    if (kind === 9) return n + (await this.compactData()); // JPEG
    if (kind > 9) throw new Error(`tight control byte ${ctl.toString(16)}`);
    let filter = 0;
    if (ctl & 0x40) {
      filter = (await this.read(1))[0]!;
      n++;
    }
    let size = r.w * r.h * 3;
    if (filter === 1) {
      const colours = (await this.read(1))[0]! + 1;
      await this.read(colours * 3);
      n += 1 + colours * 3;
      size = colours === 2 ? Math.ceil(r.w / 8) * r.h : r.w * r.h;
    } else if (filter !== 0 && filter !== 2) throw new Error(`tight filter ${filter}`);
    if (size < 12) return n + (await this.read(size)).length;
    return n + (await this.compactData());
  }

  private async compactData(): Promise<number> {
    let len = 0;
    let head = 0;
    for (let i = 0; i < 3; i++) {
      const b = (await this.read(1))[0]!;
      head++;
      len |= (i < 2 ? b & 0x7f : b) << (7 * i);
      if (i < 2 && !(b & 0x80)) break;
    }
    return head + (await this.read(len)).length;
  }

  read(n: number): Promise<Buffer> {
    if (this.waiter) throw new Error('one read at a time');
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.pump();
    });
  }

  private pump(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.buffered >= w.n) {
      this.waiter = null;
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      const out = all.subarray(0, w.n);
      const rest = all.subarray(w.n);
      this.chunks = rest.length ? [rest] : [];
      this.buffered = rest.length;
      w.resolve(out);
    } else if (this.ended) {
      this.waiter = null;
      w.reject(this.ended);
    }
  }
}
