import { afterEach, describe, expect, it, vi } from 'vitest';
import { CredentialThrottle } from '../../../src/util/throttle.js';
import { vncAuthResponse } from '../../../src/liveview/vnc/des.js';
import type { VncServer } from '../../../src/liveview/vnc/server.js';
import { RawClient, session, startServer } from './helpers.js';

/** VNC Authentication with a per-source CredentialThrottle (issue 8 item 6), on real sockets. */
const servers: VncServer[] = [];
const raws: RawClient[] = [];
afterEach(async () => {
  for (const r of raws.splice(0)) r.socket.destroy();
  for (const s of servers.splice(0)) await s.close();
});

async function serve(throttle: CredentialThrottle) {
  const a = session('s1');
  const s = await startServer([{ password: 'right-pw', session: a }], throttle);
  servers.push(s.server);
  return { ...s, a };
}

function raw(port: number): RawClient {
  const r = new RawClient(port);
  raws.push(r);
  return r;
}

/** A 3.8 client up to the challenge. */
async function toChallenge(port: number): Promise<{ r: RawClient; challenge: Buffer }> {
  const r = raw(port);
  await r.read(12);
  r.write(Buffer.from('RFB 003.008\n'));
  const n = (await r.read(1))[0]!;
  if (n === 0) throw new Error((await r.read(await r.u32())).toString());
  await r.read(n);
  r.write(Buffer.of(2));
  return { r, challenge: await r.read(16) };
}

/** Answers the challenge; resolves with null on success, the 3.8 failure reason otherwise. */
async function answer(c: { r: RawClient; challenge: Buffer }, password: string): Promise<string | null> {
  c.r.write(vncAuthResponse(password, c.challenge));
  if ((await c.r.u32()) === 0) return null;
  return (await c.r.read(await c.r.u32())).toString();
}

async function attempt(port: number, password: string): Promise<string | null> {
  try {
    return await answer(await toChallenge(port), password);
  } catch (e) {
    return `refused: ${(e as Error).message}`;
  }
}

function clock() {
  const c = { t: 5_000_000, now: () => c.t };
  return c;
}

describe('VNC password guessing', () => {
  it('locks a source out after 3 free failures: even the right password is refused unchecked, until the lockout ends', async () => {
    const c = clock();
    const { port, details, server } = await serve(new CredentialThrottle({}, c.now));
    for (let i = 0; i < 4; i++) expect(await attempt(port, `guess-${i}`)).toBe('authentication failed');
    expect(details).toEqual([
      { failures: 1, locked_ms: 0, refused_unchecked: 0 },
      { failures: 2, locked_ms: 0, refused_unchecked: 0 },
      { failures: 3, locked_ms: 0, refused_unchecked: 0 },
      { failures: 4, locked_ms: 1000, refused_unchecked: 0 },
    ]);
    // Refused right after the version (RFC 6143 7.1.2: no security types, then the reason).
    expect(await attempt(port, 'right-pw')).toBe('refused: too many failed attempts from your address; try again in 1 s');
    expect(await attempt(port, 'guess-4')).toMatch(/^refused: too many failed attempts/);
    expect(details).toHaveLength(4); // refusals write no audit row...
    c.t += 1000;
    expect(await attempt(port, 'guess-5')).toBe('authentication failed');
    // ...they are counted in the next one, and the lockout doubled.
    expect(details.at(-1)).toEqual({ failures: 5, locked_ms: 2000, refused_unchecked: 2 });
    c.t += 2000;
    expect(await attempt(port, 'right-pw')).toBeNull();
    // Success resets the source.
    await vi.waitFor(() => expect(server.throttle.inFlight).toBe(0));
    expect(server.throttle.lockedForMs('127.0.0.1')).toBe(0);
  });

  it('3.3 clients are refused with security type 0 and the reason', async () => {
    const c = clock();
    const { port } = await serve(new CredentialThrottle({}, c.now));
    for (let i = 0; i < 4; i++) await attempt(port, 'nope');
    const r = raw(port);
    await r.read(12);
    r.write(Buffer.from('RFB 003.003\n'));
    expect(await r.u32()).toBe(0);
    expect((await r.read(await r.u32())).toString()).toMatch(/too many failed attempts/);
    await r.untilClosed();
  });

  it('an attempt that was waiting when the lockout began is refused without a check', async () => {
    const c = clock();
    const { port, failures } = await serve(new CredentialThrottle({ perSourceInFlight: 5 }, c.now));
    const waiting = await Promise.all([1, 2, 3, 4, 5].map(() => toChallenge(port)));
    for (const w of waiting.slice(0, 4)) expect(await answer(w, 'nope')).toBe('authentication failed');
    expect(await answer(waiting[4]!, 'right-pw')).toMatch(/^too many failed attempts/);
    expect(failures).toHaveLength(4);
  });

  it('caps unauthenticated connections per source; a place frees when one goes', async () => {
    const { port, a } = await serve(new CredentialThrottle({ perSourceInFlight: 2 }));
    const held = await Promise.all([toChallenge(port), toChallenge(port)]);
    expect(await attempt(port, 'right-pw')).toMatch(/^refused: more than 2 unauthenticated attempts/);
    held[0]!.r.socket.destroy();
    await vi.waitFor(async () => expect(await attempt(port, 'right-pw')).toBeNull());
    // Leaving without an answer is not a failure; the refused and the good one joined nothing else.
    expect(a.handles.length).toBeGreaterThanOrEqual(1);
  });
});
