import crypto from 'node:crypto';
import net from 'node:net';
import * as rfb from 'rfb2';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { HandoffError } from '../../../src/util/errors.js';
import type { VncServer } from '../../../src/liveview/vnc/server.js';
import { RawClient, gradient, session, startServer } from './helpers.js';
import type { FakeSession } from './fakes.js';

type Rect = { x: number; y: number; width: number; height: number; encoding: number; buffer: Buffer };
const servers: VncServer[] = [];
const clients: Array<{ end(): void }> = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.end();
  for (const s of servers.splice(0)) await s.close();
});

async function serve(sessions: Array<{ password: string; session: FakeSession }>) {
  const s = await startServer(sessions);
  servers.push(s.server);
  return s;
}

/** Connects with rfb2 and resolves with the first full frame as 0xRRGGBB per pixel. */
function firstFrame(port: number, password: string) {
  const client = rfb.createConnection({ host: '127.0.0.1', port, password });
  clients.push(client);
  const frame = new Promise<{ width: number; height: number; pixels: number[]; title: string }>((resolve, reject) => {
    client.on('error', reject);
    client.on('rect', (r: Rect) => {
      if (r.encoding !== 0) return;
      const pixels: number[] = [];
      for (let i = 0; i < r.width * r.height; i++) pixels.push(r.buffer.readUInt32LE(i * 4) & 0xffffff);
      resolve({ width: r.width, height: r.height, pixels, title: (client as unknown as { title: string }).title });
    });
  });
  return { client, frame };
}

function expected(s: FakeSession): number[] {
  const fb = s.framebuffer;
  const out: number[] = [];
  for (let y = 0; y < fb.height; y++) for (let x = 0; x < fb.width; x++) out.push(fb.pixel(x, y));
  return out;
}

describe('VncServer with the rfb2 client', () => {
  it('gives the right password a full frame equal to the framebuffer', async () => {
    const a = session('s1');
    const { port, server } = await serve([{ password: 'secret12', session: a }]);
    const { frame } = firstFrame(port, 'secret12');
    const f = await frame;
    expect([f.width, f.height]).toEqual([64, 48]);
    expect(f.pixels).toEqual(expected(a));
    expect(f.title).toBe('handoff s1');
    expect(server.viewerCount('s1')).toBe(1);
    expect(a.handles[0]!.opts).toMatchObject({ transport: 'vnc' });
  });

  it('refuses a wrong password with a reason and audits it', async () => {
    const { port, failures } = await serve([{ password: 'secret12', session: session('s1') }]);
    const { frame } = firstFrame(port, 'nope');
    await expect(frame).rejects.toBe('authentication failed');
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatch(/127\.0\.0\.1/);
  });

  it('routes each password to its own session', async () => {
    const a = session('a', 32, 16, () => 0xff0000);
    const b = session('b', 40, 24, gradient);
    const { port, server } = await serve([
      { password: 'alpha', session: a },
      { password: 'bravo', session: b },
    ]);
    const [fa, fb] = await Promise.all([firstFrame(port, 'alpha').frame, firstFrame(port, 'bravo').frame]);
    expect(fa.pixels).toEqual(expected(a));
    expect(fb.pixels).toEqual(expected(b));
    expect([server.viewerCount('a'), server.viewerCount('b')]).toEqual([1, 1]);
  });

  it('accepts only the given session on a socket handed in for one session (a live link)', async () => {
    const a = session('a', 32, 16, () => 0xff0000);
    const { server } = await serve([
      { password: 'alpha', session: a },
      { password: 'bravo', session: session('b') },
    ]);
    const bridge = net.createServer((socket) => server.handleSocket(socket, '127.0.0.1', 'a'));
    await new Promise<void>((r) => bridge.listen(0, '127.0.0.1', r));
    try {
      const port = (bridge.address() as net.AddressInfo).port;
      await expect(firstFrame(port, 'bravo').frame).rejects.toBe('authentication failed');
      expect((await firstFrame(port, 'alpha').frame).pixels).toEqual(expected(a));
    } finally {
      bridge.close();
    }
  });

  it('forwards pointer, key and clipboard while the viewer may control', async () => {
    const a = session('s1');
    const { port } = await serve([{ password: 'pw', session: a }]);
    const { client, frame } = firstFrame(port, 'pw');
    await frame;
    const c = client as unknown as {
      pointerEvent(x: number, y: number, m: number): void;
      keyEvent(k: number, d: number): void;
      updateClipboard(t: string): void;
    };
    c.pointerEvent(10, 20, 1);
    c.keyEvent(0x61, 1);
    c.keyEvent(0x61, 0);
    c.updateClipboard('hello');
    await vi.waitFor(() => expect(a.input.events).toHaveLength(4));
    expect(a.input.events).toEqual([
      ['pointer', 10, 20, 1],
      ['key', 0x61, true],
      ['key', 0x61, false],
      ['clipboard', 'hello'],
    ]);
  });

  it('drops input from a view-only viewer and says so in the desktop name', async () => {
    const a = session('s1');
    a.canControl = false;
    const { port } = await serve([{ password: 'pw', session: a }]);
    const { client, frame } = firstFrame(port, 'pw');
    expect((await frame).title).toBe('handoff s1 (view only)');
    const c = client as unknown as { pointerEvent(x: number, y: number, m: number): void; keyEvent(k: number, d: number): void };
    c.pointerEvent(1, 2, 1);
    c.keyEvent(0x61, 1);
    // A second, controlling viewer's event proves the first ones were processed and dropped.
    a.canControl = true;
    const second = firstFrame(port, 'pw');
    await second.frame;
    (second.client as unknown as { keyEvent(k: number, d: number): void }).keyEvent(0x62, 1);
    await vi.waitFor(() => expect(a.input.events).toEqual([['key', 0x62, true]]));
  });

  it('answers the right password from a network outside hitl_allowed_networks exactly like a wrong one', async () => {
    const a = session('s1');
    a.joinError = new HandoffError('network_not_allowed', 'source not allowed');
    const { port, server } = await serve([{ password: 'pw', session: a }]);
    await expect(firstFrame(port, 'pw').frame).rejects.toBe('authentication failed');
    await expect(firstFrame(port, 'wrong').frame).rejects.toBe('authentication failed');
    // Both count against the source.
    await vi.waitFor(() => expect(server.throttle.inFlight).toBe(0));
    expect(server.throttle.trackedSources).toBe(1);
  });

  it('closes when the session ends, and leaves the session when the client goes', async () => {
    const a = session('s1');
    const { port, server } = await serve([{ password: 'pw', session: a }]);
    const raw = new RawClient(port);
    await raw.handshake('pw');
    expect(a.framebuffer.subscribers.size).toBe(1);
    a.handles[0]!.end('session stopped');
    await raw.untilClosed();
    expect(a.handles[0]!.left).toBe(true);
    expect(a.framebuffer.subscribers.size).toBe(0);
    expect(server.viewerCount('s1')).toBe(0);

    const raw2 = new RawClient(port);
    await raw2.handshake('pw');
    raw2.socket.destroy();
    await vi.waitFor(() => expect(a.handles[1]!.left).toBe(true));
    expect(a.framebuffer.subscribers.size).toBe(0);
  });
});

