import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api } from '../helpers/client.js';

// Issue 8 item 6: the API key goes through the same per-source throttle as VNC and WebRTC
// credentials. A guesser is locked out after a few wrong keys and then refused unchecked,
// the right key included; every loopback address is the same source (M3), so rotating them
// buys nothing; a request with no key guesses nothing and is not counted.
const KEY = 'apikey-throttle-0123456789';
let d: RunningDaemon;

/** GET from a chosen loopback source address (127.0.0.0/8 all reach the daemon). */
function getFrom(source: string, path: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const u = new URL(d.url + path);
    const req = request({ host: u.hostname, port: u.port, path: u.pathname + u.search, localAddress: source }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function authFailedRows(): Promise<number> {
  const r = await api(d.url, `/audit?type=auth_failed&limit=1000&api_key=${KEY}`);
  return r.body.events.length;
}

beforeAll(async () => {
  d = await startDaemon({ args: ['--api-key', KEY] });
});
afterAll(async () => {
  await d?.cleanup();
});

describe('API key guessing', () => {
  it('50 parallel wrong keys from one source get few real checks; the right key is refused during the lockout, from every loopback address; after it the right key works', async () => {
    const guesses = await Promise.all(Array.from({ length: 50 }, (_, i) => getFrom('127.0.0.20', `/sessions?api_key=guess-${i}`)));
    const checked = guesses.filter((g) => g.status === 401).length;
    const refused = guesses.filter((g) => g.status === 429);
    expect(checked + refused.length).toBe(50);
    expect(checked).toBeLessThanOrEqual(5);
    expect(refused[0]!.body.error.code).toBe('too_many_requests');
    expect(refused[0]!.body.error.retry_after_s).toBeGreaterThan(0);

    // The right key from the locked-out source is refused without being looked at, and
    // another loopback address is the same source (M3: 127/8 is one machine).
    const locked = await getFrom('127.0.0.20', `/sessions?api_key=${KEY}`);
    expect(locked.status).toBe(429);
    expect((await getFrom('127.0.0.21', `/sessions?api_key=${KEY}`)).status).toBe(429);
    // No key at all is a plain 401 and does not extend the lockout.
    const noKey = await getFrom('127.0.0.22', '/sessions');
    expect(noKey.status).toBe(401);
    expect(noKey.body.error.code).toBe('unauthorized');

    // The lockout ends (at most the max lockout, 60 s) and the right key then works.
    let last = 0;
    for (let i = 0; i < 130 && last !== 200; i++) {
      last = (await getFrom('127.0.0.21', `/sessions?api_key=${KEY}`)).status;
      if (last !== 200) await new Promise((r) => setTimeout(r, 500));
    }
    expect(last).toBe(200);
    // Only real checks are audited, and the request with no key (audited, never throttled).
    expect(await authFailedRows()).toBe(checked + 1);
  }, 90_000);

  it('wrong keys from rotating loopback addresses share one throttle (M3): 59 addresses do not make 59 checks', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 59; i++) statuses.push((await getFrom(`127.0.${1 + (i >> 6)}.${2 + i}`, `/sessions?api_key=rotate-${i}`)).status);
    const checked = statuses.filter((s) => s === 401).length;
    expect(checked + statuses.filter((s) => s === 429).length).toBe(59);
    // 3 free failures, then lockouts of 1, 2, 4, ... s: a sequential guesser gets only a few checks.
    expect(checked).toBeLessThanOrEqual(6);
    expect(statuses.at(-1)).toBe(429);
  });
});
