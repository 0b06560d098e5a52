import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';
import { chromium } from 'playwright-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { alive, api, ownedRows, waitFor } from '../helpers/client.js';
import { startPageServer, DOWNLOAD_BYTES, FILE_INPUT_HTML, type PageServer } from '../helpers/pages.js';

/**
 * The warm pool (issue 14 part 1): spare-served and cold sessions side by side on one daemon
 * with the pool on (--warm 1) and room for two sessions.
 */
describe('warm pool (--warm 1, --max-sessions 2)', () => {
  let daemon: RunningDaemon;
  let pages: PageServer;

  beforeAll(async () => {
    pages = await startPageServer();
    daemon = await startDaemon({ args: ['--warm', '1', '--max-sessions', '2'] });
  });

  afterAll(async () => {
    await daemon?.cleanup();
    await pages?.close();
  });

  const health = async () => (await api(daemon.url, '/health')).body;
  const spareReady = () => waitFor('a spare ready', async () => (await health()).warm?.spares === 1, 60_000);
  const info = async (id: string) => (await api(daemon.url, `/session/${id}`)).body;
  const created = async (id: string) => ((await api(daemon.url, `/audit?session_id=${id}&type=session_created`)).body.events as any[])[0];
  const spareChromium = () => ownedRows(daemon.stateDir).filter((r) => r.session_id.startsWith('spare-') && r.kind === 'chromium');

  /** The audit rows of a session (one run) all carry its id and run id. */
  async function checkRows(id: string, runId: string, types: string[]): Promise<void> {
    const rows = (await api(daemon.url, `/audit?session_id=${id}`)).body.events as any[];
    for (const r of rows) expect([r.session_id, r.run_id]).toEqual([id, runId]);
    expect(rows.map((r) => r.type)).toEqual(expect.arrayContaining(types));
  }

  it('a create arriving while the spare still starts takes that spare (no second browser start)', async () => {
    expect((await health()).warm.spares).toBe(0); // the daemon just started: its first spare is on its way
    const browser = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=early`, defaultViewport: null });
    const page = (await browser.pages())[0]!;
    await page.goto(`${pages.url}/other`);
    expect(await page.$eval('#p', (el) => el.textContent)).toBe('other page');
    expect((await created('early')).detail.spare).toBe(true);
    await browser.disconnect();
    await waitFor('early stopped', async () => (await info('early')).state === 'stopped');
  });

  it('/health and /metrics show the spare', async () => {
    await spareReady();
    expect((await health()).warm).toEqual({ spares: 1, target: 1 });
    const metrics = (await api(daemon.url, '/metrics')).body as string;
    expect(metrics).toMatch(/^handoff_warm_spares 1$/m);
    expect(metrics).toMatch(/^handoff_warm_target 1$/m);
  });

  it('Puppeteer: a spare-served session and a cold one pass the flow with the right ids, run ids and audit rows; the spare-served one downloads into its own dir and sets a cookie and localStorage', async () => {
    for (const [id, query, spare] of [
      ['pptr-warm', '', true],
      ['pptr-cold', '&width=1024&height=700', false],
    ] as const) {
      await spareReady();
      const before = spareChromium()[0]!;
      const browser = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=${id}${query}`, defaultViewport: null });
      const page = (await browser.pages())[0]!;
      await page.goto(`${pages.url}/form`);
      await page.click('#btn');
      expect(await page.$eval('#out', (el) => el.textContent)).toBe('clicked 1');
      expect(await page.evaluate(() => [innerWidth, innerHeight])).toEqual(spare ? [1280, 720] : [1024, 700]);
      if (spare) {
        await page.evaluate(() => {
          document.cookie = 'secret=from-a; Max-Age=86400; Path=/';
          localStorage.setItem('secret', 'from-a');
        });
        // A download lands in STATE/downloads/ID, as a cold session's.
        await page.goto(`${pages.url}/download`);
        await page.click('#dl');
        const file = await waitFor('the download listed', async () => ((await api(daemon.url, `/session/${id}/downloads`)).body.files as any[]).find((f) => f.name === 'report.txt'));
        expect(file.size).toBe(DOWNLOAD_BYTES.length);
        expect(existsSync(join(daemon.stateDir, 'downloads', id, 'report.txt'))).toBe(true);
        // The spare's browser is now this session's, journaled under its id.
        expect(ownedRows(daemon.stateDir, id).map((r) => r.pid)).toContain(before.pid);
      }
      const s = await info(id);
      expect(s).toMatchObject({ session_id: id, state: 'ready', attachment: 'agent', profile: null });
      expect((await created(id)).detail).toMatchObject({ spare, width: spare ? 1280 : 1024 });
      await browser.disconnect(); // auto_close: the session stops
      await waitFor(`${id} stopped`, async () => (await info(id)).state === 'stopped');
      await checkRows(id, s.run_id, ['session_created', 'cloud_browser_agent_attach', 'cloud_browser_agent_detach', 'session_stopped']);
    }
  });

  it('Playwright (3.2 create): a spare-served session and a cold one pass the flow; the spare-served one has no cookie of the last, and an upload\'s path works in its page', async () => {
    for (const [query, spare] of [
      ['', true],
      ['&width=1100', false],
    ] as const) {
      await spareReady();
      const c = await api(daemon.url, `/devtools/browser?keep_alive=60000${query}`, { method: 'POST' });
      expect(c.status).toBe(200);
      const id = c.body.sessionId as string;
      const browser = await chromium.connectOverCDP(c.body.webSocketDebuggerUrl);
      const context = browser.contexts()[0]!;
      const page = context.pages()[0]!;
      await page.goto(`${pages.url}/form`);
      await page.click('#btn');
      expect(await page.textContent('#out')).toBe('clicked 1');
      expect(await page.evaluate(() => [document.cookie, localStorage.getItem('secret')])).toEqual(['', null]);
      expect(await context.cookies()).toEqual([]);
      const s = await info(id);
      expect(s).toMatchObject({ session_id: id, state: 'ready', width: spare ? 1280 : 1100 });
      expect((await created(id)).detail.spare).toBe(spare);
      if (spare) {
        // The path given works in the page (the sandbox bound the spare's dir; the file is in STATE/uploads/ID).
        const up = await api(daemon.url, `/session/${id}/uploads?name=a.txt`, { method: 'POST', body: Buffer.from('warm upload') });
        expect(up.status).toBe(200);
        expect(existsSync(join(daemon.stateDir, 'uploads', id, 'a.txt'))).toBe(true);
        await page.setContent(FILE_INPUT_HTML);
        await page.setInputFiles('#f', up.body.path);
        await waitFor('the page read the file', () => page.evaluate(() => (window as any).got.length === 1));
        expect(await page.evaluate(() => (window as any).got[0][0])).toEqual({ name: 'a.txt', b64: Buffer.from('warm upload').toString('base64') });
      }
      await browser.close();
      await api(daemon.url, `/devtools/browser/${id}`, { method: 'DELETE' });
      await waitFor(`${id} stopped`, async () => (await info(id)).state === 'stopped');
      await checkRows(id, s.run_id, ['session_created', 'cloud_browser_agent_attach', 'session_stopped']);
    }
  });

  it('at the session limit a spare is given up before a create is refused', async () => {
    await spareReady();
    const one = await api(daemon.url, '/devtools/browser?width=1000', { method: 'POST' });
    expect(one.status).toBe(200);
    // 1 live + 1 spare = the limit: this cold create takes the spare's room.
    const two = await api(daemon.url, '/devtools/browser?width=1000', { method: 'POST' });
    expect(two.status).toBe(200);
    expect((await health()).warm.spares).toBe(0);
    const three = await api(daemon.url, '/devtools/browser', { method: 'POST' });
    expect(three.status).toBe(503);
    expect(three.body.error.code).toBe('too_many_sessions');
    for (const id of [one.body.sessionId, two.body.sessionId]) await api(daemon.url, `/devtools/browser/${id}`, { method: 'DELETE' });
  });

  it('a spare whose browser is killed is replaced, never handed out', async () => {
    await spareReady();
    const dead = spareChromium()[0]!;
    process.kill(-dead.pid!, 'SIGKILL'); // its whole process group: bwrap and Chromium
    await waitFor('a new spare', async () => (await health()).warm.spares === 1 && spareChromium().some((r) => r.pid !== dead.pid), 60_000);
    expect(alive(dead.pid!)).toBe(false);
    const next = spareChromium()[0]!;
    const browser = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=after-kill`, defaultViewport: null });
    const page = (await browser.pages())[0]!;
    await page.goto(`${pages.url}/other`);
    expect(await page.$eval('#p', (el) => el.textContent)).toBe('other page');
    expect((await created('after-kill')).detail.spare).toBe(true);
    expect(ownedRows(daemon.stateDir, 'after-kill').map((r) => r.pid)).toContain(next.pid);
    await browser.disconnect();
    await waitFor('after-kill stopped', async () => (await info('after-kill')).state === 'stopped');
  });
});
