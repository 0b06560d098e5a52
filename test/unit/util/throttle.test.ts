import { describe, expect, it } from 'vitest';
import { CredentialThrottle, sourceKey, type Admission, type AttemptTicket } from '../../../src/util/throttle.js';

function clock() {
  const c = { t: 1_000_000, now: () => c.t };
  return c;
}

function admitted(a: Admission): AttemptTicket {
  if (!a.ok) throw new Error(`refused: ${a.message}`);
  return a.ticket;
}

/** One complete failed attempt from `ip`; returns the report. */
function fail(th: CredentialThrottle, ip = '192.0.2.1') {
  return admitted(th.begin(ip)).failed();
}

describe('CredentialThrottle', () => {
  it('gives 3 free failures, then locks out for 1 s doubling per failure up to 60 s', () => {
    const c = clock();
    const th = new CredentialThrottle({}, c.now);
    expect([1, 2, 3].map(() => fail(th).lockedForMs)).toEqual([0, 0, 0]);
    const locks: number[] = [];
    for (let i = 0; i < 9; i++) {
      locks.push(fail(th).lockedForMs);
      c.t += locks.at(-1)!;
    }
    expect(locks).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  });

  it('refuses every attempt during a lockout without handing out a ticket, then admits again', () => {
    const c = clock();
    const th = new CredentialThrottle({}, c.now);
    for (let i = 0; i < 4; i++) fail(th);
    const r = th.begin('192.0.2.1');
    expect(r).toMatchObject({ ok: false, reason: 'locked_out', retryAfterMs: 1000 });
    expect(!r.ok && r.message).toMatch(/try again in 1 s/);
    c.t += 999;
    expect(th.begin('192.0.2.1').ok).toBe(false);
    c.t += 1;
    const ticket = admitted(th.begin('192.0.2.1'));
    // The refusals are reported once, with the next checked failure.
    expect(ticket.failed()).toEqual({ failures: 5, lockedForMs: 2000, refusedUnchecked: 2 });
  });

  it('a success resets the source: the next failures are free again', () => {
    const c = clock();
    const th = new CredentialThrottle({}, c.now);
    for (let i = 0; i < 4; i++) fail(th);
    c.t += 1000;
    admitted(th.begin('192.0.2.1')).succeeded();
    expect(th.trackedSources).toBe(0);
    expect([1, 2, 3].map(() => fail(th).lockedForMs)).toEqual([0, 0, 0]);
  });

  it('counts per source: another address is not locked out', () => {
    const th = new CredentialThrottle({}, clock().now);
    for (let i = 0; i < 4; i++) fail(th, '192.0.2.1');
    expect(th.begin('192.0.2.1').ok).toBe(false);
    expect(th.begin('192.0.2.2').ok).toBe(true);
  });

  it('a ticket issued before a lockout started refuses on recheck, and is spent', () => {
    const th = new CredentialThrottle({}, clock().now);
    const parallel = [1, 2, 3, 4].map(() => admitted(th.begin('192.0.2.1')));
    for (const t of parallel.slice(0, 3)) t.failed();
    const late = admitted(th.begin('192.0.2.1'));
    expect(late.recheck()).toBeNull();
    late.failed(); // the 4th failure: locked out now
    expect(parallel[3]!.recheck()).toMatchObject({ reason: 'locked_out' });
    expect(th.inFlight).toBe(0);
    // Spent: its outcome no longer counts.
    expect(parallel[3]!.failed().failures).toBe(4);
  });

  it('caps attempts in flight per source and in total; release gives the place back', () => {
    const th = new CredentialThrottle({ perSourceInFlight: 2, totalInFlight: 3 }, clock().now);
    const a = admitted(th.begin('192.0.2.1'));
    const b = admitted(th.begin('192.0.2.1'));
    expect(th.begin('192.0.2.1')).toMatchObject({ ok: false, reason: 'too_many_attempts' });
    const c = admitted(th.begin('192.0.2.2'));
    expect(th.begin('192.0.2.3')).toMatchObject({ ok: false, reason: 'too_many_attempts' });
    a.release();
    a.release(); // idempotent
    expect(th.inFlight).toBe(2);
    const d = admitted(th.begin('192.0.2.3'));
    for (const t of [b, c, d]) t.release();
    expect(th.inFlight).toBe(0);
    // A released attempt is neither a failure nor a success; the refusals are reported.
    expect(fail(th)).toEqual({ failures: 1, lockedForMs: 0, refusedUnchecked: 1 });
  });

  it('forgets failures after a quiet period', () => {
    const c = clock();
    const th = new CredentialThrottle({ forgetAfterMs: 60_000 }, c.now);
    for (let i = 0; i < 3; i++) fail(th);
    c.t += 60_001;
    expect(fail(th)).toMatchObject({ failures: 1, lockedForMs: 0 });
  });

  it('remembers at most maxSources, evicting idle ones oldest first and never one in flight', () => {
    const c = clock();
    const th = new CredentialThrottle({ maxSources: 3 }, c.now);
    const held = admitted(th.begin('10.0.0.1'));
    fail(th, '10.0.0.2');
    fail(th, '10.0.0.3');
    expect(th.trackedSources).toBe(3);
    fail(th, '10.0.0.4'); // evicts the oldest idle one: 10.0.0.2 (its one failure forgotten)
    expect(th.trackedSources).toBe(3);
    for (let i = 0; i < 3; i++) fail(th, '10.0.0.2');
    expect(fail(th, '10.0.0.2').failures).toBe(4);
    expect(th.trackedSources).toBeLessThanOrEqual(3);
    // The one in flight survived every eviction and still counts.
    expect(th.inFlight).toBe(1);
    held.failed();
    for (let i = 0; i < 10_000; i++) fail(th, `198.51.${(i >> 8) & 255}.${i & 255}`);
    expect(th.trackedSources).toBe(3);
  });

  it('evicts a locked-out source last: rotating through maxSources fresh sources does not unlock it', () => {
    const c = clock();
    const th = new CredentialThrottle({ maxSources: 100 }, c.now);
    for (let i = 0; i < 4; i++) fail(th, '10.0.0.66');
    expect(th.lockedForMs('10.0.0.66')).toBe(1000);
    // The attacker rotates sources, each with a free failure or a clean attempt.
    for (let i = 0; i < 1000; i++) {
      const ip = `198.51.${(i >> 8) & 255}.${i & 255}`;
      if (i % 2) fail(th, ip);
      else admitted(th.begin(ip)).release();
    }
    expect(th.trackedSources).toBeLessThanOrEqual(100);
    expect(th.begin('10.0.0.66')).toMatchObject({ ok: false, reason: 'locked_out' });
    // Between two lockouts the source is not locked, but its escalation is kept all the same.
    c.t += th.lockedForMs('10.0.0.66') + 1;
    expect(th.lockedForMs('10.0.0.66')).toBe(0);
    for (let i = 0; i < 1000; i++) fail(th, `203.0.${(i >> 8) & 255}.${i & 255}`);
    expect(fail(th, '10.0.0.66').failures).toBe(5);
    // Memory stays bounded even when every remembered source is locked out: the lockout that
    // ends soonest goes first.
    const small = new CredentialThrottle({ maxSources: 3, freeFailures: 0 }, c.now);
    for (const ip of ['10.0.1.1', '10.0.1.2', '10.0.1.3', '10.0.1.4']) {
      fail(small, ip);
      c.t += 100;
    }
    expect(small.trackedSources).toBe(3);
    expect(small.lockedForMs('10.0.1.1')).toBe(0);
    expect(small.lockedForMs('10.0.1.2')).toBeGreaterThan(0);
  });

  it('groups IPv6 sources by /64 and unwraps IPv4-mapped addresses', () => {
    expect(sourceKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(sourceKey('192.0.2.7')).toBe('192.0.2.7');
    expect(sourceKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('2001:0db8:0001:0002:0:0:0:9')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('::2')).toBe('0:0:0:0::/64');
    expect(sourceKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    const th = new CredentialThrottle({}, clock().now);
    for (let i = 0; i < 4; i++) fail(th, `2001:db8:1:2::${i + 1}`);
    expect(th.begin('2001:db8:1:2:ffff::9').ok).toBe(false);
    expect(th.begin('2001:db8:1:3::1').ok).toBe(true);
  });

  it('counts all of loopback as one source (127/8, ::1, IPv4-mapped): rotating 127.x addresses buys no guesses', () => {
    for (const ip of ['127.0.0.1', '127.0.0.20', '127.255.255.254', '::1', '0:0:0:0:0:0:0:1', '::0:1', '::ffff:127.0.0.1', '::FFFF:127.9.9.9']) expect(sourceKey(ip)).toBe('loopback');
    for (const ip of ['128.0.0.1', '10.127.0.1', '::ffff:10.0.0.1']) expect(sourceKey(ip)).not.toBe('loopback');
    expect(sourceKey('1::1')).not.toBe('loopback');
    const th = new CredentialThrottle({}, clock().now);
    for (let i = 0; i < 4; i++) fail(th, `127.0.${i}.${i + 2}`);
    for (const ip of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.5']) expect(th.begin(ip)).toMatchObject({ ok: false, reason: 'locked_out' });
    expect(th.begin('192.0.2.7').ok).toBe(true);
  });
});
