import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { Harness, waitFor, type TestViewer } from './fakes.js';

/** JPEG at the default quality on flat 64-aligned colour blocks stays this close to the source. */
const TOLERANCE = 12;

let h: Harness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

async function harness(width?: number, height?: number): Promise<Harness> {
  h = await new Harness(width, height).start();
  return h;
}

/** Waits until `v` has a complete frame newer than `after` and has drawn it. */
async function nextFrame(v: TestViewer, after: number): Promise<number> {
  await waitFor(() => (v.frames.at(-1) ?? 0) > after, `frame after ${after}`);
  return v.frames.at(-1)!;
}

describe('Screencast frames', () => {
  it('sends hello, state, then a full frame that decodes to the framebuffer colours', async () => {
    const t = await harness(320, 192);
    t.fb.paint({ x: 0, y: 0, width: 320, height: 192 }, 0x2060c0);
    t.fb.paint({ x: 64, y: 64, width: 128, height: 64 }, 0xe02010);
    const v = await t.connect();
    expect(v.texts[0]).toEqual({ type: 'hello', sessionId: 'sess', width: 320, height: 192, transport: 'screencast', quality: 75 });
    expect(v.texts[1]).toEqual({
      type: 'state',
      canControl: true,
      attachment: 'none',
      handoff: null,
      viewers: { screencast: 0, webrtc: 0, vnc: 0 },
      downloads: 0,
      tabs: [],
      fileRequest: null,
    });
    expect(v.pictures[0]).toMatchObject({ kind: 2, seq: 1, x: 0, y: 0, width: 320, height: 192 });
    expect(v.maxDiff(t.fb.rgb())).toBeLessThanOrEqual(TOLERANCE);
    // Spot checks in the middle of each block, in 0xRRGGBB.
    const at = (x: number, y: number) => v.canvas.readUIntBE((y * 320 + x) * 3, 3);
    for (const [x, y, want] of [[10, 10, 0x2060c0], [128, 96, 0xe02010]] as const) {
      const got = at(x, y);
      for (const shift of [16, 8, 0]) expect(Math.abs(((got >> shift) & 0xff) - ((want >> shift) & 0xff))).toBeLessThanOrEqual(TOLERANCE);
    }
  });

  it('sends a small change as tiles at the right place, kind 1 then kind 2, and composes exactly', async () => {
    const t = await harness(640, 384);
    t.fb.paint({ x: 0, y: 0, width: 640, height: 384 }, 0x406080);
    const v = await t.connect();
    const before = v.pictures.length;
    // Two separate small changes: two tiles, not a full frame.
    t.fb.paint({ x: 64, y: 64, width: 64, height: 64 }, 0xff0000);
    t.fb.paint({ x: 448, y: 256, width: 128, height: 64 }, 0x00ff00);
    const seq = await nextFrame(v, 1);
    const frame = v.pictures.slice(before).filter((p) => p.seq === seq);
    expect(frame.length).toBe(2);
    expect(frame.map((p) => p.kind)).toEqual([1, 2]);
    const rects = frame.map(({ x, y, width, height }) => ({ x, y, width, height }));
    expect(rects).toContainEqual({ x: 64, y: 64, width: 64, height: 64 });
    expect(rects).toContainEqual({ x: 448, y: 256, width: 128, height: 64 });
    expect(v.maxDiff(t.fb.rgb())).toBeLessThanOrEqual(TOLERANCE);
  });

  it('sends a change covering most of the screen as one full frame', async () => {
    const t = await harness(320, 192);
    const v = await t.connect();
    t.fb.paint({ x: 0, y: 0, width: 320, height: 128 }, 0x123456);
    const seq = await nextFrame(v, 1);
    expect(v.pictures.filter((p) => p.seq === seq)).toEqual([expect.objectContaining({ kind: 2, x: 0, y: 0, width: 320, height: 192 })]);
    expect(v.maxDiff(t.fb.rgb())).toBeLessThanOrEqual(TOLERANCE);
  });

  it('sends nothing while nothing changes', async () => {
    const t = await harness();
    const v = await t.connect();
    // An ack round trip later, still only the first frame.
    const other = await t.connect();
    expect(other.frames).toEqual([1]);
    expect(v.frames).toEqual([1]);
  });
});

