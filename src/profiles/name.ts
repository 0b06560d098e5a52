import { HandoffError } from '../util/errors.js';

/** API.md 3.1 `profile`: `[A-Za-z0-9._-]{1,64}`, not only dots (never `.` or `..` as a dir name). */
export const PROFILE_NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;

export function validProfileName(name: string): string {
  if (!PROFILE_NAME_RE.test(name)) throw new HandoffError('bad_request', 'profile must be 1-64 characters of A-Z a-z 0-9 . _ -');
  if (/^\.+$/.test(name)) throw new HandoffError('bad_request', 'profile must not consist only of dots');
  return name;
}
