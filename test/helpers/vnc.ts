/**
 * VNC helpers for the integration tests: a free port, an rfb2 viewer that keeps its own copy of
 * the framebuffer, vncsnapshot runs, and colour checks on decoded pictures.
 */
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import * as rfb from 'rfb2';
import sharp from 'sharp';
import { waitFor } from './client.js';
import { vncAuthResponse } from '../../src/liveview/vnc/des.js';

/** A TCP port nobody listens on right now (bound on port 0, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** X keysyms the tests use (X11 keysymdef.h). */
export const XK = {
  Shift_L: 0xffe1,
  Return: 0xff0d,
  Down: 0xff54,
  Escape: 0xff1b,
} as const;

interface Rfb2Rect {
  x: number;
  y: number;
  width: number;
  height: number;
  encoding: number;
  buffer?: Buffer;
}

type Rfb2Client = rfb.RfbClient & {
  title: string;
  autoUpdate: boolean;
  stream: net.Socket;
  pointerEvent(x: number, y: number, mask: number): void;
  keyEvent(keysym: number, down: number): void;
  /** ClientCutText: the human's clipboard. */
  updateClipboard(text: string): void;
};

/**
 * rfb2 (a real third-party client) with Raw only (its Hextile decoder is broken), asking for
 * incremental updates after each one, and mirroring what it received as 0xRRGGBB pixels.
 */
export class RfbViewer {
  width = 0;
  height = 0;
  title = '';
  /** Rectangles received so far. */
  rects = 0;
  /** Rectangles covering the whole screen received so far. */
  private fullRects = 0;
  private pixels = new Uint32Array(0);
  private covered = new Uint8Array(0);
  private coveredCount = 0;
  private closedP: Promise<void>;

  private constructor(readonly client: Rfb2Client) {
    this.closedP = new Promise((r) => (client.stream.destroyed ? r() : client.stream.once('close', () => r())));
  }

  /** Connects and authenticates; rejects with the server's reason (a string) when refused. */
  static connect(port: number, password: string): Promise<RfbViewer> {
    const client = rfb.createConnection({ host: '127.0.0.1', port, password, encodings: [rfb.encodings.raw] }) as Rfb2Client;
    return new Promise<RfbViewer>((resolve, reject) => {
      client.once('error', (e: unknown) => {
        client.stream.destroy();
        reject(e);
      });
      client.stream.once('close', () => reject(new Error('connection closed before it was set up')));
      client.once('connect', () => {
        const v = new RfbViewer(client);
        v.width = client.width;
        v.height = client.height;
        v.title = client.title;
        v.pixels = new Uint32Array(v.width * v.height);
        v.covered = new Uint8Array(v.width * v.height);
        client.autoUpdate = true;
        client.on('rect', (r: Rfb2Rect) => v.onRect(r));
        client.on('error', () => client.stream.destroy());
        resolve(v);
      });
    });
  }

  private onRect(r: Rfb2Rect): void {
    this.rects++;
    if (r.encoding !== rfb.encodings.raw || !r.buffer) return;
    if (r.x === 0 && r.y === 0 && r.width === this.width && r.height === this.height) this.fullRects++;
    for (let row = 0; row < r.height; row++) {
      for (let col = 0; col < r.width; col++) {
        const i = (r.y + row) * this.width + r.x + col;
        // rfb2 keeps the server's pixel format: 32 bpp little-endian, red at bit 16.
        this.pixels[i] = r.buffer.readUInt32LE((row * r.width + col) * 4) & 0xffffff;
        if (!this.covered[i]) {
          this.covered[i] = 1;
          this.coveredCount++;
        }
      }
    }
  }

  /** 0xRRGGBB at (x, y) as last received. */
  pixel(x: number, y: number): number {
    return this.pixels[y * this.width + x]!;
  }

  /** Resolves once every pixel of the screen has been received at least once. */
  async fullFrame(): Promise<void> {
    await waitFor('a full VNC frame', () => this.coveredCount === this.width * this.height, 20_000, 20);
  }

  /** Waits until the received picture satisfies `check` (updates keep flowing meanwhile). */
  async until(what: string, check: (v: RfbViewer) => boolean, timeoutMs = 20_000): Promise<void> {
    await waitFor(what, () => check(this), timeoutMs, 20);
  }

  /** Asks for the whole screen again, whatever changed (RFC 6143 7.5.3). */
  refresh(): void {
    this.client.requestUpdate(false, 0, 0, this.width, this.height);
  }

  /**
   * A barrier: asks for the whole screen and waits for it. The server handles a client's
   * messages in order, so everything sent before (input included) has been dealt with.
   */
  async sync(): Promise<void> {
    const before = this.fullRects;
    this.refresh();
    await waitFor('the answer to a full refresh', () => this.fullRects > before, 20_000, 10);
  }

  pointer(x: number, y: number, mask: number): void {
    this.client.pointerEvent(x, y, mask);
  }