describe('Screencast pacing', () => {
  it('gives a viewer that never acks at most 2 frames while an acking viewer keeps getting frames', async () => {
    const t = await harness(320, 192);
    const stuck = await t.connect({ autoAck: false });
    const live = await t.connect();
    let last = live.frames.at(-1)!;
    for (let i = 0; i < 12; i++) {
      t.fb.paint({ x: (i % 5) * 64, y: 64, width: 64, height: 64 }, 0x100000 * (i + 1) + 0x40);
      last = await nextFrame(live, last);
    }
    expect(live.frames.length).toBeGreaterThanOrEqual(13);
    await waitFor(() => stuck.frames.length === 2, 'stuck viewer to draw its two frames');
    expect(new Set(stuck.pictures.map((p) => p.seq)).size).toBe(2);
    expect(stuck.closed).toBeUndefined();
  });

  it('brings a viewer that skipped frames to the exact current picture', async () => {
    const t = await harness(640, 384);
    t.fb.paint({ x: 0, y: 0, width: 640, height: 384 }, 0x808080);
    const slow = await t.connect({ autoAck: false });
    const live = await t.connect();
    let last = live.frames.at(-1)!;
    // The slow viewer's window fills (frame 1 + one update), then it misses these changes.
    const changes = [
      [{ x: 0, y: 0, width: 64, height: 64 }, 0xff0000],
      [{ x: 256, y: 128, width: 64, height: 128 }, 0x00ff00],
      [{ x: 576, y: 320, width: 64, height: 64 }, 0x0000ff],
      [{ x: 0, y: 0, width: 64, height: 64 }, 0xffff00],
      [{ x: 128, y: 320, width: 192, height: 64 }, 0x00ffff],
    ] as const;
    for (const [rect, colour] of changes) {
      t.fb.paint(rect, colour);
      last = await nextFrame(live, last);
    }
    await waitFor(() => slow.frames.length === 2, 'slow viewer to draw its two frames');
    expect(new Set(slow.pictures.map((p) => p.seq))).toEqual(new Set([1, 2]));
    // Now it acks what it has: what it missed comes next, as the union of the missed regions.
    slow.autoAck = true;
    slow.ack(slow.frames.at(-1));
    const catchUp = await nextFrame(slow, slow.frames.at(-1)!);
    expect(slow.maxDiff(t.fb.rgb())).toBeLessThanOrEqual(TOLERANCE);
    // Exactly what it missed, as tiles: not a full frame.
    const tiles = slow.pictures.filter((p) => p.seq === catchUp);
    expect(tiles.every((p) => p.width * p.height < 640 * 384)).toBe(true);
    expect(live.maxDiff(t.fb.rgb())).toBeLessThanOrEqual(TOLERANCE);
  });

  it('encodes once per frame for every viewer at the same quality, separately for another quality', async () => {
    const t = await harness(640, 384);
    const viewers = [await t.connect(), await t.connect(), await t.connect()];
    // The screen did not change between the three joins: one full-frame encode served all.
    expect(t.encodes).toBe(1);
    const lasts = viewers.map((v) => v.frames.at(-1)!);
    const before = t.encodes;
    t.fb.paint({ x: 64, y: 64, width: 64, height: 64 }, 0xff00ff);
    await Promise.all(viewers.map((v, i) => nextFrame(v, lasts[i]!)));
    const tiles = viewers[0]!.pictures.filter((p) => p.seq === viewers[0]!.frames.at(-1)).length;
    expect(tiles).toBe(1);
    expect(t.encodes - before).toBe(1);

    const other = await t.connect();
    other.send({ type: 'quality', value: 40 });
    const otherLast = await nextFrame(other, other.frames.at(-1)!); // the full picture again at 40
    const e0 = t.encodes;
    const lasts2 = viewers.map((v) => v.frames.at(-1)!);
    t.fb.paint({ x: 256, y: 128, width: 64, height: 64 }, 0x00ff80);
    await Promise.all([...viewers.map((v, i) => nextFrame(v, lasts2[i]!)), nextFrame(other, otherLast)]);
    expect(t.encodes - e0).toBe(2); // one at 75 for three viewers, one at 40
    for (const v of [...viewers, other]) expect(v.maxDiff(t.fb.rgb())).toBeLessThanOrEqual(40);
  });
});

