import net from 'node:net';

/**
 * Per-source throttle for guessable credentials (VNC password, WebRTC credentials, the API
 * key): issue 8 item 6. Pure logic with an injectable clock.
 *
 * - Failures are counted per source across connections. The first `freeFailures` cost
 *   nothing; each further one locks the source out for base * 2^k ms, capped at max.
 * - While locked out, every attempt is refused before the credential is looked at (the right
 *   one included), so a guesser learns nothing during a lockout.
 * - A success resets the source. Failures are forgotten after `forgetAfterMs` of quiet.
 * - Attempts in flight (admitted, no outcome yet: an unauthenticated connection) are capped
 *   per source and in total.
 * - At most `maxSources` sources are remembered; the least recently seen idle one goes first,
 *   a locked-out one last (else rotating sources would unlock it).
 *
 * Usage: `const a = throttle.begin(ip); if (!a.ok) refuse(a.message, a.retryAfterMs);`
 * then check, then `a.ticket.succeeded()` or `a.ticket.failed()` (or `release()` when the
 * client left without trying).
 */

export interface ThrottleLimits {
  /** Failures from one source before lockouts start. */
  freeFailures: number;
  /** The first lockout; each further failure doubles it. */
  baseLockoutMs: number;
  maxLockoutMs: number;
  /** Attempts admitted and not yet decided, per source and in total. */
  perSourceInFlight: number;
  totalInFlight: number;
  /** Sources remembered at most (memory bound). */
  maxSources: number;
  /** A source with no failure for this long (and no lockout) starts afresh. */
  forgetAfterMs: number;
}

export const DEFAULT_THROTTLE_LIMITS: Readonly<ThrottleLimits> = Object.freeze({
  freeFailures: 3,
  baseLockoutMs: 1000,
  maxLockoutMs: 60_000,
  perSourceInFlight: 4,
  totalInFlight: 64,
  maxSources: 10_000,
  forgetAfterMs: 15 * 60_000,
});

export interface Refusal {
  reason: 'locked_out' | 'too_many_attempts';
  /** When trying again may succeed (whole seconds are what a Retry-After header carries). */
  retryAfterMs: number;
  /** For the client; says nothing about the credential. */
  message: string;
}

export type Admission = { ok: true; ticket: AttemptTicket } | ({ ok: false } & Refusal);

/** What a failure did, for the audit row (one row per checked failure, none per refusal). */
export interface FailureReport {
  /** Consecutive failures of this source. */
  failures: number;
  /** The lockout this failure started (0: still a free failure). */
  lockedForMs: number;
  /** Attempts refused unchecked since the previous report for this source. */
  refusedUnchecked: number;
}

export interface AttemptTicket {
  /**
   * Call right before checking: a lockout may have started since the ticket was issued (a
   * parallel attempt failed meanwhile). A refusal spends the ticket: refuse without checking.
   */
  recheck(): Refusal | null;
  succeeded(): void;
  failed(): FailureReport;
  /** The client left before an outcome: neither success nor failure. */
  release(): void;
}

interface SourceState {
  failures: number;
  lastFailureAt: number;
  lockedUntil: number;
  inFlight: number;
  refused: number;
}

export class CredentialThrottle {
  readonly limits: Readonly<ThrottleLimits>;
  private readonly sources = new Map<string, SourceState>();
  private total = 0;

  constructor(
    limits: Partial<ThrottleLimits> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.limits = Object.freeze({ ...DEFAULT_THROTTLE_LIMITS, ...limits });
  }

  /** Attempts admitted and not yet decided, all sources. */
  get inFlight(): number {
    return this.total;
  }

  /** Sources remembered (tests, metrics). */
  get trackedSources(): number {
    return this.sources.size;
  }

  /** How long `source` is still locked out for (0: not locked out). */
  lockedForMs(source: string): number {
    const s = this.sources.get(sourceKey(source));
    return s ? Math.max(0, s.lockedUntil - this.now()) : 0;
  }

  begin(source: string): Admission {
    const key = sourceKey(source);
    const t = this.now();
    let s = this.sources.get(key);
    if (s) {
      this.touch(key, s);
      this.forgetIfQuiet(s, t);
      const locked = this.lockout(s, t);
      if (locked) return { ok: false, ...locked };
      if (s.inFlight >= this.limits.perSourceInFlight) {
        s.refused++;
        return { ok: false, ...busy(`more than ${this.limits.perSourceInFlight} unauthenticated attempts from your address at once`) };
      }
    }
    if (this.total >= this.limits.totalInFlight) {
      if (s) s.refused++;
      return { ok: false, ...busy('too many unauthenticated attempts at once') };
    }
    if (!s) {
      s = { failures: 0, lastFailureAt: 0, lockedUntil: 0, inFlight: 0, refused: 0 };
      this.makeRoom(t);
      this.sources.set(key, s);
    }
    s.inFlight++;
    this.total++;
    return { ok: true, ticket: this.ticket(key, s) };
  }

