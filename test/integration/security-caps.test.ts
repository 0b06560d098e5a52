/**
 * Issue 8 item 9 (HTTP part) against a real daemon with raw sockets: per-source and global
 * caps on open connections, slowloris on request headers, on an upgrade's headers and on a
 * body, the header size cap, and a long poll outliving the request timeout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, rawRequest, waitFor } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';
import { DEFAULT_CONNECTION_CAPS } from '../../src/http/caps.js';

let d: RunningDaemon;
const leaks = new LeakTracker();
const open: Socket[] = [];

/** A TCP connection to the daemon from `localAddress` (any 127.x address is this host). */
function tcp(localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port: d.port, host: '127.0.0.1', localAddress }, () => resolve(s));
    s.once('error', reject);
    open.push(s);
  });
}

/** Everything the daemon sends on `s` until it closes the connection. */
function untilClosed(s: Socket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (x: string) => (text += x));
    s.on('error', () => {});
    s.on('close', () => resolve(text));
  });
}

function closeAll(): void {
  for (const s of open.splice(0)) s.destroy();
}

/**
 * Sends `chunks` one every `everyMs` (a slowloris client); resolves with what the daemon
 * answered and whether it cut the connection before the client had sent everything.
 */
function trickle(chunks: string[], everyMs: number): Promise<{ answer: string; cutEarly: boolean }> {
  return new Promise((resolve, reject) => {
    const s = connect(d.port, '127.0.0.1');
    open.push(s);
    let i = 0;
    let answer = '';
    const timer = setInterval(() => {
      if (i < chunks.length) s.write(chunks[i++]!);
    }, everyMs);
    s.setEncoding('utf8');
    s.on('data', (x: string) => (answer += x));
    s.on('error', () => {});
    s.once('connect', () => s.write(chunks[i++]!));
    s.once('close', () => {
      clearInterval(timer);
      resolve({ answer, cutEarly: i < chunks.length });
    });
    setTimeout(() => reject(new Error('the daemon never cut the slow client')), (chunks.length + 5) * everyMs).unref();
  });
}

beforeAll(async () => {
  d = await startDaemon();
});

afterAll(async () => {
  closeAll();
  await d?.cleanup();
  expect(leaks.leftovers()).toEqual([]);
}, 60_000);

describe('connection caps', () => {
  it(`one source gets at most ${DEFAULT_CONNECTION_CAPS.perSource} open connections; others are unaffected`, async () => {
    const mine = await Promise.all(Array.from({ length: DEFAULT_CONNECTION_CAPS.perSource }, () => tcp('127.0.0.3')));
    const over = await tcp('127.0.0.3');
    const answer = await untilClosed(over);
    expect(answer).toMatch(/^HTTP\/1\.1 429 /);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).error.code).toBe('too_many_requests');
    // Another address still gets in.
    expect((await api(d.url, '/health')).status).toBe(200);
    // A slot freed is a slot to use again.
    mine[0]!.destroy();
    await waitFor('a slot back for 127.0.0.3', async () => {
      const s = await tcp('127.0.0.3');
      s.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
      return /^HTTP\/1\.1 200 /.test(await untilClosed(s));
    });
    closeAll();
  });

  it(`at most ${DEFAULT_CONNECTION_CAPS.total} connections in all`, async () => {
    const { perSource, total } = DEFAULT_CONNECTION_CAPS;
    const sources = Array.from({ length: Math.ceil(total / perSource) }, (_, i) => `127.0.1.${i + 1}`);
    for (const src of sources) await Promise.all(Array.from({ length: perSource }, () => tcp(src)));
    const over = await tcp('127.0.2.1');
    expect(await untilClosed(over)).toMatch(/^HTTP\/1\.1 429 /);
    closeAll();
    await waitFor('room again', async () => (await api(d.url, '/health').catch(() => ({ status: 0 }))).status === 200);
  });
});

describe('slow clients (slowloris)', () => {
  it('a request, an upgrade and a body trickled a byte at a time are cut off; a long poll is not', async () => {
    // A session for the body and the long poll to name.
    expect((await api(d.url, '/devtools/browser?session=caps&keep_alive=600000', { method: 'POST' })).status).toBe(200);
    leaks.note(d.stateDir, 'caps');
    const poll = api(d.url, '/session/caps/wait?state=stopped&timeout_ms=120000');

    const headerBytes = (head: string) => [...head].concat(Array.from({ length: 60 }, (_, i) => `x-slow-${i}: 1\r\n`));
    const [request, upgrade, body] = await Promise.all([
      trickle(headerBytes('GET /sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n'), 2000),
      trickle(headerBytes('GET /?session=slow HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'), 2000),
      trickle(
        ['POST /session/caps/handoff HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n', ...'{"reason":"'.split(''), ...Array.from({ length: 80 }, () => 'a')],
        1000,
      ),
    ]);
    for (const r of [request, upgrade, body]) {
      expect(r.cutEarly).toBe(true);
      expect(r.answer).toMatch(/^HTTP\/1\.1 408 |^$/);
    }
    expect((await api(d.url, '/session/slow')).status).toBe(404);
    expect((await api(d.url, '/session/caps')).body.handoff).toBeNull();

    // The long poll has now been open longer than the request timeout: it still answers.
    expect((await api(d.url, '/session/caps/stop', { method: 'POST' })).status).toBe(200);
    const polled = await poll;
    expect(polled.status).toBe(200);
    expect(polled.body.state).toBe('stopped');
  }, 120_000);

  it('request headers over the size cap are refused with 431', async () => {
    const r = await rawRequest(d.port, 'GET', '/health', { 'x-big': 'a'.repeat(20 * 1024) });
    expect(r.status).toBe(431);
    expect((await api(d.url, '/health')).status).toBe(200);
  });
});
