import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api } from '../helpers/client.js';

/**
 * Behind a balancer every connection comes from the balancer. With --trusted-proxies the client
 * its X-Forwarded-For names is the one throttled and audited, so one password guesser behind
 * HAProxy no longer locks every user out; without the flag the header is ignored, so a client
 * cannot forge its way out of a lockout.
 */
const KEY = 'trusted-proxies-0123456789';
let behind: RunningDaemon;
let direct: RunningDaemon;

beforeAll(async () => {
  [behind, direct] = await Promise.all([
    startDaemon({ args: ['--api-key', KEY, '--trusted-proxies', '127.0.0.0/8'] }),
    startDaemon({ args: ['--api-key', KEY] }),
  ]);
});
afterAll(async () => {
  await Promise.all([behind?.cleanup(), direct?.cleanup()]);
});

const from = (d: RunningDaemon, client: string, key: string) =>
  api(d.url, `/sessions?api_key=${key}`, { headers: { 'X-Forwarded-For': client } });
const failedFrom = async (d: RunningDaemon) =>
  (await api(d.url, `/audit?type=auth_failed&limit=100&api_key=${KEY}`)).body.events.map((e: { source_ip: string }) => e.source_ip);

describe('--trusted-proxies', () => {
  it('behind a trusted proxy: the guesser named in X-Forwarded-For is locked out and audited, another client is not', async () => {
    const guesses = await Promise.all(Array.from({ length: 12 }, (_, i) => from(behind, '203.0.113.7', `guess-${i}`)));
    expect(guesses.some((g) => g.status === 429)).toBe(true);
    expect((await from(behind, '203.0.113.7', KEY)).status).toBe(429);
    expect((await from(behind, '198.51.100.2', KEY)).status).toBe(200);
    // A client's own X-Forwarded-For entry sits left of the proxy's and is not believed.
    expect((await from(behind, '198.51.100.2, 203.0.113.7', KEY)).status).toBe(429);
    const sources = await failedFrom(behind);
    expect(sources.length).toBeGreaterThan(0);
    expect(new Set(sources)).toEqual(new Set(['203.0.113.7']));
  });

  it('a local process naming a new client in every guess is stopped at the proxy (50 wrong keys through one proxy)', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 60; i++) statuses.push((await from(behind, `192.0.2.${i + 1}`, `guess-${i}`)).status);
    // The test before already spent some of the proxy's 50.
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(50);
    expect(statuses.at(-1)).toBe(429);
  });

  it('without the flag X-Forwarded-For is ignored: a forged one does not escape the lockout', async () => {
    await Promise.all(Array.from({ length: 12 }, (_, i) => from(direct, `203.0.113.${i}`, `guess-${i}`)));
    // Every guess counted against the connection's own address, which the right key shares.
    expect((await from(direct, '198.51.100.2', KEY)).status).toBe(429);
  });
});
