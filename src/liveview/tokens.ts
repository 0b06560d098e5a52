import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, linkSync, lstatSync, rmSync, writeFileSync } from 'node:fs';
import { readCapped } from '../util/read-capped.js';
import { dirname, join } from 'node:path';

/** control: minted by the automation side, may start a handoff; view: anything else. */
export type LinkKind = 'control' | 'view';

export interface LiveLink {
  sessionId: string;
  runId: string;
  kind: LinkKind;
  /** ms since epoch */
  issuedAt: number;
  /** Random, so two links issued in the same millisecond are still two links. */
  id: string;
  /** The run's revocation generation at issue: DELETE /session/ID/live moves it on. */
  generation: number;
  /** Serves one viewer socket only (?single_use=true). */
  singleUse: boolean;
}

const MAX_TOKEN_LENGTH = 1024;

/** Live view tokens: `payload.signature`, both base64url, HMAC-SHA256 with the daemon's key. */
export class LiveLinkSigner {
  constructor(private readonly key: Buffer) {}

  sign(link: LiveLink): string {
    const fields = [link.sessionId, link.runId, link.kind, link.issuedAt, link.id, link.generation, link.singleUse ? 1 : 0];
    const payload = Buffer.from(JSON.stringify(fields)).toString('base64url');
    return `${payload}.${this.mac(payload)}`;
  }

  /** Returns the link a token names, or null when it is malformed or not ours. */
  verify(token: string): LiveLink | null {
    if (token.length > MAX_TOKEN_LENGTH) return null;
    const [payload, sig, extra] = token.split('.');
    if (!payload || !sig || extra !== undefined) return null;
    const expected = Buffer.from(this.mac(payload));
    const given = Buffer.from(sig);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    try {
      const [sessionId, runId, kind, issuedAt, id, generation, singleUse] = JSON.parse(Buffer.from(payload, 'base64url').toString()) as unknown[];
      if (typeof sessionId !== 'string' || typeof runId !== 'string' || typeof issuedAt !== 'number' || typeof id !== 'string') return null;
      if (kind !== 'control' && kind !== 'view') return null;
      if (!Number.isSafeInteger(generation) || (singleUse !== 0 && singleUse !== 1)) return null;
      return { sessionId, runId, kind, issuedAt, id, generation: generation as number, singleUse: singleUse === 1 };
    } catch {
      return null;
    }
  }

  private mac(payload: string): string {
    return createHmac('sha256', this.key).update(payload).digest('base64url');
  }
}

export const MIN_LINK_KEY_BYTES = 32;
const MAX_LINK_KEY_BYTES = 4096;

/**
 * The HMAC key for live links, kept in the state dir. Made once, 0600 from its first byte and
 * in place all at once (written aside, then hard-linked: never a partial or a replaced key).
 * A key file others may read is narrowed to 0600 (`onWarning` says so: the key may have
 * leaked, delete it to rotate); a short, empty or oversize key, or something that is not a
 * plain file, refuses to start.
 */
export function loadLinkKey(path: string, onWarning: (message: string) => void = () => {}): Buffer {
  if (!lstatSafe(path)) createKeyFile(path);
  const st = lstatSync(path);
  if (!st.isFile()) throw new Error(`live link key ${path} is not a regular file; remove it and start again to make a new key`);
  if ((st.mode & 0o077) !== 0) {
    chmodSync(path, 0o600);
    onWarning(`live link key ${path} was readable by others (mode ${(st.mode & 0o777).toString(8)}); made it 0600. Delete it and restart to rotate the key (open links stop working)`);
  }
  const key = readCapped(path, MAX_LINK_KEY_BYTES + 1);
  if (key.length < MIN_LINK_KEY_BYTES || key.length > MAX_LINK_KEY_BYTES) {
    throw new Error(
      `live link key ${path} is ${key.length} bytes; it must be ${MIN_LINK_KEY_BYTES} to ${MAX_LINK_KEY_BYTES} random bytes. ` +
        'Delete it and start again to make a new key (links issued so far stop working)',
    );
  }
  return key;
}

function createKeyFile(path: string): void {
  const tmp = join(dirname(path), `.live-link.key.${process.pid}.${randomBytes(6).toString('hex')}`);
  writeFileSync(tmp, randomBytes(MIN_LINK_KEY_BYTES), { mode: 0o600, flag: 'wx' });
  try {
    linkSync(tmp, path);
  } catch (e) {
    // Another process made it first: use theirs.
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    rmSync(tmp, { force: true });
  }
}

function lstatSafe(path: string) {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

