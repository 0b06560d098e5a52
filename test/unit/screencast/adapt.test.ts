/**
 * Issue 12 item 3: atlas frames (one JPEG per frame) and adaptation to a slow or stalled viewer.
 * Outcomes only (what the viewer ends up showing, what it was sent), no durations.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Harness, waitFor } from './fakes.js';
import { atlasFits, buildAtlas, packAtlas } from '../../../src/liveview/screencast/atlas.js';
import { QUALITY_LADDER, rungForQuality } from '../../../src/liveview/screencast/viewer.js';
import { MAX_UNACKED } from '../../../src/liveview/screencast/protocol.js';
import { dcQuantFor, jpegInfo } from '../../helpers/jpeg.js';

let harness: Harness | undefined;
let proxy: Throttle | undefined;
afterEach(async () => {
  await proxy?.close();
  await harness?.stop();
  proxy = harness = undefined;
});

/** Paints `rect` with noise (a JPEG cannot make it small). */
function noise(h: Harness, rect: { x: number; y: number; width: number; height: number }): void {
  const bytes = randomBytes(rect.width * rect.height * 4);
  for (let y = 0; y < rect.height; y++) bytes.copy(h.fb.data, (rect.y + y) * h.fb.stride + rect.x * 4, y * rect.width * 4, (y + 1) * rect.width * 4);
  for (const s of h.fb.subscribers) s.mark(rect);
}

describe('atlas frames', () => {
  it('packs rects on the block grid and covers each rect exactly once', () => {
    const frame = { width: 320, height: 200, stride: 320 * 4, data: Buffer.alloc(320 * 200 * 4, 0x40) };
    const rects = [
      { x: 0, y: 0, width: 64, height: 64 },
      { x: 128, y: 64, width: 192, height: 128 },
      { x: 256, y: 192, width: 64, height: 8 },
    ];
    for (const scale of [1, 0.5] as const) {
      const a = buildAtlas(frame, rects, scale);
      expect(a.entries.map((e) => [e.dx, e.dy, e.dw, e.dh])).toEqual(rects.map((r) => [r.x, r.y, r.width, r.height]));
      for (const e of a.entries) {
        expect(e.sx % 16).toBe(0);
        expect(e.sy % 16).toBe(0);
        expect(e.sw).toBe(Math.ceil(e.dw * scale));
        expect(e.sx + e.sw).toBeLessThanOrEqual(a.pixels.width);
        expect(e.sy + e.sh).toBeLessThanOrEqual(a.pixels.height);
      }
      expect(a.pixels.data.length).toBe(a.pixels.width * a.pixels.height * 3);
    }
  });

  it('sends a viewer that asks for atlas frames one message and one encode per frame, composing exactly', async () => {
    harness = await new Harness(320, 192).start();
    const v = await harness.connect({ atlas: true });
    await waitFor(() => harness!.screencast.viewerCount === 1 && v.frames.length >= 1, 'first frame');
    harness.fb.paint({ x: 0, y: 0, width: 320, height: 192 }, 0x204080);
    await waitFor(() => v.maxDiff(harness!.fb.rgb()) <= 8, 'full repaint');
    const encodes = harness.encodes;
    const pictures = v.pictures.length;
    // Three separate changes in one frame.
    harness.fb.paint({ x: 0, y: 0, width: 64, height: 64 }, 0xff0000);
    harness.fb.paint({ x: 192, y: 64, width: 64, height: 64 }, 0x00ff00);
    harness.fb.paint({ x: 256, y: 128, width: 64, height: 64 }, 0x0000ff);
    await waitFor(() => v.maxDiff(harness!.fb.rgb()) <= 8, 'the three changes');
    const sent = v.pictures.slice(pictures);
    expect(sent.every((p) => p.kind === 3)).toBe(true);
    expect(harness.encodes - encodes).toBe(sent.length);
  });
});

