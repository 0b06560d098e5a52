import crypto from 'node:crypto';

/**
 * The VNC Authentication response (RFC 6143 7.2.2): the 16-byte challenge DES-encrypted (ECB)
 * with the password as key, padded with zeros or truncated to 8 bytes, each key byte with its
 * bit order reversed (the VNC d3des convention). OpenSSL 3 dropped single DES from the default
 * provider; two-key triple DES with K1 = K2 is E(K, D(K, E(K, x))) = E(K, x).
 */
export function vncAuthResponse(password: string | Buffer, challenge: Buffer): Buffer {
  const key = Buffer.alloc(8);
  Buffer.from(password).copy(key, 0, 0, 8);
  for (let i = 0; i < 8; i++) key[i] = reverseBits(key[i]!);
  const cipher = crypto.createCipheriv('des-ede-ecb', Buffer.concat([key, key]), null);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(challenge), cipher.final()]);
}

function reverseBits(b: number): number {
  let r = 0;
  for (let i = 0; i < 8; i++) r |= ((b >> i) & 1) << (7 - i);
  return r;
}