describe('VncServer protocol details', () => {
  it('speaks 3.3 to 3.3 clients and to unknown versions such as Apple 3.889', async () => {
    const a = session('s1');
    const { port } = await serve([{ password: 'pw', session: a }]);
    for (const version of ['RFB 003.003\n', 'RFB 003.889\n', 'RFB 003.007\n']) {
      const raw = new RawClient(port);
      expect(await raw.handshake('pw', version)).toEqual({ width: 64, height: 48, name: 'handoff s1' });
      raw.socket.destroy();
    }
  });

  it('3.3 refusal is a bare SecurityResult and close', async () => {
    const { port } = await serve([{ password: 'pw', session: session('s1') }]);
    const raw = new RawClient(port);
    await raw.read(12);
    raw.write(Buffer.from('RFB 003.003\n'));
    expect(await raw.u32()).toBe(2);
    await raw.read(16);
    raw.write(Buffer.alloc(16));
    expect(await raw.u32()).toBe(1);
    await raw.untilClosed();
  });

  it('answers incremental requests only when something changed, one update per request', async () => {
    const a = session('s1');
    const { port } = await serve([{ password: 'pw', session: a }]);
    const raw = new RawClient(port);
    await raw.handshake('pw');
    raw.setEncodings([0]);
    raw.request(false, 0, 0, 64, 48);
    expect(await raw.update((r) => raw.read(r.w * r.h * 4).then(() => {}))).toEqual([{ x: 0, y: 0, w: 64, h: 48, enc: 0 }]);
    raw.request(true, 0, 0, 64, 48);
    await new Promise((r) => setTimeout(r, 50));
    expect(raw.available).toBe(0); // nothing changed: the request waits
    a.framebuffer.paint({ x: 8, y: 4, width: 2, height: 3 }, () => 0x00ff00);
    a.framebuffer.paint({ x: 20, y: 4, width: 1, height: 1 }, () => 0x0000ff);
    let pixels: Buffer[] = [];
    const rects = await raw.update(async (r) => void pixels.push(await raw.read(r.w * r.h * 4)));
    expect(rects).toEqual([
      { x: 8, y: 4, w: 2, h: 3, enc: 0 },
      { x: 20, y: 4, w: 1, h: 1, enc: 0 },
    ]);
    expect(pixels[0]!.readUInt32LE(0) & 0xffffff).toBe(0x00ff00);
    // No request outstanding: changes wait.
    a.framebuffer.paint({ x: 0, y: 0, width: 1, height: 1 }, () => 0x123456);
    await new Promise((r) => setTimeout(r, 50));
    pixels = [];
    raw.request(true, 0, 0, 64, 48);
    expect(await raw.update(async (r) => void pixels.push(await raw.read(r.w * r.h * 4)))).toEqual([
      { x: 0, y: 0, w: 1, h: 1, enc: 0 },
    ]);
  });

  it('encodes with the first encoding the client lists that the server has', async () => {
    const a = session('s1');
    const { port } = await serve([{ password: 'pw', session: a }]);
    const raw = new RawClient(port);
    await raw.handshake('pw');
    raw.setEncodings([-1000, 99, 16, 7, 0]); // an unknown pseudo-encoding and an unknown encoding are skipped
    raw.request(false, 0, 0, 64, 48);
    const rects = await raw.update(async () => void (await raw.read(await raw.u32())));
    expect(rects).toEqual([{ x: 0, y: 0, w: 64, h: 48, enc: 16 }]);
  });

  it('announces ExtendedDesktopSize, refuses SetDesktopSize, and counts rects exactly even with LastRect listed', async () => {
    const a = session('s1');
    const { port } = await serve([{ password: 'pw', session: a }]);
    const raw = new RawClient(port);
    await raw.handshake('pw');
    raw.setEncodings([0, -308, -224]);
    raw.request(false, 0, 0, 64, 48);
    const first = await raw.update(async (r) => void (await raw.read(r.enc === -308 ? 20 : r.w * r.h * 4)));
    expect(first).toEqual([
      { x: 0, y: 0, w: 64, h: 48, enc: -308 },
      { x: 0, y: 0, w: 64, h: 48, enc: 0 },
    ]);
    const set = Buffer.alloc(8 + 16);
    set[0] = 251;
    set.writeUInt16BE(800, 2);
    set.writeUInt16BE(600, 4);
    set[6] = 1;
    raw.write(set);
    raw.request(true, 0, 0, 64, 48);
    const answer = await raw.update(async () => void (await raw.read(20)));
    expect(answer).toEqual([{ x: 1, y: 1, w: 64, h: 48, enc: -308 }]);
  });

  it('sends a DesktopName update when control changes', async () => {
    const a = session('s1');
    const { port } = await serve([{ password: 'pw', session: a }]);
    const raw = new RawClient(port);
    await raw.handshake('pw');
    raw.setEncodings([0, -307]);
    raw.request(false, 0, 0, 64, 48);
    await raw.update((r) => raw.read(r.w * r.h * 4).then(() => {}));
    raw.request(true, 0, 0, 64, 48);
    await new Promise((r) => setTimeout(r, 20));
    a.handles[0]!.setControl(false);
    let name = '';
    await raw.update(async () => void (name = (await raw.read(await raw.u32())).toString()));
    expect(name).toBe('handoff s1 (view only)');
  });
});

