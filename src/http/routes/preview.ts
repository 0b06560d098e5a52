import sharp from 'sharp';
import { int } from '../../sessions/params.js';
import { sendJson, type HttpServer } from '../server.js';
import { sessionById, type Services } from './context.js';
import type { Session } from '../../sessions/session.js';

type Subscriber = ReturnType<Session['framebuffer']['subscribe']>;

const MAX_WIDTH = 640;

/**
 * `GET /session/ID/preview?width=N` (API key, read-only): what the dashboard's card shows, the
 * page's title and URL, its tabs' titles and a small JPEG of the screen, taken from the framebuffer when asked (the
 * dashboard asks only while it is visible). Nothing is attached, audited or counted as a viewer.
 */
export function previewRoutes(http: HttpServer, s: Services): void {
  http.route('GET', '/session/:id/preview', async (ctx, res) => {
    const session = sessionById(s, ctx.params.id!, { live: true });
    const width = int(ctx.url.searchParams, 'width', 320, 16, MAX_WIDTH);
    const page = session.targets().find((t) => t.type === 'page');
    const jpeg = await thumbnail(session.framebuffer.subscribe(), width);
    // The card's tab strip (issue 11 item 2): titles only.
    const tabs = (session.pages?.tabs ?? []).map((t) => ({ title: t.title, visible: t.visible, agent: t.agent }));
    sendJson(res, 200, { title: page?.title ?? '', url: page?.url ?? '', tabs, thumbnail: `data:image/jpeg;base64,${jpeg.toString('base64')}` });
  });
}


/** The screen scaled down to `width` (nearest pixel: a thumbnail), as a JPEG. */
async function thumbnail(sub: Subscriber, width: number): Promise<Buffer> {
  let rgb: Buffer;
  let w: number;
  let h: number;
  try {
    const f = sub.frame();
    w = Math.min(width, f.width);
    h = Math.max(1, Math.round((f.height * w) / f.width));
    rgb = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) {
      const row = Math.floor((y * f.height) / h) * f.stride;
      for (let x = 0; x < w; x++) {
        const src = row + Math.floor((x * f.width) / w) * 4; // B, G, R, X
        const dst = (y * w + x) * 3;
        rgb[dst] = f.data[src + 2]!;
        rgb[dst + 1] = f.data[src + 1]!;
        rgb[dst + 2] = f.data[src]!;
      }
    }
  } finally {
    sub.close();
  }
  return sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 70 }).toBuffer();
}
