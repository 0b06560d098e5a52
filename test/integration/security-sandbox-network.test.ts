import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api } from '../helpers/client.js';
import { startPageServer, type PageServer } from '../helpers/pages.js';
import { LeakTracker } from '../helpers/leaks.js';

/**
 * The sandbox shares the host network, so a session's own browser could reach the daemon:
 * another session's files and control link, or the dashboard (then same-origin with the
 * daemon). Every session Chromium runs under a managed policy blocking the daemon's port on
 * every host (README "What a session can see"). The attacker is a page session A visits,
 * served on another loopback address; session B is the victim.
 */
let d: RunningDaemon;
let a: Browser;
let b: Browser;
let page: Page;
let evil: Server;
let evilUrl: string;
let pages: PageServer;
const leaks = new LeakTracker();
const A = 'netA';
const B = 'netB';
const SECRET = 'b-secret-download-9d2e';
/** Chromium's page for a URL the policy blocks. */
const BLOCKED = /ERR_BLOCKED_BY_ADMINISTRATOR|organization doesn.t allow/;

beforeAll(async () => {
  d = await startDaemon();
  pages = await startPageServer();
  const daemon = `http://127.0.0.1:${d.port}`;
  // The attacker's pages: each does one thing to the daemon by itself once loaded.
  const html: Record<string, string> = {
    '/nav-live': `<script>location = '${daemon}/session/${B}/live';</script>`,
    '/nav-download': `<script>location = '${daemon}/session/${B}/downloads/secret.txt';</script>`,
    '/iframe': `<iframe id="f" src="${daemon}/"></iframe>`,
    '/blank': `<p>attacker</p>`,
  };
  evil = createServer((req, res) => {
    const body = html[(req.url ?? '/').split('?')[0]!];
    res.writeHead(body ? 200 : 404, { 'content-type': 'text/html' }).end(body ?? 'not found');
  });
  await new Promise<void>((r) => evil.listen(0, '127.0.0.2', r));
  evilUrl = `http://127.0.0.2:${(evil.address() as AddressInfo).port}`;
  b = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=${B}&auto_close=false`, defaultViewport: null });
  a = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=${A}&auto_close=false`, defaultViewport: null });
  page = (await a.pages())[0]!;
  leaks.note(d.stateDir, A);
  leaks.note(d.stateDir, B);
  // B has downloaded a file A must not get.
  mkdirSync(join(d.stateDir, 'downloads', B), { recursive: true });
  writeFileSync(join(d.stateDir, 'downloads', B, 'secret.txt'), SECRET);
});

afterAll(async () => {
  await a?.disconnect();
  await b?.disconnect();
  await d?.cleanup();
  await pages?.close();
  await new Promise<void>((r) => (evil ? (evil.closeAllConnections(), evil.close(() => r())) : r()));
  expect(leaks.leftovers()).toEqual([]);
});

async function liveUrlsIssuedForB(): Promise<number> {
  return (await api(d.url, `/audit?session_id=${B}&type=live_url_issued`)).body.events.length;
}

/** The text a frame shows once it shows any (an error page renders a little after the load fails), or ''. */
async function textOf(f: { evaluate: Page['evaluate'] }): Promise<string> {
  for (let i = 0; i < 50; i++) {
    const text = await f.evaluate(() => document.documentElement?.innerText ?? '').catch(() => '');
    if (text.trim()) return text;
    await new Promise((r) => setTimeout(r, 200));
  }
  return '';
}

/** Lets the page's own script run and whatever it started finish. */
async function visit(path: string): Promise<void> {
  await page.goto(`${evilUrl}${path}`).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 2500));
}

describe("session A's browser cannot reach the daemon", () => {
  it("a page's navigation to B's /live is blocked: nothing shown, no link issued", async () => {
    await visit('/nav-live');
    const text = await textOf(page);
    expect(text).not.toMatch(/token|\/live\//);
    expect(text).toMatch(BLOCKED);
    expect(await liveUrlsIssuedForB()).toBe(0);
  });

  it("a page's navigation to B's download is blocked: the file lands nowhere in A", async () => {
    await visit('/nav-download');
    expect(await textOf(page)).not.toContain(SECRET);
    expect(existsSync(join(d.stateDir, 'downloads', A, 'secret.txt'))).toBe(false);
  });

  it('an iframe of the dashboard does not load it', async () => {
    const dashboard = (await fetch(`${d.url}/`).then((r) => r.text())).match(/<title>([^<]*)</)?.[1];
    expect(dashboard).toBeTruthy();
    await visit('/iframe');
    const frame = page.frames().find((f) => f !== page.mainFrame());
    expect(frame).toBeTruthy();
    expect(await frame!.evaluate(() => document.title).catch(() => '')).not.toBe(dashboard);
    expect(await textOf(frame!)).toMatch(BLOCKED);
  });

  it('window.open of /sessions shows nothing of the daemon', async () => {
    await visit('/blank');
    const opened = new Promise<Page | null>((r) => a.once('targetcreated', (t) => r(t.page())));
    await page.evaluate((u) => void window.open(u), `http://127.0.0.1:${d.port}/sessions`);
    const popup = await opened;
    expect(popup).toBeTruthy();
    await new Promise((r) => setTimeout(r, 2500));
    const text = await textOf(popup!);
    expect(text).not.toContain(B);
    expect(text).toMatch(BLOCKED);
    await popup!.close();
  });

  it('nor do localhost, [::1] or the agent itself (Page.navigate) get through', async () => {
    for (const host of ['localhost', '[::1]', '127.0.0.1']) {
      await page.goto(`http://${host}:${d.port}/session/${B}/live`).catch(() => undefined);
      expect(await textOf(page)).not.toMatch(/token|\/live\//);
    }
    expect(await liveUrlsIssuedForB()).toBe(0);
  });

  it('pages on the same address but another port still load (the test pages)', async () => {
    await page.goto(`${pages.url}/other`);
    expect(await page.$eval('#p', (e) => e.textContent)).toBe('other page');
  });
});

describe('with --public-url', () => {
  it("its host is blocked on every port (the proxy in front reaches the daemon), other hosts are not", async () => {
    // The "public" host is another loopback address with a page server on it standing in for the proxy.
    const proxy = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<p id="p">daemon behind a proxy</p>'));
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.3', r));
    const port = (proxy.address() as AddressInfo).port;
    const pd = await startDaemon({ args: ['--public-url', `http://127.0.0.3:${port}`] });
    let agent: Browser | undefined;
    try {
      agent = await puppeteer.connect({ browserWSEndpoint: `${pd.wsUrl}/?session=pub&auto_close=false`, defaultViewport: null });
      leaks.note(pd.stateDir, 'pub');
      const p = (await agent.pages())[0]!;
      const err = await p.goto(`http://127.0.0.3:${port}/`).then(() => '', (e: Error) => e.message);
      expect(err).toMatch(/ERR_BLOCKED_BY_ADMINISTRATOR/);
      const text = await textOf(p);
      expect(text).not.toContain('daemon behind a proxy');
      expect(text).toMatch(BLOCKED);
      await p.goto(`${evilUrl}/blank`);
      expect(await textOf(p)).toContain('attacker');
    } finally {
      await agent?.disconnect();
      await pd.cleanup();
      await new Promise<void>((r) => (proxy.closeAllConnections(), proxy.close(() => r())));
    }
  });
});