  /** Move, press and release button 1 at (x, y). */
  click(x: number, y: number): void {
    this.pointer(x, y, 0);
    this.pointer(x, y, 1);
    this.pointer(x, y, 0);
  }

  key(keysym: number, down: boolean): void {
    this.client.keyEvent(keysym, down ? 1 : 0);
  }

  tap(keysym: number): void {
    this.key(keysym, true);
    this.key(keysym, false);
  }

  /**
   * Types `text` the way a VNC viewer on a US keyboard does: the keysym of each character
   * (Latin-1 = its code point, other Unicode = 0x01000000 | code point), with Shift held
   * around capitals and shifted punctuation.
   */
  type(text: string): void {
    for (const ch of text) {
      const cp = ch.codePointAt(0)!;
      const keysym = cp < 0x100 ? cp : 0x01000000 | cp;
      const shifted = /[A-Z!@#$%^&*()_+{}|:"<>?~]/.test(ch);
      if (shifted) this.key(XK.Shift_L, true);
      this.tap(keysym);
      if (shifted) this.key(XK.Shift_L, false);
    }
  }

  get closed(): boolean {
    return this.client.stream.destroyed;
  }

  /** Resolves when the server (or we) closed the connection. */
  whenClosed(): Promise<void> {
    return this.closedP;
  }

  /** Idempotent: ends the connection and waits until the socket is gone. */
  async close(): Promise<void> {
    const s = this.client.stream;
    if (!s.destroyed) {
      s.end();
      const kill = setTimeout(() => s.destroy(), 1000);
      await this.closedP;
      clearTimeout(kill);
    }
  }
}

/** Channel-wise distance between two 0xRRGGBB colours (the largest of the three). */
export function colourDistance(a: number, b: number): number {
  return Math.max(Math.abs(((a >> 16) & 255) - ((b >> 16) & 255)), Math.abs(((a >> 8) & 255) - ((b >> 8) & 255)), Math.abs((a & 255) - (b & 255)));
}

export const hex = (c: number) => `#${c.toString(16).padStart(6, '0')}`;

/** A decoded picture file (JPEG, PNG) as width, height and an average-colour sampler. */
export async function readPicture(path: string): Promise<{ width: number; height: number; mean(x: number, y: number, w: number, h: number): number }> {
  const { data, info } = await sharp(path).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return {
    width: info.width,
    height: info.height,
    mean(x, y, w, h) {
      const sum = [0, 0, 0];
      for (let yy = y; yy < y + h; yy++)
        for (let xx = x; xx < x + w; xx++) for (let c = 0; c < 3; c++) sum[c]! += data[(yy * info.width + xx) * info.channels + c]!;
      const n = w * h;
      return (Math.round(sum[0]! / n) << 16) | (Math.round(sum[1]! / n) << 8) | Math.round(sum[2]! / n);
    },
  };
}

/**
 * The fixed key VNC uses to obfuscate stored passwords (vncauth.c `fixedkey`, in d3des bit
 * order, which vncAuthResponse reverses like the server does).
 */
const VNC_PASSWD_KEY = Buffer.from([23, 82, 107, 6, 35, 78, 88, 7]);

/**
 * An obfuscated VNC password file as `vncpasswd -f` writes it (what vncsnapshot and vncviewer
 * `-passwd` read): the password's first 8 bytes, zero padded, DES-encrypted with the fixed key.
 * Written here so the tests need no vncpasswd binary.
 */
export function vncPasswordFile(dir: string, password: string): string {
  const file = join(dir, 'passwd');
  const plain = Buffer.alloc(8);
  Buffer.from(password, 'latin1').copy(plain, 0, 0, 8);
  writeFileSync(file, vncAuthResponse(VNC_PASSWD_KEY, plain), { mode: 0o600 });
  return file;
}

/**
 * One `vncsnapshot` run; resolves with its exit code and output. It is killed (SIGKILL) if it
 * has not finished in `timeoutMs`, so a hung client never outlives the test.
 */
export function vncsnapshot(port: number, args: string[], outFile: string, timeoutMs = 30_000): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    execFile('vncsnapshot', [...args, `127.0.0.1::${port}`, outFile], { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: unknown }).code as number | null) ?? null : 0;
      resolve({ code: typeof code === 'number' ? code : null, output: `${stdout}${stderr}` });
    });
  });
}

/**
 * The X display number an Xvfb process listens on: the /tmp/.X11-unix/X<n> socket whose inode
 * is one of its open file descriptors (Xvfb chose the number itself with -displayfd).
 */
export function displayOfXvfb(pid: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const m = /^@?\/tmp\/\.X11-unix\/X(\d+)$/.exec(f[7] ?? '');
    if (m && inodes.has(f[6]!)) return Number(m[1]);
  }
  throw new Error(`no X socket found for pid ${pid}`);
}
