import crypto from 'node:crypto';
import type { ViewerSession } from '../types.js';
import { vncAuthResponse } from './des.js';
import type { VncDirectory } from './types.js';

/**
 * Finds the session whose password produced `response` (RFC 6143 7.2.2). Every candidate is
 * computed and compared in constant time, with no early exit, so timing does not reveal how
 * many sessions there are or which one nearly matched.
 */
export function identifySession(directory: VncDirectory, challenge: Buffer, response: Buffer): ViewerSession | null {
  let found: ViewerSession | null = null;
  for (const { password, session } of directory.vncSessions()) {
    const expected = vncAuthResponse(password, challenge);
    const match = response.length === expected.length && crypto.timingSafeEqual(expected, response);
    if (match && !found) found = session;
  }
  return found;
}

/**
 * Per source IP backoff for wrong passwords: the failure answer is delayed base * 2^(n-1) for
 * the n-th failure within `window`, capped, so guessing 8-character DES keys stays slow.
 */
export class FailureBackoff {
  private readonly failures = new Map<string, { count: number; last: number }>();

  constructor(
    private readonly baseMs = 500,
    private readonly capMs = 10_000,
    private readonly windowMs = 5 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records a failure from `ip` and returns how long to wait before answering it. */
  fail(ip: string): number {
    const t = this.now();
    for (const [k, v] of this.failures) if (t - v.last > this.windowMs) this.failures.delete(k);
    const entry = this.failures.get(ip) ?? { count: 0, last: t };
    entry.count++;
    entry.last = t;
    this.failures.set(ip, entry);
    return Math.min(this.baseMs * 2 ** (entry.count - 1), this.capMs);
  }
}
