import crypto from 'node:crypto';

/**
 * The VNC Authentication response (RFC 6143 7.2.2): the 16-byte challenge DES-encrypted (ECB)
 * with the password as key, padded with zeros or truncated to 8 bytes, each key byte with its
 * bit order reversed (the VNC d3des convention). OpenSSL 3 dropped single DES from the default
 * provider; two-key triple DES with K1 = K2 is E(K, D(K, E(K, x))) = E(K, x).
 * A string password is taken as UTF-8 (what a client on a UTF-8 system sends).
 */
export function vncAuthResponse(password: string | Buffer, challenge: Buffer): Buffer {
  return desEncrypt(desKey(Buffer.from(password)), challenge);
}

/** The challenge encrypted with an 8-byte key from vncDesKeys(). */
export function desEncrypt(key: Buffer, challenge: Buffer): Buffer {
  const cipher = crypto.createCipheriv('des-ede-ecb', Buffer.concat([key, key]), null);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(challenge), cipher.final()]);
}

/**
 * Every DES key a VNC client may derive from `password`: clients disagree on how characters
 * become bytes beyond ASCII. UTF-8 clients (TigerVNC, Remmina on a UTF-8 locale) send UTF-8;
 * noVNC sends each character's code unit as one byte (Latin-1). ASCII gives one key, other
 * Latin-1 text two; params.ts refuses the characters neither carries faithfully.
 */
export function vncDesKeys(password: string): Buffer[] {
  const utf8 = desKey(Buffer.from(password, 'utf8'));
  const latin1 = desKey(Buffer.from(password, 'latin1'));
  return utf8.equals(latin1) ? [utf8] : [utf8, latin1];
}

/**
 * Whether one password's response can authenticate as the other: some pair of their keys is
 * the same DES key. DES ignores the lowest bit of every key byte (its parity bit), which after
 * the VNC bit reversal is the top bit of the password byte; only the first 8 bytes count.
 */
export function vncPasswordsCollide(a: string, b: string): boolean {
  const bKeys = vncDesKeys(b).map(effectiveKey);
  return vncDesKeys(a).some((k) => bKeys.some((o) => o.equals(effectiveKey(k))));
}

function effectiveKey(key: Buffer): Buffer {
  return Buffer.from(key.map((byte) => byte & 0xfe));
}

/** The first 8 bytes, zero-padded, each with its bit order reversed. */
function desKey(bytes: Buffer): Buffer {
  const key = Buffer.alloc(8);
  bytes.copy(key, 0, 0, 8);
  for (let i = 0; i < 8; i++) key[i] = reverseBits(key[i]!);
  return key;
}

function reverseBits(b: number): number {
  let r = 0;
  for (let i = 0; i < 8; i++) r |= ((b >> i) & 1) << (7 - i);
  return r;
}