  private ticket(key: string, s: SourceState): AttemptTicket {
    let open = true;
    const end = () => {
      if (!open) return false;
      open = false;
      s.inFlight--;
      this.total--;
      return true;
    };
    return {
      recheck: () => {
        if (!open) return null;
        const locked = this.lockout(s, this.now());
        if (locked) end();
        return locked;
      },
      succeeded: () => {
        if (!end()) return;
        s.failures = 0;
        s.lockedUntil = 0;
        s.refused = 0;
        if (s.inFlight === 0 && this.sources.get(key) === s) this.sources.delete(key);
      },
      failed: () => {
        if (!end()) return { failures: s.failures, lockedForMs: 0, refusedUnchecked: 0 };
        const t = this.now();
        this.forgetIfQuiet(s, t);
        s.failures++;
        s.lastFailureAt = t;
        const over = s.failures - this.limits.freeFailures;
        // 2 ** large is Infinity, which min() caps just the same.
        const lockedForMs = over > 0 ? Math.min(this.limits.baseLockoutMs * 2 ** (over - 1), this.limits.maxLockoutMs) : 0;
        if (lockedForMs > 0) s.lockedUntil = Math.max(s.lockedUntil, t + lockedForMs);
        const report = { failures: s.failures, lockedForMs, refusedUnchecked: s.refused };
        s.refused = 0;
        return report;
      },
      release: () => void end(),
    };
  }

  /** The refusal for a locked-out source (counted), or null. */
  private lockout(s: SourceState, t: number): Refusal | null {
    if (s.lockedUntil <= t) return null;
    s.refused++;
    const retryAfterMs = s.lockedUntil - t;
    return {
      reason: 'locked_out',
      retryAfterMs,
      message: `too many failed attempts from your address; try again in ${Math.ceil(retryAfterMs / 1000)} s`,
    };
  }

  private forgetIfQuiet(s: SourceState, t: number): void {
    if (s.failures > 0 && s.lockedUntil <= t && t - s.lastFailureAt > this.limits.forgetAfterMs) {
      s.failures = 0;
      s.refused = 0;
    }
  }

  /** Most recently seen last: eviction takes from the front. */
  private touch(key: string, s: SourceState): void {
    this.sources.delete(key);
    this.sources.set(key, s);
  }

  /**
   * Frees a place for one more source: forgotten ones first, then the oldest idle one still
   * within its free failures. A locked-out (or escalated) source goes only when every idle one is locked out (evicting it
   * would unlock it, so rotating fresh sources must not reach it), the soonest free first.
   */
  private makeRoom(t: number): void {
    if (this.sources.size < this.limits.maxSources) return;
    for (const [k, s] of this.sources) {
      this.forgetIfQuiet(s, t);
      if (s.inFlight === 0 && s.failures === 0 && s.lockedUntil <= t) this.sources.delete(k);
    }
    for (const [k, s] of this.sources) {
      if (this.sources.size < this.limits.maxSources) return;
      // Not one past its free failures either: between lockouts its escalation must hold.
      if (s.inFlight === 0 && s.lockedUntil <= t && s.failures <= this.limits.freeFailures) this.sources.delete(k);
    }
    while (this.sources.size >= this.limits.maxSources) {
      let soonest: string | null = null;
      let until = Infinity;
      for (const [k, s] of this.sources) {
        if (s.inFlight === 0 && s.lockedUntil < until) [soonest, until] = [k, s.lockedUntil];
      }
      if (soonest === null) return;
      this.sources.delete(soonest);
    }
  }
}

function busy(message: string): Refusal {
  return { reason: 'too_many_attempts', retryAfterMs: 1000, message: `${message}; try again shortly` };
}

/** The one source every loopback address counts as. */
export const LOOPBACK_SOURCE = 'loopback';

/**
 * What counts as one source: an IPv4 address (also when IPv4-mapped), or an IPv6 /64 (one
 * subscriber usually holds a whole /64, so single IPv6 addresses would be free to rotate).
 * All of loopback (127.0.0.0/8, ::1, IPv4-mapped 127/8) is one source: any local process may
 * bind any 127.x address, so single addresses would be free to rotate there too. The price:
 * a local guesser can delay local clients for at most the max lockout.
 */
export function sourceKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const v4 = mapped ? mapped[1]! : ip;
  if (net.isIPv4(v4)) return v4.startsWith('127.') ? LOOPBACK_SOURCE : v4;
  if (!net.isIPv6(ip)) return ip;
  if (isIpv6Loopback(ip)) return LOOPBACK_SOURCE;
  // Only the first four groups matter, and a trailing dotted quad can only be in the last two.
  const addr = ip.split('%')[0]!;
  const [head = '', tail = ''] = addr.split('::') as [string, string?];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])) : [];
  const groups = addr.includes('::') ? [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t] : h;
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

/** ::1 in any spelling (0:0:0:0:0:0:0:1, ::0:1, ...). */
function isIpv6Loopback(ip: string): boolean {
  const addr = ip.split('%')[0]!;
  if (addr.includes('.')) return false;
  const [head = '', tail] = addr.split('::') as [string, string?];
  const groups = [...(head ? head.split(':') : []), ...(tail ? tail.split(':') : [])].map((g) => parseInt(g, 16));
  if (tail === undefined && groups.length !== 8) return false;
  return groups.length > 0 && groups.at(-1) === 1 && groups.slice(0, -1).every((g) => g === 0);
}
