import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';
import { WebhookSender } from '../../src/util/webhook.js';
import { createLogger } from '../../src/util/logger.js';

/** Issue 8.10: webhooks signed, bounded, retried only when worth it, redirects not followed. */

const SECRET = 'whsec-test-5c0f1e2d';
const json = { 'content-type': 'application/json' };

interface Hit {
  path: string;
  headers: IncomingHttpHeaders;
  raw: Buffer;
  status: number;
}

/** A real receiver: records every request; `script` holds the next answers (200 when empty). */
class Receiver {
  readonly hits: Hit[] = [];
  script: number[] = [];
  /** Requests held open (never answered) while true. */
  hang = false;
  private held: import('node:http').ServerResponse[] = [];
  private server!: Server;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const status = req.url === '/trap' ? 200 : (this.script.shift() ?? 200);
        this.hits.push({ path: req.url!, headers: req.headers, raw: Buffer.concat(chunks), status });
        if (this.hang && req.url !== '/trap') return void this.held.push(res);
        res.writeHead(status, status === 302 ? { location: `${this.url}/trap` } : {});
        res.end(status === 302 ? '' : 'ok');
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  release(): void {
    this.hang = false;
    for (const res of this.held.splice(0)) res.end('late');
  }

  async close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  body(h: Hit): any {
    return JSON.parse(h.raw.toString('utf8'));
  }
}

/** The README's verification snippet, loaded as written (so the documented recipe is what is tested). */
async function readmeVerifier(dir: string): Promise<(secret: string, headers: IncomingHttpHeaders, raw: Buffer | string) => boolean> {
  const readme = readFileSync(resolve(import.meta.dirname, '../../README.md'), 'utf8');
  const block = /```js\n(import \{ createHmac, timingSafeEqual \}[\s\S]*?function verifyHandoffWebhook[\s\S]*?)```/.exec(readme);
  if (!block) throw new Error('README.md has no verifyHandoffWebhook snippet');
  const file = join(dir, 'verify.mjs');
  writeFileSync(file, `${block[1]}\nexport { verifyHandoffWebhook };\n`);
  return (await import(pathToFileURL(file).href)).verifyHandoffWebhook;
}

