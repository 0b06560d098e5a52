import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';

/** Issue 10 item 2 (README "Disk"): the free-space floor, the download quota, the recording cap. */
describe('disk limits', () => {
  let d: RunningDaemon;
  let files: Server;
  let filesUrl: string;

  beforeAll(async () => {
    // A 3 MB download, sent slowly so it is still running when the quota is checked.
    files = createServer((req, res) => {
      if (req.url === '/big.bin') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 3 * 1024 * 1024, 'content-disposition': 'attachment; filename="big.bin"' });
        let sent = 0;
        const t = setInterval(() => {
          if (res.destroyed || sent >= 12) return void (clearInterval(t), res.end());
          res.write(Buffer.alloc(256 * 1024, 7));
          sent++;
        }, 100);
        res.on('close', () => clearInterval(t));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html' }).end('<a id=dl href="/big.bin" download>big</a>');
    });
    await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
    filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
    d = await startDaemon({ args: ['--max-download-mb', '1', '--max-recording-mb', '1'] });
  });
  afterAll(async () => {
    await d?.cleanup();
    files?.closeAllConnections();
    files?.close();
  });

  it('below the free-space floor a new session is refused with 507 insufficient_storage', async () => {
    // A floor no disk here meets: the same check as a full one.
    const floor = await startDaemon({ args: ['--min-free-mb', String(1 << 24)] });
    try {
      const r = await api(floor.url, '/devtools/browser?session=nospace', { method: 'POST' });
      expect(r.status).toBe(507);
      expect(r.body.error.code).toBe('insufficient_storage');
      expect(r.body.error.message).toMatch(/MB free under the state dir/);
      await expect(puppeteer.connect({ browserWSEndpoint: `${floor.wsUrl}/?session=nospace2` })).rejects.toThrow(/507/);
      expect((await api(floor.url, '/sessions')).body).toEqual({ sessions: [] });
    } finally {
      await floor.cleanup();
    }
  });

  it('a download past --max-download-mb is cancelled, removed, audited, and the agent hears "canceled"', async () => {
    const browser = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=dl&auto_close=false`, defaultViewport: null });
    try {
      const page = (await browser.pages())[0]!;
      const cdp = await browser.target().createCDPSession();
      const states: string[] = [];
      cdp.on('Browser.downloadProgress', (e) => states.push(e.state));
      await cdp.send('Browser.setDownloadBehavior', { behavior: 'default', eventsEnabled: true });
      await page.goto(`${filesUrl}/`);
      await page.click('#dl');
      const row = await waitFor('the download_cancelled row', async () => (await api(d.url, '/audit?session_id=dl&type=download_cancelled')).body.events[0]);
      expect(row.detail).toMatchObject({ name: 'big.bin', limit: 'session', limit_bytes: 1024 * 1024 });
      await waitFor('the agent told', () => states.includes('canceled'));
      const dir = join(d.stateDir, 'downloads', 'dl');
      await waitFor('no partial file left', () => !existsSync(dir) || readdirSync(dir).length === 0);
      expect((await api(d.url, '/session/dl/downloads')).body.files).toEqual([]);
    } finally {
      await browser.disconnect();
    }
  });

  it('a recording stops growing at --max-recording-mb and the session goes on', async () => {
    const browser = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=rec&debug=true&auto_close=false`, defaultViewport: null });
    try {
      const page = (await browser.pages())[0]!;
      // Noise on every frame: x264 cannot make that small.
      await page.setContent(`<canvas id=c width=1280 height=720></canvas><script>
        const c = document.getElementById('c').getContext('2d'); const img = c.createImageData(1280, 720);
        (function draw() { for (let i = 0; i < img.data.length; i++) img.data[i] = Math.random() * 255; c.putImageData(img, 0, 0); requestAnimationFrame(draw); })();
      </script>`);
      const dir = join(d.stateDir, 'recordings', 'rec');
      const size = () => (existsSync(dir) ? readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0) : 0);
      await waitFor('the recording reaches the cap', () => size() >= 1024 * 1024, 45_000);
      // ffmpeg's -fs stops at the first 1 s fragment past the cap (on a loaded machine it may
      // still be writing that fragment now): the file then stops growing for good.
      let last = -1;
      await waitFor('the recording stops growing', async () => {
        const now = size();
        const stable = now === last;
        last = now;
        if (!stable) await new Promise((r) => setTimeout(r, 2000));
        return stable;
      }, 60_000);
      await new Promise((r) => setTimeout(r, 3000));
      expect(size()).toBe(last);
      expect(size()).toBeLessThan(10 * 1024 * 1024);
      expect(await page.evaluate(() => 1 + 1)).toBe(2);
      expect((await api(d.url, '/session/rec')).body.state).toBe('ready');
    } finally {
      await browser.disconnect();
    }
  });
});