describe('adaptation', () => {
  it('a viewer that stops reading holds at most the ack window and gets the newest picture when it reads again', async () => {
    harness = await new Harness(320, 192).start();
    const v = await harness.connect({ atlas: true });
    const socket = (v.ws as unknown as { _socket: Socket })._socket;
    socket.pause();
    const before = v.frames.length;
    for (let i = 0; i < 30; i++) {
      noise(harness, { x: 0, y: 0, width: 320, height: 192 });
      await new Promise((r) => setTimeout(r, 10));
    }
    harness.fb.paint({ x: 0, y: 0, width: 320, height: 192 }, 0x336699);
    const frozen = harness.fb.rgb();
    socket.resume();
    await waitFor(() => v.maxDiff(frozen) <= 8, 'the newest picture after resuming');
    // The 30 changes did not queue up: what was in flight when it stopped, then the newest.
    expect(v.frames.length - before).toBeLessThanOrEqual(MAX_UNACKED + 2);
  });

  it('lowers quality on a link too slow for its frames and raises it again when the link recovers', async () => {
    harness = await new Harness(320, 192).start();
    proxy = await throttle(harness.port, 40_000);
    const v = await harness.connect({ atlas: true, port: proxy.port, waitFrame: false });
    let painting = true;
    const painter = (async () => {
      while (painting) {
        noise(harness!, { x: 0, y: 0, width: 320, height: 192 });
        await new Promise((r) => setTimeout(r, 30));
      }
    })();
    try {
      await waitFor(() => v.texts_('adapt').length > 0, 'a step down', 30_000);
      const down = v.texts_('adapt')[0];
      expect(down.quality * down.scale).toBeLessThan(75);
      proxy.unlimited();
      await waitFor(() => v.texts_('adapt').some((m, i, all) => i > 0 && m.quality * m.scale > all[i - 1].quality * all[i - 1].scale), 'a step up', 30_000);
    } finally {
      painting = false;
      await painter;
    }
  });
});

interface Throttle {
  port: number;
  unlimited(): void;
  close(): Promise<void>;
}

