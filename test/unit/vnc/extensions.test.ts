import { afterEach, describe, expect, it } from 'vitest';
import { RfbParser, type ClientMsg } from '../../../src/liveview/vnc/parser.js';
import type { VncServer } from '../../../src/liveview/vnc/server.js';
import { Enc, RawRfb } from '../../helpers/vnc-raw.js';
import type { CursorShape, CursorSource } from '../../../src/display/types.js';
import { session, startServer } from './helpers.js';

/** rfbproto Cursor, ContinuousUpdates and Fence, with a raw client against fake sessions. */
const servers: VncServer[] = [];
const clients: RawRfb[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) await s.close();
});

async function connect(encodings: number[]) {
  const a = session('s1');
  const { server, port } = await startServer([{ password: 'pw', session: a }]);
  servers.push(server);
  const c = await RawRfb.connect(port, 'pw');
  clients.push(c);
  c.setEncodings(encodings);
  return { a, c, port };
}

const REQUEST = 0x80000000;
const quiet = (ms = 60) => new Promise((r) => setTimeout(r, ms));
async function waitUntil(ok: () => boolean): Promise<void> {
  for (let i = 0; !ok(); i++) {
    if (i > 200) throw new Error('condition not met');
    await quiet(10);
  }
}

describe('RfbParser extensions', () => {
  const init = Buffer.concat([Buffer.from('RFB 003.003\n'), Buffer.alloc(16), Buffer.of(1)]);
  const fence = Buffer.concat([Buffer.of(248, 0, 0, 0, 0x80, 0, 0, 3, 3), Buffer.from('abc')]);
  const cu = Buffer.of(150, 1, 0, 1, 0, 2, 0, 30, 0, 40);

  it('parses EnableContinuousUpdates and Fence at every split point', () => {
    const all = Buffer.concat([init, fence, cu]);
    for (let i = 1; i < all.length; i++) {
      const msgs: ClientMsg[] = [];
      const p = new RfbParser((m) => msgs.push(m), (e) => expect.fail(e));
      p.push(all.subarray(0, i));
      p.push(all.subarray(i));
      expect(msgs.slice(3)).toEqual([
        { type: 'fence', flags: 0x80000003, payload: Buffer.from('abc') },
        { type: 'enableContinuousUpdates', enable: true, rect: { x: 1, y: 2, width: 30, height: 40 } },
      ]);
    }
  });

  it('fails on a fence payload over 64 bytes', () => {
    const errors: string[] = [];
    const p = new RfbParser(() => {}, (e) => errors.push(e));
    p.push(Buffer.concat([init, Buffer.of(248, 0, 0, 0, 0, 0, 0, 0, 65), Buffer.alloc(65)]));
    expect(errors).toEqual(['Fence with 65 payload bytes']);
  });
});

