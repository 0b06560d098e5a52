import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, tryWs, waitFor } from '../helpers/client.js';

/** A site with a login: the form's answer sets a lasting cookie and the page stores a token. */
async function startSite(): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    res.setHeader('content-type', 'text/html; charset=utf-8');
    if (url.pathname === '/login') {
      res.end(`<!doctype html><title>login</title><body style="margin:0;font:20px sans-serif">
        <form action="/welcome" method="get" style="padding:40px"><input id="user" name="user" autocomplete="off" style="width:400px;height:40px;font-size:20px">
        <button type="submit">Log in</button></form></body>`);
    } else if (url.pathname === '/welcome') {
      const user = (url.searchParams.get('user') ?? '').replace(/[^A-Za-z0-9]/g, '');
      res.setHeader('set-cookie', `sid=human-${user}; Max-Age=86400; Path=/; HttpOnly`);
      res.end(`<!doctype html><title>welcome</title><h1 id="hello">Welcome ${user}</h1><script>localStorage.setItem('token', 'tok-${user}')</script>`);
    } else if (url.pathname === '/whoami') {
      res.end(`<!doctype html><title>whoami</title><pre id="cookie">${(req.headers.cookie ?? '').replace(/[<&>]/g, '')}</pre>`);
    } else {
      res.end(`<!doctype html><title>${url.pathname.slice(1)}</title><p>${url.pathname}</p>`);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

/** Every file under `dir`, relative. */
function files(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...files(dir, p));
    else out.push(p);
  }
  return out;
}

