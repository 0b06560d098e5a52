import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import puppeteer from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';
import { freePort } from '../helpers/vnc.js';
import { Enc, RawRfb } from '../helpers/vnc-raw.js';

/**
 * RFC 6143 7.8.1 Cursor pseudo-encoding with the session's real X cursor (XFIXES): a raw RFB
 * client moves the pointer over a link in Chromium and gets a different shape (the hand), and
 * the arrow again when it moves off.
 */
let d: RunningDaemon;
let vncPort: number;
const leaks = new LeakTracker();
let client: RawRfb | null = null;

const PASSWORD = 'cursorpw';
const PAGE = `<!doctype html><body style="margin:0;background:#fff">
  <a href="#x" style="position:absolute;left:0;top:0;width:400px;height:400px;display:block;background:#ddd"></a>
</body>`;
/** The stand-in arrow (cursor.ts) is 12x19 with its hotspot at the tip. */
const STAND_IN = '12x19@0,0';

beforeAll(async () => {
  vncPort = await freePort();
  d = await startDaemon({ args: ['--vnc-port', String(vncPort)] });
});

afterAll(async () => {
  client?.destroy();
  await d?.cleanup();
  expect(leaks.leftovers()).toEqual([]);
});

describe('VNC cursor shape', () => {
  it('follows the X cursor: a hand over a link, the arrow again off it', async () => {
    const browser = await puppeteer.connect({
      browserWSEndpoint: `${d.wsUrl}/?session=cur&auto_close=false&enable_vnc=true&vnc_password=${PASSWORD}`,
      defaultViewport: null,
    });
    const page = (await browser.pages())[0]!;
    leaks.note(d.stateDir);
    await page.setContent(PAGE);
    await browser.disconnect();
    expect((await api(d.url, '/session/cur/wait?attachment=none&timeout_ms=10000')).status).toBe(200);

    const c = (client = await RawRfb.connect(vncPort, PASSWORD));
    c.setEncodings([Enc.ZRLE, Enc.Cursor]);
    // Keeps a request outstanding: every cursor change comes back with the next update.
    void (async () => {
      c.request(false);
      for (;;) {
        await c.readUpdate();
        c.request(true);
      }
    })().catch(() => {});
    const shape = () => {
      const k = c.cursor;
      if (!k) return null;
      const digest = crypto.createHash('sha1').update(k.pixels).update(k.mask).digest('hex').slice(0, 12);
      return { size: `${k.w}x${k.h}@${k.x},${k.y}`, digest, opaque: k.mask.reduce((n, b) => n + popcount(b), 0) };
    };
    const key = (s: ReturnType<typeof shape>) => (s ? `${s.size}:${s.digest}` : null);

    c.pointer(900, 500, 0);
    const arrow = await waitFor('the real arrow', () => {
      const s = shape();
      return s && s.size !== STAND_IN && s.opaque > 0 ? s : null;
    });
    c.pointer(200, 200, 0);
    const hand = await waitFor('a new shape over the link', () => {
      const s = shape();
      return s && key(s) !== key(arrow) ? s : null;
    });
    expect(hand.size).not.toBe(STAND_IN);
    expect(hand.opaque).toBeGreaterThan(20);
    c.pointer(900, 500, 0);
    await waitFor('the arrow again', () => key(shape()) === key(arrow));
  });
});

function popcount(b: number): number {
  let n = 0;
  for (; b; b &= b - 1) n++;
  return n;
}
