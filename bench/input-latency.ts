/**
 * Issue 4: input to screen, measured in the viewer. A real headless Chromium runs the live
 * view page against the real daemon; each sample presses the mouse on the viewer's canvas
 * and counts the time until the canvas shows the page's reaction (the page turns its
 * background another colour on every mousedown). The same on the phone viewer, with taps.
 */
import puppeteer, { type Browser } from 'puppeteer-core';
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
    const desktop = await samplesOn(viewer, daemon.url, 'desktop', log);
    const phone = await samplesOn(viewer, daemon.url, 'phone', log);
    return [
      { figure: 'input to screen p50 (ms), viewer click -> frame showing it', handoff: fmt(desktop.p50, 0), reference: '', ratio: '', target: '<= 80', ok: desktop.p50 <= 80 },
      { figure: 'input to screen p95 (ms)', handoff: fmt(desktop.p95, 0), reference: '', ratio: '', target: 'report', ok: null },
      { figure: 'phone viewer (390x844, touch): tap -> frame showing it, p50 / p95 (ms)', handoff: `${fmt(phone.p50, 0)} / ${fmt(phone.p95, 0)}`, reference: '', ratio: '', target: 'report', ok: null },
    ];
  } finally {
    await viewer.close();
    await daemon.cleanup();
  }
}

/**
 * One viewer tab: on the desktop a mouse press, on a phone (mobile emulation) a tap, which the
 * viewer sends when the finger lifts (a finger that moves scrolls instead): the clock starts
 * at the press, or at the lift for a tap, i.e. when the viewer sends the input.
 */
async function samplesOn(viewer: Browser, daemonUrl: string, device: 'desktop' | 'phone', log: (s: string) => void) {
  const { url } = (await (await fetch(`${daemonUrl}/session/latency/live?kind=control`)).json()) as { url: string };
  const page = await viewer.newPage();
  try {
    if (device === 'phone') {
      await page.emulate({
        userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36',
        viewport: { width: 390, height: 844, deviceScaleFactor: 3, isMobile: true, hasTouch: true },
      });
    } else {
      await page.setViewport({ width: 1280, height: 760 });
    }
    await page.goto(url);
    await page.waitForSelector('[data-handoff-state="live"]', { timeout: 20_000 });
    await new Promise((r) => setTimeout(r, 1000));
    log(`input to screen on the ${device} viewer (${SAMPLES} ${device === 'phone' ? 'taps' : 'clicks'})...`);
    // In the viewer: when the input is sent (a real, trusted press or tap), note the time and
    // watch the canvas every animation frame until the pixel under it changes.
    await page.evaluate(`(() => {
      const canvas = document.querySelector('canvas[data-handoff-surface]');
      const ctx = canvas.getContext('2d', { willReadFrequently: true });
      window.samples = [];
      canvas.addEventListener(${JSON.stringify(device === 'phone' ? 'pointerup' : 'pointerdown')}, (ev) => {
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
    const [x, y] = [box.x + box.width * 0.25, box.y + box.height * 0.25];
    for (let i = 0; i < SAMPLES; i++) {
      if (device === 'phone') {
        await page.touchscreen.tap(x, y);
      } else {
        await page.mouse.move(x, y);
        await page.mouse.down();
      }
      await page.waitForFunction(`window.samples.length === ${i + 1}`, { timeout: 10_000 });
      if (device === 'desktop') await page.mouse.up();
      await new Promise((r) => setTimeout(r, 100));
    }
    return stats((await page.evaluate('window.samples')) as number[]);
  } finally {
    await page.close();
  }
}
