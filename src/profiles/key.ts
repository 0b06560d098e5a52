import { hkdfSync } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { readCapped } from '../util/read-capped.js';

const MIN_KEY_BYTES = 32;
const MAX_KEY_BYTES = 4096;

/**
 * The key profiles are sealed with at rest (AES-256-GCM), from `--profile-key` (64+ hex
 * characters) or `--profile-key-file` (a 0600 file of 32-4096 bytes, which the daemon never
 * makes: a key kept beside the profiles it protects would protect nothing). The AES key is
 * derived with HKDF, so any long enough secret works. Errors never include the key.
 * Neither set: null (profiles are kept as plain dirs, README "Profiles").
 */
export function loadProfileKey(o: { hex: string | null; file: string | null }): Buffer | null {
  if (o.hex && o.file) throw new Error('set one of --profile-key and --profile-key-file, not both');
  let secret: Buffer;
  if (o.hex) {
    if (!/^[0-9a-fA-F]+$/.test(o.hex) || o.hex.length % 2 || o.hex.length < MIN_KEY_BYTES * 2 || o.hex.length > MAX_KEY_BYTES * 2) {
      throw new Error(`--profile-key must be ${MIN_KEY_BYTES * 2} or more hex characters (e.g. from \`openssl rand -hex 32\`); the value given is not (not shown)`);
    }
    secret = Buffer.from(o.hex, 'hex');
  } else if (o.file) {
    secret = readKeyFile(o.file);
  } else {
    return null;
  }
  return Buffer.from(hkdfSync('sha256', secret, 'handoff-profiles', 'aes-256-gcm profile seal v1', 32));
}

function readKeyFile(path: string): Buffer {
  let st;
  try {
    st = lstatSync(path);
  } catch (e) {
    throw new Error(`profile key file ${path}: ${(e as NodeJS.ErrnoException).code ?? 'cannot read'} (make one with: head -c 32 /dev/urandom > FILE; chmod 600 FILE)`);
  }
  if (!st.isFile()) throw new Error(`profile key file ${path} is not a regular file`);
  // Unlike the live link key (which the daemon makes), this is the operator's file: a key
  // others could read may have leaked, so refuse rather than quietly narrow it.
  if ((st.mode & 0o077) !== 0) throw new Error(`profile key file ${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it (and rotate the key if it may have leaked)`);
  const key = readCapped(path, MAX_KEY_BYTES + 1);
  if (key.length < MIN_KEY_BYTES || key.length > MAX_KEY_BYTES) throw new Error(`profile key file ${path} is ${key.length} bytes; it must be ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES} bytes`);
  return key;
}
