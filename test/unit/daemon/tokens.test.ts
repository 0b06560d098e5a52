import { describe, expect, it } from 'vitest';
import { createHmac, randomBytes } from 'node:crypto';
import { LiveLinkSigner, type LiveLink } from '../../../src/liveview/tokens.js';

const key = randomBytes(32);
const link: LiveLink = { sessionId: 'sess-1', runId: 'run-1', kind: 'control', issuedAt: 1_700_000_000_000 };

/** Flips one character of a base64url string to another valid one. */
const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);

describe('LiveLinkSigner', () => {
  it('verifies what it signed, URL-safe', () => {
    const signer = new LiveLinkSigner(key);
    const token = signer.sign(link);
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(signer.verify(token)).toEqual(link);
    expect(signer.verify(signer.sign({ ...link, kind: 'view' }))).toEqual({ ...link, kind: 'view' });
  });

  it('rejects a tampered payload, a tampered signature, and another key', () => {
    const signer = new LiveLinkSigner(key);
    const token = signer.sign(link);
    const [payload, sig] = token.split('.') as [string, string];
    // Re-point the token at another session without re-signing.
    const forged = Buffer.from(JSON.stringify(['other', 'run-1', 'control', link.issuedAt])).toString('base64url');
    expect(signer.verify(`${forged}.${sig}`)).toBeNull();
    expect(signer.verify(`${flip(payload, 3)}.${sig}`)).toBeNull();
    expect(signer.verify(`${payload}.${flip(sig, 5)}`)).toBeNull();
    expect(signer.verify(`${payload}.${sig.slice(0, -1)}`)).toBeNull();
    expect(new LiveLinkSigner(randomBytes(32)).verify(token)).toBeNull();
  });

  it('rejects malformed tokens', () => {
    const signer = new LiveLinkSigner(key);
    const token = signer.sign(link);
    for (const bad of ['', '.', token.split('.')[0]!, `${token}.extra`, `.${token.split('.')[1]}`, 'x'.repeat(2000), `${token}${'A'.repeat(1100)}`]) {
      expect(signer.verify(bad), bad.slice(0, 40)).toBeNull();
    }
  });

  it('rejects a correctly signed payload that is not a link (wrong kind or shape)', () => {
    const signer = new LiveLinkSigner(key);
    const signed = (value: unknown) => {
      const payload = Buffer.from(JSON.stringify(value)).toString('base64url');
      return `${payload}.${createHmac('sha256', key).update(payload).digest('base64url')}`;
    };
    expect(signer.verify(signed(['s', 'r', 'control', 1]))).toEqual({ sessionId: 's', runId: 'r', kind: 'control', issuedAt: 1 });
    expect(signer.verify(signed(['s', 'r', 'admin', 1]))).toBeNull();
    expect(signer.verify(signed(['s', 'r', 'control', '1']))).toBeNull();
    expect(signer.verify(signed([1, 'r', 'control', 1]))).toBeNull();
    const notJson = Buffer.from('not json').toString('base64url');
    expect(signer.verify(`${notJson}.${createHmac('sha256', key).update(notJson).digest('base64url')}`)).toBeNull();
  });
});
