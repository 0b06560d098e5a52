import crypto from 'node:crypto';
import type { ViewerSession } from '../types.js';
import { desEncrypt, vncDesKeys } from './des.js';
import type { VncDirectory } from './types.js';

/**
 * Finds the session whose password produced `response` (RFC 6143 7.2.2), under any of the
 * byte encodings clients use (des.ts vncDesKeys). Every candidate is computed and compared in
 * constant time, with no early exit, so timing does not reveal how many sessions there are
 * or which one nearly matched.
 */
export function identifySession(directory: VncDirectory, challenge: Buffer, response: Buffer): ViewerSession | null {
  let found: ViewerSession | null = null;
  for (const { password, session } of directory.vncSessions()) {
    for (const key of vncDesKeys(password)) {
      const expected = desEncrypt(key, challenge);
      const match = response.length === expected.length && crypto.timingSafeEqual(expected, response);
      if (match && !found) found = session;
    }
  }
  return found;
}