describe('Screencast caps', () => {
  it('refuses a viewer past maxViewers with too_many_viewers and close 4029, before it joins', async () => {
    h = await new Harness(320, 192, { maxViewers: 2 }).start();
    const t = h;
    const [first] = [await t.connect(), await t.connect()];
    const port = Number(new URL(first!.ws.url).port);
    const extra = new WebSocket(`ws://127.0.0.1:${port}/`);
    const texts: unknown[] = [];
    extra.on('message', (d) => texts.push(JSON.parse(d.toString())));
    const closed = await new Promise<number>((r) => extra.once('close', (code) => r(code)));
    expect(closed).toBe(4029);
    expect(texts).toEqual([{ type: 'error', code: 'too_many_viewers', message: 'this session already has 2 screencast viewers' }]);
    expect(t.session.handles).toHaveLength(2);
    // A place frees when a viewer goes.
    await first!.close();
    await waitFor(() => t.screencast.viewerCount === 1, 'one viewer left');
    await t.connect();
    expect(t.screencast.viewerCount).toBe(2);
  });

  it('applies at most one quality change per second per viewer, the latest winning', async () => {
    const t = await harness(320, 192);
    const v = await t.connect();
    const e0 = t.encodes;
    v.send({ type: 'quality', value: 40 });
    await waitFor(() => t.encodes === e0 + 1, 'the full frame at 40');
    v.send({ type: 'quality', value: 50 });
    v.send({ type: 'quality', value: 60 });
    await new Promise((r) => setTimeout(r, 300));
    expect(t.encodes).toBe(e0 + 1);
    await waitFor(() => t.encodes === e0 + 2, 'the full frame at 60', 3000);
    await new Promise((r) => setTimeout(r, 300));
    expect(t.encodes).toBe(e0 + 2);
  });
});

describe('Screencast input', () => {
  it('maps pointer, wheel, key, paste and handoff to the session', async () => {
    const t = await harness(320, 192);
    const v = await t.connect();
    const ev = t.session.input.events;
    v.send({ type: 'pointer', x: 10.4, y: 20, buttons: 1 });
    v.send({ type: 'pointer', x: 5000, y: -3, buttons: 0 });
    v.send({ type: 'wheel', x: 30, y: 40, dx: 0, dy: 2 });
    v.send({ type: 'wheel', x: 30, y: 40, dx: -1, dy: -1 });
    v.send({ type: 'key', keysym: 0x61, down: true });
    v.send({ type: 'key', keysym: 0x61, down: false });
    v.send({ type: 'paste', text: 'héllo' });
    v.send({ type: 'handoff', outcome: 'done' });
    await waitFor(() => t.session.handoffs.length === 1, 'handoff');
    expect(ev).toEqual([
      ['pointer', 10, 20, 1],
      ['pointer', 319, 0, 0],
      // dy>0: X button 5 (mask bit 4), a press and a release per notch
      ['pointer', 30, 40, 16], ['pointer', 30, 40, 0],
      ['pointer', 30, 40, 16], ['pointer', 30, 40, 0],
      // dy<0: button 4 (bit 3); dx<0: button 6 (bit 5)
      ['pointer', 30, 40, 8], ['pointer', 30, 40, 0],
      ['pointer', 30, 40, 32], ['pointer', 30, 40, 0],
      ['key', 0x61, true],
      ['key', 0x61, false],
      ['clipboard', 'héllo'],
      ['key', 0xffe3, true], ['key', 0x76, true], ['key', 0x76, false], ['key', 0xffe3, false],
    ]);
    expect(t.session.handoffs).toEqual([['done', 'screencast']]);
  });

  it('keeps held buttons held across a wheel notch', async () => {
    const t = await harness();
    const v = await t.connect();
    v.send({ type: 'pointer', x: 1, y: 1, buttons: 1 });
    v.send({ type: 'wheel', x: 1, y: 1, dx: 1, dy: 0 });
    await waitFor(() => t.session.input.events.length === 3, 'input');
    expect(t.session.input.events).toEqual([['pointer', 1, 1, 1], ['pointer', 1, 1, 1 | 64], ['pointer', 1, 1, 1]]);
  });

  it('drops input from a view-only viewer silently and lets it watch', async () => {
    const t = await harness();
    t.session.canControl = false;
    const v = await t.connect();
    expect(v.texts_('state')[0].canControl).toBe(false);
    v.send({ type: 'pointer', x: 1, y: 1, buttons: 1 });
    v.send({ type: 'key', keysym: 0x61, down: true });
    v.send({ type: 'paste', text: 'x' });
    v.send({ type: 'handoff', outcome: 'failed' });
    t.fb.paint({ x: 0, y: 0, width: 64, height: 64 }, 0xffffff);
    await nextFrame(v, 1);
    expect(t.session.input.events).toEqual([]);
    expect(t.session.handoffs).toEqual([]);
    // Given control, its input goes through.
    v.handle.setControl(true);
    await waitFor(() => v.texts_('state').length === 2, 'state after control change');
    expect(v.texts_('state')[1].canControl).toBe(true);
    v.send({ type: 'key', keysym: 0x62, down: true });
    await waitFor(() => t.session.input.events.length === 1, 'input');
    expect(t.session.input.events).toEqual([['key', 0x62, true]]);
  });
});

