/**
 * Issue 4: input to screen, measured in the viewer. A real headless Chromium runs the live
 * view page against the real daemon; each sample presses the mouse on the viewer's canvas
 * and counts the time until the canvas shows the page's reaction (the page turns its
 * background another colour on every mousedown).
 */
import puppeteer from 'puppeteer-core';
import { startDaemon } from '../test/helpers/daemon.js';
import { stats, fmt } from './lib.js';
import type { Row } from './core.js';

const SAMPLES = 30;
const PAGE =
  'data:text/html,' +
  encodeURIComponent(`<body style="margin:0;background:rgb(255,0,0)"><script>
  const colours = ['rgb(0,0,255)', 'rgb(255,0,0)']; let i = 0;
  addEventListener('mousedown', () => { document.body.style.background = colours[i++ % 2]; });
</script></body>`);

export async function benchInputLatency(log: (s: string) => void): Promise<Row[]> {
  const daemon = await startDaemon();
  const viewer = await puppeteer.launch({ executablePath: '/usr/lib/chromium/chromium', headless: true, args: ['--no-sandbox'] });
  try {
    const agent = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=latency&auto_close=false`, defaultViewport: null });
    await (await agent.pages())[0]!.goto(PAGE);
    await agent.disconnect();
    const { url } = (await (await fetch(`${daemon.url}/session/latency/live?kind=view`)).json()) as { url: string };
    const page = await viewer.newPage();
    await page.setViewport({ width: 1280, height: 760 });
    await page.goto(url);
    await page.waitForSelector('[data-handoff-state="live"]', { timeout: 20_000 });
    await new Promise((r) => setTimeout(r, 1000));
    log(`input to screen (${SAMPLES} clicks)...`);
    // In the viewer: when the mouse goes down on the canvas (a real, trusted press), note the
    // time and watch the canvas every animation frame until the pixel under it changes.
    await page.evaluate(`(() => {
      const canvas = document.querySelector('canvas[data-handoff-surface]');
      const ctx = canvas.getContext('2d', { willReadFrequently: true });
      window.samples = [];
      canvas.addEventListener('pointerdown', (ev) => {
        const r = canvas.getBoundingClientRect();
        const x = Math.floor(((ev.clientX - r.x) / r.width) * canvas.width);
        const y = Math.floor(((ev.clientY - r.y) / r.height) * canvas.height);
        const px = () => ctx.getImageData(x, y, 1, 1).data.slice(0, 3).join();
        const before = px();
        const t0 = performance.now();
        const check = () => (px() !== before ? window.samples.push(performance.now() - t0) : requestAnimationFrame(check));
        requestAnimationFrame(check);
      }, { capture: true });
    })()`);
    const box = (await (await page.$('canvas[data-handoff-surface]'))!.boundingBox())!;
    for (let i = 0; i < SAMPLES; i++) {
      await page.mouse.move(box.x + box.width * 0.25, box.y + box.height * 0.25);
      await page.mouse.down();
      await page.waitForFunction(`window.samples.length === ${i + 1}`, { timeout: 10_000 });
      await page.mouse.up();
      await new Promise((r) => setTimeout(r, 100));
    }
    const samples = (await page.evaluate('window.samples')) as number[];
    const s = stats(samples);
    return [
      { figure: 'input to screen p50 (ms), viewer click -> frame showing it', handoff: fmt(s.p50, 0), reference: '', ratio: '', target: '<= 80', ok: s.p50 <= 80 },
      { figure: 'input to screen p95 (ms)', handoff: fmt(s.p95, 0), reference: '', ratio: '', target: 'report', ok: null },
    ];
  } finally {
    await viewer.close();
    await daemon.cleanup();
  }
}
