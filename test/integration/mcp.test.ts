import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { BIN, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { alive, api, waitFor } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';
import { canvasPixel, clickSurface, openViewer } from '../helpers/viewer.js';

/*
 * API.md 7, MCP: an agent framework's view. `handoff mcp` (stdio) and `/mcp` (streamable
 * HTTP) from the SDK client; Playwright MCP, a real process, drives the session's browser
 * over the CDP URL session_create returned; a human in a headless Chromium viewer answers
 * request_human.
 */

const KEY = 'mcp-test-key-0123456789';
const PLAYWRIGHT_MCP = resolve(import.meta.dirname, '../../node_modules/@playwright/mcp/cli.js');
// The box the human ticks, at a fixed place in the page (page pixels are framebuffer pixels).
const BOX = { x: 100, y: 300, size: 60 };
const FORM = `<!doctype html><html><head><title>signup</title></head><body style="margin:0;font:20px sans-serif;background:#fff">
  <form style="padding:40px"><label>Name <input id="name" name="name" autocomplete="off"></label></form>
  <input id="robot" type="checkbox" aria-label="I am not a robot"
    style="position:absolute;left:${BOX.x}px;top:${BOX.y}px;width:${BOX.size}px;height:${BOX.size}px;margin:0">
</body></html>`;

const json = (r: any) => JSON.parse(r.content[0].text);

describe('MCP: session_create, a browser tool, request_human answered by a human', () => {
  let daemon: RunningDaemon;
  let page: Server;
  let pageUrl: string;
  let viewers: Browser;
  let workDir: string;
  const clients: Client[] = [];
  const children: StdioClientTransport[] = [];
  const leaks = new LeakTracker();
  const stdio = (opts: ConstructorParameters<typeof StdioClientTransport>[0]) => {
    const t = new StdioClientTransport({ ...opts, stderr: 'pipe' });
    children.push(t);
    return t;
  };

  const stdioClient = async () => {
    const client = new Client({ name: 'test-agent', version: '1.0.0' });
    await client.connect(stdio({ command: process.execPath, args: [BIN, 'mcp', '--url', daemon.url, '--api-key', KEY] }));
    clients.push(client);
    return client;
  };
  const httpClient = async (headers: Record<string, string> = { authorization: `Bearer ${KEY}` }) => {
    const client = new Client({ name: 'test-agent-http', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL('/mcp', daemon.url), { requestInit: { headers } }));
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    page = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(FORM);
    });
    await new Promise<void>((r) => page.listen(0, '127.0.0.1', r));
    pageUrl = `http://127.0.0.1:${(page.address() as AddressInfo).port}/signup`;
    workDir = mkdtempSync(join(tmpdir(), 'handoff-mcp-test-'));
    daemon = await startDaemon({ args: ['--api-key', KEY] });
    viewers = await puppeteer.launch({ executablePath: '/usr/lib/chromium/chromium', headless: true, args: ['--no-sandbox'] });
  });

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await viewers?.close();
    await daemon?.cleanup();
    await new Promise((r) => page?.close(r));
    if (workDir) rmSync(workDir, { recursive: true, force: true });
    // `handoff mcp` and Playwright MCP exit with their clients; the sessions' processes are gone.
    const pids = children.map((t) => t.pid).filter((pid): pid is number => pid !== null);
    await waitFor('MCP server processes exit', () => pids.every((pid) => !alive(pid)), 10_000);
    expect(leaks.leftovers()).toEqual([]);
  });

  it('/mcp is behind the API key and the Origin guard', async () => {
    const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } };
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const noKey = await api(daemon.url, '/mcp', { method: 'POST', headers, body: JSON.stringify(init) });
    expect(noKey.status).toBe(401);
    expect(noKey.body.error.code).toBe('unauthorized');
    const foreign = await api(daemon.url, '/mcp', { method: 'POST', headers: { ...headers, authorization: `Bearer ${KEY}`, origin: 'https://evil.example' }, body: JSON.stringify(init) });
    expect(foreign.status).toBe(403);
    expect(foreign.body.error.code).toBe('forbidden_origin');
    await expect(httpClient({ authorization: 'Bearer wrong' })).rejects.toThrow();
  });

  it('stdio: Playwright MCP fills a form, request_human is answered in the viewer, the browser tool reads the ticked box', async () => {
    const handoff = await stdioClient();
    const tools = (await handoff.listTools()).tools.map((t) => t.name).sort();
    expect(tools).toEqual(['live_url', 'request_human', 'session_create', 'session_status', 'session_stop']);

    const created = json(await handoff.callTool({ name: 'session_create', arguments: { session_id: 'mcp-flow', width: 1280, height: 720 } }));
    expect(created).toMatchObject({ session_id: 'mcp-flow', created: true, session: { state: 'ready', attachment: 'none', auto_close: false } });
    // The key never reaches the model (security review): the browser tool has it in its own config.
    expect(created.cdp_url).toBe(`${daemon.wsUrl}/devtools/browser/mcp-flow`);
    expect(JSON.stringify(created)).not.toContain(KEY);
    leaks.note(daemon.stateDir, 'mcp-flow');

    // The browser tool, as a user would run it: a separate process given the CDP URL.
    const browserTool = new Client({ name: 'test-agent-browser', version: '1.0.0' });
    await browserTool.connect(
      stdio({ command: process.execPath, args: [PLAYWRIGHT_MCP, '--cdp-endpoint', created.cdp_url, '--cdp-header', `Authorization: Bearer ${KEY}`, '--output-dir', workDir], cwd: workDir }),
    );
    clients.push(browserTool);
    const call = async (name: string, args: Record<string, unknown>) => {
      const r: any = await browserTool.callTool({ name, arguments: args });
      const text = r.content.map((c: any) => c.text ?? '').join('\n');
      if (r.isError) throw new Error(`${name}: ${text}`);
      return text;
    };
    await call('browser_navigate', { url: pageUrl });
    // The accessibility snapshot comes inline or as a file in the output dir, depending on the version.
    let snapshot = await call('browser_snapshot', {});
    const file = /\[Snapshot\]\(([^)]+\.yml)\)/.exec(snapshot)?.[1];
    if (file) snapshot = readFileSync(join(workDir, file), 'utf8');
    const ref = /textbox "Name" \[ref=(\w+)\]/.exec(snapshot)?.[1];
    expect(ref, snapshot).toBeTruthy();
    await call('browser_type', { element: 'Name', target: ref, text: 'Ada Lovelace' });
    expect((await api(daemon.url, '/session/mcp-flow', { headers: { authorization: `Bearer ${KEY}` } })).body.attachment).toBe('agent');

    // The agent asks for a human; the link arrives in the first progress notification.
    const progress: { progress: number; total?: number; message?: string }[] = [];
    const answer = handoff.callTool({ name: 'request_human', arguments: { session_id: 'mcp-flow', reason: 'tick the robot box', timeout_s: 120 } }, undefined, {
      onprogress: (p) => progress.push(p),
      resetTimeoutOnProgress: true,
    });
    const first = await waitFor('the first progress notification', () => progress[0]);
    const liveUrl = /(http:\/\/\S+\/live\/\S+)/.exec(first.message ?? '')?.[1];
    expect(liveUrl, first.message).toBeTruthy();
    expect(first.total).toBe(120);

    const status = json(await handoff.callTool({ name: 'session_status', arguments: { session_id: 'mcp-flow' } }));
    expect(status.handoff).toMatchObject({ reason: 'tick the robot box' });

    const vp = await openViewer(viewers, liveUrl!, ['live']);
    expect(await vp.$eval('.hk-reason', (el) => el.textContent)).toContain('tick the robot box');
    const [cx, cy] = [BOX.x + BOX.size / 2, BOX.y + BOX.size / 2];
    await waitFor('the box drawn', async () => (await canvasPixel(vp, cx, cy)).join() !== '0,0,0');
    await clickSurface(vp, cx, cy);
    await vp.waitForSelector('.hk-banner:not([hidden]) .hk-primary:not([disabled])', { timeout: 10_000 });
    await vp.click('.hk-banner .hk-primary');

    const result = json(await answer);
    expect(result).toMatchObject({ outcome: 'done', live_url: liveUrl, changes: { urls: [], downloads: [] } });
    expect(typeof result.by).toBe('string');
    expect(result.duration_ms).toBeGreaterThan(0);
    await vp.close();

    // Back to the agent: the browser tool sees what the human did, and its own typing is intact.
    const read = await call('browser_evaluate', { function: "() => [document.getElementById('robot').checked, document.getElementById('name').value].join('|')" });
    expect(read).toContain('true|Ada Lovelace');

    // The agent cancels a request_human through `handoff mcp`: the handoff ends as cancelled.
    const abort = new AbortController();
    const cancelled = handoff.callTool({ name: 'request_human', arguments: { session_id: 'mcp-flow', reason: 'never mind' } }, undefined, { signal: abort.signal });
    cancelled.catch(() => {});
    const current = async () => json(await handoff.callTool({ name: 'session_status', arguments: { session_id: 'mcp-flow' } }));
    await waitFor('handoff active', async () => (await current()).handoff);
    abort.abort();
    await waitFor('handoff cancelled', async () => (await current()).handoff === null);

    expect(json(await handoff.callTool({ name: 'session_stop', arguments: { session_id: 'mcp-flow' } }))).toEqual({ stopped: true });
    const stopped = json(await handoff.callTool({ name: 'session_status', arguments: { session_id: 'mcp-flow' } }));
    expect(stopped.state).toBe('stopped');
    const audit = (await api(daemon.url, '/audit?session_id=mcp-flow', { headers: { authorization: `Bearer ${KEY}` } })).body.events;
    expect(audit.find((e: any) => e.type === 'handoff_requested')).toMatchObject({ transport: 'mcp', detail: { reason: 'tick the robot box' } });
    expect(audit.filter((e: any) => e.type === 'handoff_completed').map((e: any) => e.detail.outcome)).toEqual(['done', 'cancelled']);
  });

  it('streamable HTTP: live_url, a request_human timeout and a cancel, errors with API.md codes', async () => {
    const agent = await httpClient();
    const created = json(await agent.callTool({ name: 'session_create', arguments: { session_id: 'mcp-http' } }));
    expect(created.cdp_url).toBe(`${daemon.wsUrl}/devtools/browser/mcp-http`);
    expect(JSON.stringify(created)).not.toContain(KEY);
    leaks.note(daemon.stateDir, 'mcp-http');
    // Again with the same id: the live session, not a second one.
    expect(json(await agent.callTool({ name: 'session_create', arguments: { session_id: 'mcp-http', width: 800 } }))).toMatchObject({ created: false, session: { width: 1280 } });

    const link = json(await agent.callTool({ name: 'live_url', arguments: { session_id: 'mcp-http' } }));
    expect(link.url).toMatch(new RegExp(`^${daemon.url}/live/`));
    expect(Date.parse(link.expires_at)).toBeGreaterThan(Date.now());

    const timedOut = json(await agent.callTool({ name: 'request_human', arguments: { session_id: 'mcp-http', reason: 'nobody will come', timeout_s: 1 } }));
    expect(timedOut).toMatchObject({ outcome: 'timeout', by: 'daemon' });

    // The agent goes away while waiting: the handoff it asked for is cancelled, not left open.
    const leaving = await httpClient();
    const waiting = leaving.callTool({ name: 'request_human', arguments: { session_id: 'mcp-http', reason: 'never mind' } });
    waiting.catch(() => {});
    const status = async () => json(await agent.callTool({ name: 'session_status', arguments: { session_id: 'mcp-http' } }));
    await waitFor('handoff active', async () => (await status()).handoff);
    await leaving.close();
    await waitFor('handoff cancelled', async () => (await status()).handoff === null);
    const audit = (await api(daemon.url, '/audit?session_id=mcp-http&type=handoff_completed', { headers: { authorization: `Bearer ${KEY}` } })).body.events;
    expect(audit.map((e: any) => e.detail.outcome)).toEqual(['timeout', 'cancelled']);

    const missing: any = await agent.callTool({ name: 'request_human', arguments: { session_id: 'no-such', reason: 'x' } });
    expect(missing.isError).toBe(true);
    expect(json(missing).error.code).toBe('session_not_found');
    const bad: any = await agent.callTool({ name: 'session_create', arguments: { session_id: '../x' } });
    expect(bad.isError).toBe(true);
    expect(json(bad).error.code).toBe('bad_request');
    const badSize: any = await agent.callTool({ name: 'session_create', arguments: { width: 5 } });
    expect(json(badSize).error.code).toBe('bad_request');
    const bloated: any = await agent.callTool({ name: 'session_status', arguments: { session_id: 'x', junk: Array.from({ length: 100 }, (_, i) => i) } });
    expect(bloated.isError).toBe(true);
    expect(bloated.content[0].text).toMatch(/maximum of 64 elements/);

    expect(json(await agent.callTool({ name: 'session_stop', arguments: { session_id: 'mcp-http' } }))).toEqual({ stopped: true });
  });
});