describe('Screencast protocol errors', () => {
  const cases: Array<[string, string | Buffer, number]> = [
    ['bad JSON', '{"type":', 1008],
    ['an unknown type', JSON.stringify({ type: 'launch-missiles' }), 1008],
    ['a bad field type', JSON.stringify({ type: 'pointer', x: '1', y: 1, buttons: 0 }), 1008],
    ['an out-of-range value', JSON.stringify({ type: 'quality', value: 200 }), 1008],
    ['an ack for a frame never sent', JSON.stringify({ type: 'ack', seq: 99 }), 1008],
    ['a JSON array', '[1,2]', 1008],
    ['a text message over 1 MiB', JSON.stringify({ type: 'paste', text: 'x'.repeat((1 << 20) + 1) }), 1009],
    ['binary', Buffer.from([1, 2, 3]), 1008],
  ];
  for (const [what, message, code] of cases) {
    it(`closes only that socket with ${code} on ${what}`, async () => {
      const t = await harness();
      const bystander = await t.connect();
      const bad = await t.connect();
      if (Buffer.isBuffer(message)) bad.ws.send(message);
      else bad.ws.send(message);
      await waitFor(() => bad.closed !== undefined, 'close');
      expect(bad.closed!.code).toBe(code);
      const err = bad.texts_('error');
      expect(err).toEqual([{ type: 'error', code: code === 1009 ? 'message_too_big' : 'bad_request', message: expect.any(String) }]);
      expect(bad.handle.leaves).toBe(1);
      expect(t.screencast.viewerCount).toBe(1);
      // The other viewer is untouched: it still gets frames and its input still works.
      t.fb.paint({ x: 0, y: 0, width: 64, height: 64 }, 0xabcdef);
      await nextFrame(bystander, bystander.frames.at(-1)!);
      expect(bystander.closed).toBeUndefined();
    });
  }
});