describe('VncServer under abuse', () => {
  it('survives garbage, truncated handshakes and huge lengths; others are unaffected', async () => {
    const a = session('s1');
    const { port, server } = await serve([{ password: 'pw', session: a }]);
    const good = firstFrame(port, 'pw');
    await good.frame;

    const garbage = new RawClient(port);
    garbage.write(crypto.randomBytes(4096));
    await garbage.untilClosed();

    const truncated = new RawClient(port);
    await truncated.read(12);
    truncated.write(Buffer.from('RFB 003.0'));
    truncated.socket.destroy();

    const huge = new RawClient(port);
    await huge.handshake('pw');
    const cut = Buffer.alloc(8);
    cut[0] = 6;
    cut.writeUInt32BE(0xffffffff, 4);
    huge.write(cut);
    await huge.untilClosed();
    expect(a.handles[1]!.left).toBe(true);

    const unknown = new RawClient(port);
    await unknown.handshake('pw');
    unknown.write(Buffer.of(99));
    await unknown.untilClosed();

    const encodings = new RawClient(port);
    await encodings.handshake('pw');
    encodings.write(Buffer.of(2, 0, 0xff, 0xff));
    await encodings.untilClosed();

    await vi.waitFor(() => expect(server.viewerCount('s1')).toBe(1));
    // The good client still works.
    (good.client as unknown as { keyEvent(k: number, d: number): void }).keyEvent(0x41, 1);
    await vi.waitFor(() => expect(a.input.events).toEqual([['key', 0x41, true]]));
  });

  it('stops encoding for a client that never reads while the frame keeps changing', async () => {
    const a = session('s1', 256, 256);
    const { port, server } = await serve([{ password: 'pw', session: a }]);
    const stuck = new RawClient(port);
    await stuck.handshake('pw');
    stuck.socket.pause();
    stuck.setEncodings([0]);
    const conn = [...(server as unknown as { connections: Set<{ socket: { writableLength: number } }> }).connections][0]!;
    let peak = 0;
    for (let i = 0; i < 150; i++) {
      a.framebuffer.paint({ x: 0, y: 0, width: 256, height: 256 }, () => i * 0x010101);
      stuck.request(false, 0, 0, 256, 256);
      await new Promise((r) => setImmediate(r));
      peak = Math.max(peak, conn.socket.writableLength);
    }
    // 150 raw frames would be 39 MB; the cap is 8 MiB plus the one update started under it.
    expect(peak).toBeGreaterThan(1024 * 1024); // the client really was not reading
    expect(peak).toBeLessThan(8 * 1024 * 1024 + 256 * 256 * 4 + 64 * 1024);
    const other = firstFrame(port, 'pw');
    expect((await other.frame).pixels).toEqual(expected(a));
    stuck.socket.destroy();
  });
});