describe('VncServer extensions', () => {
  it('sends the Cursor shape once when listed: 32bpp pixels and a 1-bit mask', async () => {
    const { c } = await connect([Enc.Raw, Enc.Cursor]);
    c.request(false);
    const first = await c.readUpdate();
    expect(first.rects.map((r) => r.enc)).toEqual([Enc.Cursor, Enc.Raw]);
    expect(c.cursor).toMatchObject({ x: 0, y: 0, w: 12, h: 19 });
    // The tip is opaque black, the pixel right of it transparent, inside the arrow white.
    expect(c.cursor!.mask[0]! & 0xc0).toBe(0x80);
    expect(c.cursor!.pixels.readUInt32LE((3 * 12 + 1) * 4) & 0xffffff).toBe(0xffffff);
    c.request(false);
    expect((await c.readUpdate()).rects.map((r) => r.enc)).toEqual([Enc.Raw]);
  });

  it("follows the session's pointer shape: each change goes out once, hotspot as x, y, colour un-premultiplied", async () => {
    const a = session('s1');
    const listeners = new Set<(s: CursorShape | null) => void>();
    let shape: CursorShape | null = null;
    const cursor: CursorSource = { current: () => shape, onChange: (l) => (listeners.add(l), () => void listeners.delete(l)) };
    Object.assign(a.framebuffer, { cursor });
    const { server, port } = await startServer([{ password: 'pw', session: a }]);
    servers.push(server);
    const c = await RawRfb.connect(port, 'pw');
    clients.push(c);
    c.setEncodings([Enc.Raw, Enc.Cursor]);
    c.request(false);
    await c.readUpdate();
    expect(c.cursor).toMatchObject({ x: 0, y: 0, w: 12, h: 19 }); // not known yet: the arrow
    expect(listeners.size).toBe(1);
    // Half-opaque premultiplied red (shown as full red), then a transparent pixel.
    shape = { width: 9, height: 1, hotX: 3, hotY: 0, argb: Uint32Array.of(0x80400000, 0, 0, 0, 0, 0, 0, 0, 0xff00ff00) };
    for (const l of listeners) l(shape);
    c.request(true);
    expect((await c.readUpdate()).rects.map((r) => r.enc)).toEqual([Enc.Cursor]);
    expect(c.cursor).toMatchObject({ x: 3, y: 0, w: 9, h: 1, mask: Buffer.of(0x80, 0x80) });
    expect(c.cursor!.pixels.readUInt32LE(0) & 0xffffff).toBe(0x800000);
    expect(c.cursor!.pixels.readUInt32LE(8 * 4) & 0xffffff).toBe(0x00ff00);
    // Unlisting the encoding stops following the shape.
    c.setEncodings([Enc.Raw]);
    await waitUntil(() => listeners.size === 0);
  });

  it('announces Fence and ContinuousUpdates, then sends changes without requests until disabled', async () => {
    const { a, c } = await connect([Enc.Raw, Enc.ContinuousUpdates, Enc.Fence]);
    c.request(false);
    await c.readUpdate();
    expect(c.controls).toEqual([{ type: 'fence', flags: REQUEST, payload: Buffer.alloc(0) }, { type: 'endOfContinuousUpdates' }]);
    c.continuousUpdates(true, 0, 0, 32, 48);
    for (const colour of [0x00ff00, 0x0000ff, 0xff0000]) {
      a.framebuffer.paint({ x: 4, y: 4, width: 2, height: 2 }, () => colour);
      const u = await c.readUpdate(); // no request was sent
      expect(u.rects).toEqual([{ x: 4, y: 4, w: 2, h: 2, enc: Enc.Raw, bytes: 16 }]);
      expect(c.pixels[4 * c.width + 4]).toBe(colour);
    }
    // Outside the continuous area a change waits for a request.
    a.framebuffer.paint({ x: 40, y: 4, width: 2, height: 2 }, () => 0x123456);
    await quiet();
    expect(c.socket.readableLength).toBe(0);
    c.continuousUpdates(false);
    expect(await c.readMessage()).toBeNull();
    expect(c.controls.at(-1)).toEqual({ type: 'endOfContinuousUpdates' });
    a.framebuffer.paint({ x: 4, y: 4, width: 2, height: 2 }, () => 0x654321);
    await quiet();
    c.request(true);
    expect((await c.readUpdate()).rects.map((r) => [r.x, r.y]).sort((p, q) => p[0]! - q[0]!)).toEqual([[4, 4], [40, 4]]);
  });

  it('answers a fence request in order, echoing the payload and only the flags it honours', async () => {
    const { c } = await connect([Enc.Raw, Enc.Fence]);
    c.request(false);
    await c.readUpdate();
    c.fence(REQUEST | 0b111 | 0x100, Buffer.from('sync-1'));
    expect(await c.readMessage()).toBeNull();
    expect(c.controls.at(-1)).toEqual({ type: 'fence', flags: 0b111, payload: Buffer.from('sync-1') });
  });

  it('closes only the connection that sends a bad fence or enables continuous updates unannounced', async () => {
    const { c, port } = await connect([Enc.Raw, Enc.Fence]);
    c.request(false);
    await c.readUpdate();
    c.fence(REQUEST, Buffer.alloc(65), 65);
    await c.closed;
    const d = await RawRfb.connect(port, 'pw');
    clients.push(d);
    d.setEncodings([Enc.Raw]);
    d.continuousUpdates(true, 0, 0, 64, 48);
    await d.closed;
    const e = await RawRfb.connect(port, 'pw');
    clients.push(e);
    e.setEncodings([Enc.Raw]);
    e.request(false);
    expect((await e.readUpdate()).rects).toHaveLength(1);
  });

  it('closes a client that sends fences but never reads the answers (its queue is capped)', async () => {
    const { c } = await connect([Enc.Raw, Enc.Fence]);
    c.request(false);
    await c.readUpdate();
    c.socket.pause(); // reads nothing more
    const one = Buffer.concat([Buffer.of(248, 0, 0, 0, 0x80, 0, 0, 0, 64), Buffer.alloc(64)]);
    // 16 MB of fence requests: their answers would be as large, twice the write cap.
    for (let i = 0; i < 16; i++) c.socket.write(Buffer.concat(Array(14_000).fill(one)));
    const open = () => (servers[0] as unknown as { connections: Set<unknown> }).connections.size;
    for (let i = 0; i < 200 && open() > 0; i++) await quiet(50);
    expect(open()).toBe(0);
  });
});