async function metric(base: string, result: string): Promise<number> {
  const text = (await api(base, '/metrics')).body as string;
  const m = new RegExp(`^handoff_webhook_deliveries_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(text);
  if (!m) throw new Error(`no webhook metric for ${result} in:\n${text}`);
  return Number(m[1]);
}

describe('a real daemon sends signed webhooks during a real handoff', () => {
  const receiver = new Receiver();
  let daemon: RunningDaemon;
  let tmp: string;
  let verify: Awaited<ReturnType<typeof readmeVerifier>>;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'handoff-webhook-test-'));
    verify = await readmeVerifier(tmp);
    await receiver.start();
    daemon = await startDaemon({ args: ['--webhook', `${receiver.url}/hook?token=path-secret`, '--webhook-secret', SECRET] });
    const created = await api(daemon.url, '/devtools/browser?session=wh', { method: 'POST', headers: json, body: '{}' });
    expect(created.status).toBe(200);
  });

  afterAll(async () => {
    await daemon?.cleanup();
    await receiver.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('POST /session/ID/handoff: the receiver gets handoff_requested, and the README recipe verifies its signature', async () => {
    const started = await api(daemon.url, '/session/wh/handoff', { method: 'POST', headers: json, body: JSON.stringify({ reason: 'type the OTP' }) });
    expect(started.status).toBe(200);
    const hit = await waitFor('handoff_requested webhook', () => receiver.hits.find((h) => receiver.body(h).type === 'handoff_requested'));
    expect(hit.path).toBe('/hook?token=path-secret');
    expect(hit.headers['content-type']).toBe('application/json');
    expect(receiver.body(hit)).toMatchObject({ type: 'handoff_requested', session_id: 'wh', reason: 'type the OTP', live_url: started.body.liveUrl, handoff_id: started.body.handoffId });
    expect(hit.headers['x-handoff-signature']).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(Math.abs(Number(hit.headers['x-handoff-timestamp']) - Date.now() / 1000)).toBeLessThan(120);
    expect(hit.headers['x-handoff-delivery']).toMatch(/^[0-9a-f-]{36}$/);

    expect(verify(SECRET, hit.headers, hit.raw)).toBe(true);
    expect(verify(SECRET, hit.headers, hit.raw.toString('utf8'))).toBe(true);
    // Wrong secret, edited body, replayed with another timestamp, or a stale one: refused.
    expect(verify('another-secret', hit.headers, hit.raw)).toBe(false);
    expect(verify(SECRET, hit.headers, hit.raw.toString().replace('type the OTP', 'wire the money'))).toBe(false);
    expect(verify(SECRET, { ...hit.headers, 'x-handoff-timestamp': String(Number(hit.headers['x-handoff-timestamp']) + 1) }, hit.raw)).toBe(false);
    expect(verify(SECRET, { ...hit.headers, 'x-handoff-signature': undefined }, hit.raw)).toBe(false);

    const done = await api(daemon.url, '/session/wh/handoff/complete', { method: 'POST', headers: json, body: JSON.stringify({ outcome: 'done' }) });
    expect(done.status).toBe(200);
    const completed = await waitFor('handoff_completed webhook', () => receiver.hits.find((h) => receiver.body(h).type === 'handoff_completed'));
    expect(receiver.body(completed)).toMatchObject({ session_id: 'wh', outcome: 'done', by: 'rest' });
    expect(verify(SECRET, completed.headers, completed.raw)).toBe(true);
    await waitFor('metrics ok=2', async () => (await metric(daemon.url, 'ok')) === 2);
    expect(await metric(daemon.url, 'failed')).toBe(0);
  });

  it('a receiver answering 500 then 200 gets the same delivery again, freshly signed', async () => {
    const before = receiver.hits.length;
    receiver.script = [500];
    const started = await api(daemon.url, '/session/wh/handoff', { method: 'POST', headers: json, body: JSON.stringify({ reason: 'retry me' }) });
    expect(started.status).toBe(200);
    const attempts = await waitFor('two attempts', () => {
      const a = receiver.hits.slice(before).filter((h) => receiver.body(h).reason === 'retry me');
      return a.length >= 2 ? a : null;
    });
    expect(attempts.map((a) => a.status)).toEqual([500, 200]);
    expect(attempts[1]!.headers['x-handoff-delivery']).toBe(attempts[0]!.headers['x-handoff-delivery']);
    for (const a of attempts) expect(verify(SECRET, a.headers, a.raw)).toBe(true);
    await waitFor('metrics ok=3', async () => (await metric(daemon.url, 'ok')) === 3);
    expect(await metric(daemon.url, 'failed')).toBe(0);
    expect(daemon.logs()).toContain('webhook delivery failed, will retry');
  });

  it('a 302 is not followed: one attempt, no request reaches the redirect target, counted as failed and logged without secrets', async () => {
    const before = receiver.hits.length;
    receiver.script = [302];
    const cancelled = await api(daemon.url, '/session/wh/handoff', { method: 'DELETE' });
    expect(cancelled.status).toBe(200);
    await waitFor('metrics failed=1', async () => (await metric(daemon.url, 'failed')) === 1);
    const hits = receiver.hits.slice(before);
    expect(hits.map((h) => [h.path, h.status])).toEqual([['/hook?token=path-secret', 302]]);
    expect(receiver.body(hits[0]!)).toMatchObject({ type: 'handoff_completed', outcome: 'cancelled' });
    const line = daemon
      .logs()
      .split('\n')
      .find((l) => l.includes('"webhook delivery failed"') && l.includes('"status":302'));
    expect(line).toBeDefined();
    expect(JSON.parse(line!)).toMatchObject({ level: 'warn', target: receiver.url, error: expect.stringContaining('redirect') });
    expect(daemon.logs()).not.toContain(SECRET);
    expect(daemon.logs()).not.toContain('path-secret');
    expect(receiver.hits.some((h) => h.path === '/trap')).toBe(false);
  });
});

describe('WebhookSender bounds (in process, real sockets)', () => {
  const receiver = new Receiver();
  const lines: string[] = [];
  const logger = createLogger('debug', {}, (l) => lines.push(l));

  beforeAll(() => receiver.start());
  afterAll(() => receiver.close());

  it('a receiver that never answers: each attempt times out, 3 attempts, then failed; close() does not wait for it', async () => {
    const before = receiver.hits.length;
    receiver.hang = true;
    const sender = new WebhookSender({ url: `${receiver.url}/slow`, secret: null, logger, timeoutMs: 300, backoffMs: 50 });
    sender.send({ type: 'handoff_requested' });
    await waitFor('failed after retries', () => sender.stats().failed === 1);
    expect(receiver.hits.length - before).toBe(3);
    expect(lines.some((l) => l.includes('no answer within 300 ms'))).toBe(true);
    // Unsigned without a secret.
    expect(receiver.hits.at(-1)!.headers['x-handoff-signature']).toBeUndefined();
    await sender.close();
    receiver.release();
  });

  it('a 4xx is final (no retry); a refused connection is retried', async () => {
    const before = receiver.hits.length;
    receiver.script = [404];
    const sender = new WebhookSender({ url: `${receiver.url}/gone`, secret: SECRET, logger, backoffMs: 10 });
    sender.send({ type: 'x' });
    await waitFor('failed', () => sender.stats().failed === 1);
    expect(receiver.hits.length - before).toBe(1);
    await sender.close();

    const closedPort = await new Promise<number>((r) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as AddressInfo;
        s.close(() => r(port));
      });
    });
    const dead = new WebhookSender({ url: `http://127.0.0.1:${closedPort}/hook`, secret: SECRET, logger, backoffMs: 10 });
    dead.send({ type: 'x' });
    await waitFor('failed', () => dead.stats().failed === 1);
    expect(lines.filter((l) => l.includes('ECONNREFUSED')).length).toBe(3);
    await dead.close();
  });

  it('never blocks: past maxPending the oldest events are dropped and counted; close() gives up after its grace', async () => {
    receiver.hang = true;
    const sender = new WebhookSender({ url: `${receiver.url}/hold`, secret: SECRET, logger, maxPending: 5, timeoutMs: 60_000 });
    for (let i = 0; i < 20; i++) sender.send({ type: 'e', i });
    // One in flight, five waiting, fourteen dropped.
    expect(sender.stats()).toEqual({ ok: 0, failed: 0, dropped: 14, pending: 5 });
    await waitFor('first request arrived', () => receiver.hits.some((h) => h.path === '/hold'));
    await sender.close(200);
    await sender.close(200);
    expect(sender.stats()).toMatchObject({ dropped: 19, failed: 1, pending: 0 });
    sender.send({ type: 'after close' });
    expect(sender.stats().pending).toBe(0);
    receiver.release();
  });

  it('only http(s) URLs are accepted', () => {
    expect(() => new WebhookSender({ url: 'file:///etc/passwd', secret: null, logger })).toThrow(/http/);
    expect(() => new WebhookSender({ url: 'not a url', secret: null, logger })).toThrow(/http/);
  });
});