describe('Screencast lifecycle', () => {
  it('re-sends state on session state changes and on control changes, only when it changed', async () => {
    const t = await harness();
    const v = await t.connect();
    t.session.setState({ attachment: 'human', handoff: { id: 'h1', reason: 'captcha', requested_at: '2025-01-01T00:00:00.000Z' } });
    await waitFor(() => v.texts_('state').length === 2, 'state');
    expect(v.texts_('state')[1]).toMatchObject({ attachment: 'human', handoff: { id: 'h1', reason: 'captcha' }, canControl: true });
    t.session.setState({}); // nothing changed: nothing sent
    v.handle.setControl(false);
    await waitFor(() => v.texts_('state').length === 3, 'control state');
    expect(v.texts_('state')[2].canControl).toBe(false);
  });

  it('sends ended and closes with 4000 when the session ends', async () => {
    const t = await harness();
    const v = await t.connect();
    v.handle.end('browser crashed');
    await waitFor(() => v.closed !== undefined, 'close');
    expect(v.closed).toEqual({ code: 4000, reason: 'browser crashed' });
    expect(v.texts.at(-1)).toEqual({ type: 'ended', reason: 'browser crashed' });
    expect(v.handle.leaves).toBe(1);
    expect(t.screencast.viewerCount).toBe(0);
  });

  it('subscribes to the framebuffer only while a viewer watches', async () => {
    const t = await harness();
    expect(t.fb.subscribers.size).toBe(0);
    const a = await t.connect();
    const b = await t.connect();
    expect(t.fb.subscribers.size).toBe(1);
    expect(t.fb.subscribeCount).toBe(1);
    expect(t.session.stateListenerCount).toBe(1);
    await a.close();
    await waitFor(() => t.screencast.viewerCount === 1, 'one viewer');
    expect(t.fb.subscribers.size).toBe(1);
    await b.close();
    await waitFor(() => t.screencast.viewerCount === 0, 'no viewer');
    expect(t.fb.subscribers.size).toBe(0);
    expect(t.session.stateListenerCount).toBe(0);
    expect(a.handle.leaves + b.handle.leaves).toBe(2);
    // Changes with nobody watching cost nothing; a new viewer starts afresh with the current picture.
    const encodes = t.encodes;
    t.fb.paint({ x: 0, y: 0, width: 64, height: 64 }, 0x00ff00);
    const c = await t.connect();
    expect(t.fb.subscribeCount).toBe(2);
    expect(t.encodes).toBe(encodes + 1);
    expect(c.maxDiff(t.fb.rgb())).toBeLessThanOrEqual(TOLERANCE);
  });

  it('close() ends every viewer with 4000, stops the work, and is idempotent', async () => {
    const t = await harness();
    const a = await t.connect();
    const b = await t.connect();
    await Promise.all([t.screencast.close(4000, 'session stopped'), t.screencast.close()]);
    await t.screencast.close();
    await waitFor(() => a.closed !== undefined && b.closed !== undefined, 'closed');
    for (const v of [a, b]) {
      expect(v.closed).toEqual({ code: 4000, reason: 'session stopped' });
      expect(v.texts.at(-1)).toEqual({ type: 'ended', reason: 'session stopped' });
      expect(v.handle.leaves).toBe(1);
    }
    expect(t.fb.subscribers.size).toBe(0);
    // A viewer arriving after close is told and turned away, without ever joining.
    const joined = t.session.handles.length;
    const late = new WebSocket(`ws://127.0.0.1:${Number(new URL(a.ws.url).port)}/`);
    expect(await new Promise<number>((r) => late.once('close', (code) => r(code)))).toBe(4000);
    expect(t.session.handles).toHaveLength(joined);
    expect(t.fb.subscribers.size).toBe(0);
  });
});

describe('Screencast encoder failure', () => {
  it('retries what a failed encode did not send, so the picture still ends up exact', async () => {
    let calls = 0;
    const { sharpJpeg } = await import('../../../src/liveview/screencast/jpeg.js');
    h = await new Harness(320, 192, {
      encoder: (p, q) => (++calls === 2 ? Promise.reject(new Error('boom')) : sharpJpeg(p, q)),
    }).start();
    const v = await h.connect();
    h.fb.paint({ x: 64, y: 64, width: 64, height: 64 }, 0xff8800); // this encode fails
    // Nothing else changes: the retry alone must bring the viewer up to date.
    await nextFrame(v, 1);
    expect(calls).toBe(3);
    await waitFor(() => v.maxDiff(h!.fb.rgb()) <= TOLERANCE, 'exact picture after a failed encode');
    expect(v.closed).toBeUndefined();
  });
});
