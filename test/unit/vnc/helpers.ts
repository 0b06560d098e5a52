import net from 'node:net';
import { VncServer } from '../../../src/liveview/vnc/server.js';
import type { CredentialThrottle } from '../../../src/util/throttle.js';
import { vncAuthResponse } from '../../../src/liveview/vnc/des.js';
import { FakeFrameSource, FakeSession } from './fakes.js';

export function gradient(x: number, y: number): number {
  return (((x * 4) & 0xff) << 16) | (((y * 5) & 0xff) << 8) | ((x + y) & 0xff);
}

export async function startServer(sessions: Array<{ password: string; session: FakeSession }>, throttle?: CredentialThrottle) {
  const failures: string[] = [];
  const details: Array<Record<string, number>> = [];
  const server = new VncServer({
    directory: {
      vncSessions: () => sessions,
      authFailed: (ip, detail) => {
        failures.push(ip);
        details.push(detail);
      },
    },
    throttle,
  });
  const port = await server.listen(0, '127.0.0.1');
  return { server, port, failures, details };
}

export function session(id: string, width = 64, height = 48, colour = gradient) {
  return new FakeSession(id, new FakeFrameSource(width, height, colour));
}

/** Reads exact byte counts from a raw socket. */
export class RawClient {
  readonly socket: net.Socket;
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  closed = false;

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiters.splice(0).forEach((w) => w());
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.waiters.splice(0).forEach((w) => w());
    });
    this.socket.on('error', () => {});
  }

  get available(): number {
    return this.buf.length;
  }

  async read(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.closed) throw new Error(`closed with ${this.buf.length}/${n} bytes`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  async u32(): Promise<number> {
    return (await this.read(4)).readUInt32BE(0);
  }

  untilClosed(): Promise<void> {
    return this.closed ? Promise.resolve() : new Promise((r) => this.socket.once('close', () => r()));
  }

  write(...parts: Buffer[]): void {
    this.socket.write(Buffer.concat(parts));
  }

  /** 3.8 handshake up to and including ServerInit; returns the desktop name. */
  async handshake(password: string, version = 'RFB 003.008\n'): Promise<{ width: number; height: number; name: string }> {
    await this.read(12);
    this.write(Buffer.from(version));
    if (version === 'RFB 003.008\n' || version === 'RFB 003.007\n') {
      const n = (await this.read(1))[0]!;
      await this.read(n);
      this.write(Buffer.of(2));
    } else {
      if ((await this.u32()) !== 2) throw new Error('expected VNC auth');
    }
    const challenge = await this.read(16);
    this.write(vncAuthResponse(password, challenge));
    const result = await this.u32();
    if (result !== 0) throw new Error(`auth result ${result}`);
    this.write(Buffer.of(1));
    const head = await this.read(24);
    const name = (await this.read(head.readUInt32BE(20))).toString();
    return { width: head.readUInt16BE(0), height: head.readUInt16BE(2), name };
  }

  setEncodings(encs: number[]): void {
    const b = Buffer.alloc(4 + 4 * encs.length);
    b[0] = 2;
    b.writeUInt16BE(encs.length, 2);
    encs.forEach((e, i) => b.writeInt32BE(e, 4 + 4 * i));
    this.write(b);
  }

  request(incremental: boolean, x: number, y: number, w: number, h: number): void {
    const b = Buffer.alloc(10);
    b[0] = 3;
    b[1] = incremental ? 1 : 0;
    b.writeUInt16BE(x, 2);
    b.writeUInt16BE(y, 4);
    b.writeUInt16BE(w, 6);
    b.writeUInt16BE(h, 8);
    this.write(b);
  }

  /** Reads a FramebufferUpdate header and each rect header; `body` reads one rect's data. */
  async update(body: (r: { x: number; y: number; w: number; h: number; enc: number }) => Promise<void>) {
    const head = await this.read(4);
    if (head[0] !== 0) throw new Error(`message type ${head[0]}`);
    let count = head.readUInt16BE(2);
    const rects: Array<{ x: number; y: number; w: number; h: number; enc: number }> = [];
    while (count-- > 0) {
      const h = await this.read(12);
      const r = { x: h.readUInt16BE(0), y: h.readUInt16BE(2), w: h.readUInt16BE(4), h: h.readUInt16BE(6), enc: h.readInt32BE(8) };
      if (r.enc === -224) break;
      rects.push(r);
      await body(r);
    }
    return rects;
  }
}
