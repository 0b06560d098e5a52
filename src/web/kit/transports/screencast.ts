// The screencast transport (docs/screencast-protocol.md): JPEG tiles on a canvas, input as JSON.
import { h } from '../dom.js';
import { fitter } from '../input.js';
import { MAX_PASTE, parseTile, toFramebuffer, type Tile } from '../util.js';
import type { FocusHint, Link, TransportContext } from '../types.js';
import { frameClock } from '../quality.js';

export function screencast(ctx: TransportContext): Link {
  const ws = new WebSocket(ctx.ep.ws + '/screencast');
  ws.binaryType = 'arraybuffer';
  const canvas = h('canvas', { class: 'hk-surface', tabindex: '0', role: 'application', 'data-handoff-surface': true, 'aria-label': 'Remote browser screen' });
  canvas.width = ctx.info.width || 1280;
  canvas.height = ctx.info.height || 720;
  const g = canvas.getContext('2d')!;
  ctx.stage.replaceChildren(canvas);
  const fit = fitter(ctx.stage, canvas, () => [canvas.width, canvas.height]);

  let canControl = false;
  let drawing: Promise<unknown> = Promise.resolve();
  let endedReason = '';
  const sendText = (text: string) => { if (ws.readyState === WebSocket.OPEN) ws.send(text); };
  const send = (msg: unknown) => sendText(JSON.stringify(msg));
  const clock = frameClock((patch) => ctx.current() && ctx.update(patch), () => ctx.status);
  const input = ctx.input(canvas, {
    canControl: () => canControl,
    point: (x, y) => toFramebuffer(x, y, canvas.getBoundingClientRect(), canvas.width, canvas.height),
    pointer: (x, y, buttons) => (clock.input(), send({ type: 'pointer', x, y, buttons })),
    wheel: (x, y, dx, dy) => (clock.input(), send({ type: 'wheel', x, y, dx, dy })),
    key: (keysym, down) => (clock.input(), send({ type: 'key', keysym, down })),
    paste(text) {
      const msg = JSON.stringify({ type: 'paste', text });
      if (new Blob([msg]).size > MAX_PASTE) return false;
      sendText(msg);
      return true;
    },
  });

  ws.onmessage = (ev) => {
    if (!ctx.current()) return;
    if (typeof ev.data !== 'string') {
      const atlas = parseAtlas(ev.data);
      return atlas ? drawAtlas(atlas) : drawTile(parseTile(ev.data));
    }
    let msg: Record<string, any>;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    if (msg.type === 'hello') {
      // One JPEG per frame (kind 3) instead of one per tile: fewer encodes on the host.
      send({ type: 'format', atlas: true });
      ctx.connected();
      if (msg.width !== canvas.width || msg.height !== canvas.height) {
        canvas.width = msg.width;
        canvas.height = msg.height;
        fit();
      }
    } else if (msg.type === 'state') {
      canControl = !!msg.canControl;
      if (!canControl) input.release();
      ctx.update({ state: canControl ? 'live' : 'view-only', canControl, attachment: msg.attachment, handoff: msg.handoff || null, viewers: msg.viewers || null, message: '' });
      if (typeof msg.downloads === 'number') ctx.downloadsChanged(msg.downloads);
      ctx.pages.state(msg.tabs || [], msg.fileRequest || null);
    } else if (msg.type === 'focus') {
      ctx.pages.focus(msg as FocusHint);
    } else if (msg.type === 'clipboard') {
      ctx.pages.clipboard(msg.text);
    } else if (msg.type === 'file_done' || (msg.type === 'error' && msg.request)) {
      ctx.pages.fileAnswer(msg as { type: string });
    } else if (msg.type === 'ended') {
      endedReason = msg.reason || '';
    } else if (msg.type === 'error') {
      ctx.update({ message: 'The host refused the viewer: ' + (msg.message || msg.code) });
    }
  };
  ws.onclose = (ev) => {
    if (!ctx.current()) return;
    if (ev.code === 4000) ctx.finish('ended', 'The session has ended' + (endedReason || ev.reason ? ': ' + (endedReason || ev.reason) : '') + '.');
    else ctx.retry(ev.code === 1008 || ev.code === 1009 ? 'The connection was refused (' + (ev.reason || ev.code) + ').' : 'Connection lost.');
  };

  // Tiles decode in parallel and draw in order; the frame is acked once its last tile is drawn,
  // even if a tile fails to decode, so the server never waits for us forever.
  function drawTile(t: Tile | null): void {
    if (!t) return;
    const bitmap = createImageBitmap(new Blob([t.jpeg as BlobPart], { type: 'image/jpeg' }));
    drawing = drawing
      .then(() => bitmap)
      .then((b) => { g.drawImage(b, t.x, t.y); b.close(); })
      .catch(() => {})
      .then(() => {
        if (t.kind !== 2 || !ctx.current()) return;
        send({ type: 'ack', seq: t.seq });
        clock.frame();
      });
  }

  // An atlas frame: one JPEG holding every changed rect, each drawn (scaled back) at its place.
  function drawAtlas(a: Atlas): void {
    const bitmap = createImageBitmap(new Blob([a.jpeg as BlobPart], { type: 'image/jpeg' }));
    drawing = drawing
      .then(() => bitmap)
      .then((b) => {
        for (const e of a.entries) g.drawImage(b, e[4], e[5], e[6], e[7], e[0], e[1], e[2], e[3]);
        b.close();
      })
      .catch(() => {})
      .then(() => {
        if (!ctx.current()) return;
        send({ type: 'ack', seq: a.seq });
        clock.frame();
      });
  }

  return {
    sendHandoff: (outcome) => send({ type: 'handoff', outcome }),
    page: { send, buffered: () => ws.bufferedAmount },
    close() {
      input.stop();
      clock.stop();
      fit.stop();
      ws.onclose = ws.onmessage = null;
      ws.close(1000);
    },
  };
}

interface Atlas {
  seq: number;
  /** dx, dy, dw, dh, sx, sy, sw, sh per rect. */
  entries: number[][];
  jpeg: Uint8Array;
}

/** Kind 3 (docs/screencast-protocol.md): u8 3, u32 seq, u16 count, u8 0, count x 8 u16, JPEG. */
function parseAtlas(buffer: ArrayBuffer): Atlas | null {
  if (buffer.byteLength < 8) return null;
  const v = new DataView(buffer);
  if (v.getUint8(0) !== 3) return null;
  const count = v.getUint16(5);
  const head = 8 + count * 16;
  if (buffer.byteLength <= head) return null;
  const entries: number[][] = [];
  for (let i = 0; i < count; i++) {
    const e: number[] = [];
    for (let k = 0; k < 8; k++) e.push(v.getUint16(8 + i * 16 + k * 2));
    entries.push(e);
  }
  return { seq: v.getUint32(1), entries, jpeg: new Uint8Array(buffer, head) };
}
