import { createHash, timingSafeEqual } from 'node:crypto';

export interface RtcCredentials {
  /** null: any username (or none) is accepted, only the password counts. */
  username: string | null;
  /** '' with a null username: the session set no credentials. */
  password: string;
}

/** Fixed-length digests, so the comparison takes the same time whatever the lengths. */
const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * Checks a viewer's hello against the session's rtc_username / rtc_password in constant time
 * (both fields are always compared, and neither comparison depends on where they differ).
 */
export function credentialsMatch(expected: RtcCredentials, username: string | null, password: string | null): boolean {
  if (expected.username === null && expected.password === '') return true;
  const passOk = timingSafeEqual(digest(expected.password), digest(password ?? ''));
  const userOk = expected.username === null ? true : timingSafeEqual(digest(expected.username), digest(username ?? ''));
  // Both comparisons already ran; combining their results leaks nothing about either.
  return passOk && userOk;
}