describe('persistent profiles (sealed at rest with a profile key)', () => {
  let daemon: RunningDaemon;
  let site: Awaited<ReturnType<typeof startSite>>;
  let keyDir: string;

  beforeAll(async () => {
    keyDir = mkdtempSync(join(tmpdir(), 'handoff-profile-key-'));
    writeFileSync(join(keyDir, 'key'), randomBytes(32), { mode: 0o600 });
    site = await startSite();
    daemon = await startDaemon({ args: ['--warm', '0', '--profile-key-file', join(keyDir, 'key')] });
  });

  afterAll(async () => {
    await daemon?.cleanup();
    await site?.close();
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  });

  const info = async (id: string) => (await api(daemon.url, `/session/${id}`)).body;
  const audit = async (id: string) => (await api(daemon.url, `/audit?session_id=${id}`)).body.events as any[];

  it('a login on profile=acme lasts into a later session with another id; a second live one gets 409; no readable cookie file at rest', async () => {
    const agent = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=first&profile=acme&auto_close=false`, defaultViewport: null });
    expect((await info('first')).profile).toBe('acme');
    const page = (await agent.pages())[0]!;
    await page.goto(`${site.url}/login`);

    // While it is live: the profile is taken (3.2, 3.1) and cannot be deleted.
    const post = await api(daemon.url, '/devtools/browser?profile=acme', { method: 'POST' });
    expect(post.status).toBe(409);
    expect(post.body.error).toMatchObject({ code: 'profile_in_use', session_id: 'first' });
    const ws = await tryWs(`${daemon.wsUrl}/?session=second-try&profile=acme`);
    expect(ws).toMatchObject({ kind: 'refused', status: 409, body: { error: { code: 'profile_in_use', session_id: 'first' } } });
    expect((await api(daemon.url, '/profiles/acme', { method: 'DELETE' })).status).toBe(409);

    // The login, through the page as a human's would be: the form, the cookie, the stored token.
    await page.type('#user', 'alice');
    await Promise.all([page.waitForNavigation({ timeout: 60_000 }), page.keyboard.press('Enter')]);
    expect(await page.$eval('#hello', (el) => el.textContent)).toBe('Welcome alice');
    await waitFor('token stored', () => page.evaluate(() => localStorage.getItem('token') === 'tok-alice'));

    expect((await api(daemon.url, '/session/first/stop', { method: 'POST' })).status).toBe(200);
    await agent.disconnect();
    const firstRun = (await info('first')).run_id;

    // At rest: one sealed file and the metadata, no cookie or storage file, no plaintext.
    const dir = join(daemon.stateDir, 'profiles', 'acme');
    await waitFor('sealed', () => files(dir).includes('user-data.sealed'));
    expect(files(dir).sort()).toEqual(['meta.json', 'user-data.sealed']);
    const sealed = readFileSync(join(dir, 'user-data.sealed'));
    expect(sealed.includes('human-alice')).toBe(false);
    expect(sealed.includes('tok-alice')).toBe(false);
    const listed = (await api(daemon.url, '/profiles')).body.profiles;
    expect(listed).toEqual([{ name: 'acme', size: expect.any(Number), created_at: expect.any(String), last_used_at: expect.any(String), session_id: 'first' }]);
    expect(listed[0].size).toBeGreaterThan(0);

    // Later, another session id, no human: logged in already.
    const agent2 = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=second&profile=acme&auto_close=false`, defaultViewport: null });
    const page2 = (await agent2.pages())[0]!;
    await page2.goto(`${site.url}/whoami`);
    expect(await page2.$eval('#cookie', (el) => el.textContent)).toContain('sid=human-alice');
    expect(await page2.evaluate(() => localStorage.getItem('token'))).toBe('tok-alice');
    expect((await api(daemon.url, '/profiles')).body.profiles[0].session_id).toBe('second');
    expect((await api(daemon.url, '/session/second/stop', { method: 'POST' })).status).toBe(200);
    await agent2.disconnect();

    const first = await audit('first');
    const attached = first.filter((e) => e.type === 'profile_attached');
    const released = first.filter((e) => e.type === 'profile_released');
    expect(attached).toHaveLength(1);
    expect(released).toHaveLength(1);
    expect(attached[0]).toMatchObject({ run_id: firstRun, detail: { name: 'acme' } });
    expect(released[0]).toMatchObject({ run_id: firstRun, detail: { name: 'acme', sealed: true } });
    expect((await audit('second')).filter((e) => e.type === 'profile_attached')[0].detail).toMatchObject({ name: 'acme', sealed: true });

    // Free again: deleted for good.
    expect((await api(daemon.url, '/profiles/acme', { method: 'DELETE' })).body).toEqual({ deleted: true });
    expect((await api(daemon.url, '/profiles')).body.profiles).toEqual([]);
  });

  it('resuming a stopped session id whose profile persists reopens its last tabs', async () => {
    let agent = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=tabs&profile=tabs-profile&auto_close=false`, defaultViewport: null });
    await (await agent.pages())[0]!.goto(`${site.url}/first-tab`);
    const second = await agent.newPage();
    await second.goto(`${site.url}/second-tab`);
    expect((await api(daemon.url, '/session/tabs/stop', { method: 'POST' })).status).toBe(200);
    await agent.disconnect();

    // The same id again: its profile comes back with it, and so do its tabs.
    agent = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=tabs&auto_close=false`, defaultViewport: null });
    expect((await info('tabs')).profile).toBe('tabs-profile');
    const urls = await waitFor('tabs back', async () => {
      const u = agent.targets().filter((t) => t.type() === 'page').map((t) => t.url());
      return u.includes(`${site.url}/first-tab`) && u.includes(`${site.url}/second-tab`) ? u : null;
    });
    expect(urls.filter((u) => u.startsWith(site.url))).toHaveLength(2);
    expect((await api(daemon.url, '/session/tabs/stop', { method: 'POST' })).status).toBe(200);
    await agent.disconnect();
    // A new session id on the same profile starts on a blank page, not the other session's tabs.
    const other = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=tabs-other&profile=tabs-profile&auto_close=false`, defaultViewport: null });
    expect(other.targets().filter((t) => t.type() === 'page').map((t) => t.url())).toEqual(['about:blank']);
    expect((await api(daemon.url, '/session/tabs-other/stop', { method: 'POST' })).status).toBe(200);
    await other.disconnect();
  });

  it('refuses bad profile names', async () => {
    for (const bad of ['..', '.', 'a/b', 'x'.repeat(65), 'a%20b']) {
      const r = await api(daemon.url, `/devtools/browser?profile=${bad}`, { method: 'POST' });
      expect(r.status, bad).toBe(400);
    }
    expect((await api(daemon.url, '/profiles/..', { method: 'DELETE' })).status).toBe(400);
  });
});
