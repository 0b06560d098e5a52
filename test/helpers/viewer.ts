import type { Browser, Page } from 'puppeteer-core';

/** Opens a live view URL in a tab of the viewer browser and waits for one of `states`. */
export async function openViewer(browser: Browser, url: string, states = ['live', 'view-only']): Promise<Page> {
  const page = await browser.newPage();
  await page.setViewport({ width: 1000, height: 700 });
  await page.goto(url);
  await waitState(page, states);
  return page;
}

export async function waitState(page: Page, states: string[], timeout = 20_000): Promise<string> {
  const sel = states.map((s) => `[data-handoff-state="${s}"]`).join(',');
  await page.waitForSelector(sel, { timeout });
  return page.$eval('[data-handoff-state]', (el) => el.getAttribute('data-handoff-state')!);
}

/** Where framebuffer point (fx, fy) is on the viewer's scaled surface, in page pixels. */
export async function surfacePoint(page: Page, fx: number, fy: number, fb = { width: 1280, height: 720 }): Promise<{ x: number; y: number }> {
  const r = await page.$eval('[data-handoff-surface]', (el) => {
    const b = el.getBoundingClientRect();
    return { x: b.x, y: b.y, w: b.width, h: b.height };
  });
  return { x: r.x + ((fx + 0.5) * r.w) / fb.width, y: r.y + ((fy + 0.5) * r.h) / fb.height };
}

export async function clickSurface(page: Page, fx: number, fy: number): Promise<void> {
  const p = await surfacePoint(page, fx, fy);
  await page.mouse.click(p.x, p.y);
}

/** The colour the viewer's canvas shows at framebuffer point (fx, fy). */
export function canvasPixel(page: Page, fx: number, fy: number): Promise<[number, number, number]> {
  return page.$eval(
    'canvas[data-handoff-surface]',
    (el, x, y) => {
      const c = el as HTMLCanvasElement;
      const d = c.getContext('2d')!.getImageData(x, y, 1, 1).data;
      return [d[0]!, d[1]!, d[2]!] as [number, number, number];
    },
    fx,
    fy,
  );
}

export function near(a: [number, number, number], b: [number, number, number], tolerance = 40): boolean {
  return a.every((v, i) => Math.abs(v - b[i]!) <= tolerance);
}