/** A TCP proxy forwarding the server's bytes at `bytesPerSecond` (reading only as fast as it writes) until unlimited(). */
async function throttle(port: number, bytesPerSecond: number): Promise<Throttle> {
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let rate = bytesPerSecond;
  const server: Server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.pipe(upstream);
    const queue: Buffer[] = [];
    let last = performance.now();
    let credit = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      credit = Math.min(credit + ((now - last) / 1000) * rate, rate * 0.02);
      last = now;
      while (queue.length > 0 && credit >= 1) {
        const head = queue[0]!;
        const n = Math.min(head.length, Math.floor(credit));
        client.write(head.subarray(0, n));
        credit -= n;
        if (n === head.length) queue.shift();
        else queue[0] = head.subarray(n);
      }
      if (queue.length === 0 && upstream.isPaused()) upstream.resume();
    }, 5);
    timers.add(timer);
    upstream.on('data', (d: Buffer) => {
      queue.push(d);
      upstream.pause();
    });
    const end = () => {
      clearInterval(timer);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    unlimited: () => void (rate = 1e9),
    close: () =>
      new Promise<void>((r) => {
        for (const t of timers) clearInterval(t);
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}


describe('encode settings per session (review M2)', () => {
  it('snaps qualities to the ladder, caps a tick at 3 settings, and the viewer in control keeps its own', async () => {
    harness = await new Harness(320, 192).start();
    const h = harness;
    const seen = new Map<unknown, number[]>();
    h.session.canControl = false;
    const viewers = [];
    for (const [i, q] of [10, 20, 30, 45, 60, 70, 85, 95].entries()) {
      const v = await h.connect({ atlas: i % 2 === 0 });
      v.send({ type: 'quality', value: q });
      viewers.push(v);
    }
    h.session.canControl = true;
    const control = await h.connect();
    for (const v of [control, ...viewers]) {
      seen.set(v, []);
      v.ws.on('message', (d: Buffer, bin) => {
        if (bin) seen.get(v)!.push(jpegInfo(d[0] === 3 ? d.subarray(8 + d.readUInt16BE(5) * 16) : d.subarray(14)).dcQuant);
      });
    }
    await new Promise((r) => setTimeout(r, 300));
    for (const s of seen.values()) s.length = 0;
    const e0 = h.encodes;
    h.fb.paint({ x: 0, y: 0, width: 320, height: 192 }, 0x804020);
    await waitFor(() => [...seen.values()].every((s) => s.length > 0), 'a picture for everyone');
    await new Promise((r) => setTimeout(r, 300));
    const all = new Set([...seen.values()].flat());
    expect([...all].every((q) => [75, 55, 40, 25, 50, 30].map(dcQuantFor).includes(q))).toBe(true);
    expect(all.size).toBeLessThanOrEqual(3);
    expect(seen.get(control)).toEqual(seen.get(control)!.map(() => dcQuantFor(75)));
    expect(h.encodes - e0).toBeLessThanOrEqual(3);
  });
});

describe('encode settings per session (review L5)', () => {
  it('a tiles-only view link past the cap never turns the picture of the viewer in control into tiles', async () => {
    harness = await new Harness(320, 192).start();
    const h = harness;
    const kinds = new Map<unknown, number[]>();
    h.session.canControl = true;
    const control = await h.connect({ atlas: true });
    control.send({ type: 'quality', value: 25 });
    h.session.canControl = false;
    const viewers = [];
    for (const [q, atlas] of [[75, true], [55, true], [25, false]] as const) {
      const v = await h.connect({ atlas });
      v.send({ type: 'quality', value: q });
      viewers.push(v);
    }
    for (const v of [control, ...viewers]) {
      kinds.set(v, []);
      v.ws.on('message', (d: Buffer, bin) => void (bin && kinds.get(v)!.push(d[0]!)));
    }
    await new Promise((r) => setTimeout(r, 300));
    for (const k of kinds.values()) k.length = 0;
    h.fb.paint({ x: 0, y: 0, width: 32, height: 32 }, 0x804020);
    await waitFor(() => [...kinds.values()].every((k) => k.length > 0), 'a picture for everyone');
    expect(new Set(kinds.get(control))).toEqual(new Set([3])); // atlas frames only
    expect(new Set(kinds.get(viewers[2]))).not.toContain(3);
  });
});

describe('bounds (review M2, L2)', () => {
  it('every requested quality snaps to a full-size rung of the ladder', () => {
    const got = [10, 25, 32, 33, 40, 47, 48, 55, 64, 65, 75, 95].map((q) => QUALITY_LADDER[rungForQuality(q)]!.quality);
    expect(got).toEqual([25, 25, 25, 40, 40, 40, 55, 55, 55, 75, 75, 75]);
  });

  it('packs mixed rects without the holes shelves leave, in the smallest picture', () => {
    // Shelves of whole rects, tallest first, packed these 896 rows high; the skyline puts the
    // 448-wide rects in a column beside the 768-wide ones.
    const rects = [
      { x: 0, y: 0, width: 768, height: 320 },
      { x: 832, y: 0, width: 448, height: 256 },
      { x: 512, y: 384, width: 768, height: 320 },
      { x: 0, y: 448, width: 448, height: 256 },
    ];
    expect(packAtlas(rects, { width: 1280, height: 720 }, 1)).toMatchObject({ width: 1216, height: 640 });
    expect(atlasFits(rects, 1280, 720, 1)).toBe(true);
    // Three 256-px tiles fill a picture 768 wide: no empty rest of the row to encode.
    const three = [0, 1, 2].map((i) => ({ x: i * 384, y: i * 128, width: 256, height: 64 }));
    expect(packAtlas(three, { width: 1280, height: 720 }, 1)).toMatchObject({ width: 768, height: 64 });
    // A picture narrower than the screen never at the price of one taller than it: on a 1280x128
    // screen, three 512x64 rects would make the smallest picture 512 wide, but 192 tall.
    const wide = [[0, 0], [640, 0], [0, 64]].map(([x, y]) => ({ x: x!, y: y!, width: 512, height: 64 }));
    expect(packAtlas(wide, { width: 1280, height: 128 }, 1)).toMatchObject({ width: 1024, height: 128 });
  });

  it('an atlas that would pack taller than the screen does not fit (a full frame goes instead)', () => {
    const rects = [
      { x: 0, y: 0, width: 1280, height: 320 },
      { x: 0, y: 320, width: 1280, height: 320 },
      { x: 0, y: 640, width: 960, height: 80 },
      { x: 0, y: 0, width: 1216, height: 64 },
    ];
    expect(packAtlas(rects, { width: 1280, height: 720 }, 1).height).toBe(784);
    expect(atlasFits(rects, 1280, 720, 1)).toBe(false);
    expect(atlasFits(rects, 1280, 720, 0.5)).toBe(false);
    expect(atlasFits(rects.slice(0, 3), 1280, 720, 1)).toBe(true);
  });
});
