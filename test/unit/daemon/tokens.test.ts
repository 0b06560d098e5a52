import { describe, expect, it } from 'vitest';
import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { LiveLinkSigner, loadLinkKey, type LiveLink } from '../../../src/liveview/tokens.js';

const key = randomBytes(32);
const link: LiveLink = { sessionId: 'sess-1', runId: 'run-1', kind: 'control', issuedAt: 1_700_000_000_000, id: 'abc', generation: 0, singleUse: false };

/** Flips one character of a base64url string to another valid one. */
const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);

describe('LiveLinkSigner', () => {
  it('verifies what it signed, URL-safe', () => {
    const signer = new LiveLinkSigner(key);
    const token = signer.sign(link);
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(signer.verify(token)).toEqual(link);
    expect(signer.verify(signer.sign({ ...link, kind: 'view' }))).toEqual({ ...link, kind: 'view' });
    const single = { ...link, singleUse: true, generation: 3 };
    expect(signer.verify(signer.sign(single))).toEqual(single);
  });

  it('rejects a tampered payload, a tampered signature, and another key', () => {
    const signer = new LiveLinkSigner(key);
    const token = signer.sign(link);
    const [payload, sig] = token.split('.') as [string, string];
    // Re-point the token at another session without re-signing.
    const forged = Buffer.from(JSON.stringify(['other', 'run-1', 'control', link.issuedAt, 'abc', 0, 0])).toString('base64url');
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
    expect(signer.verify(signed(['s', 'r', 'control', 1, 'i', 0, 1]))).toEqual({ sessionId: 's', runId: 'r', kind: 'control', issuedAt: 1, id: 'i', generation: 0, singleUse: true });
    expect(signer.verify(signed(['s', 'r', 'admin', 1, 'i', 0, 0]))).toBeNull();
    expect(signer.verify(signed(['s', 'r', 'control', '1', 'i', 0, 0]))).toBeNull();
    expect(signer.verify(signed([1, 'r', 'control', 1, 'i', 0, 0]))).toBeNull();
    // The old four-field shape, a missing id, a fractional generation, a non-0/1 flag.
    expect(signer.verify(signed(['s', 'r', 'control', 1]))).toBeNull();
    expect(signer.verify(signed(['s', 'r', 'control', 1, null, 0, 0]))).toBeNull();
    expect(signer.verify(signed(['s', 'r', 'control', 1, 'i', 0.5, 0]))).toBeNull();
    expect(signer.verify(signed(['s', 'r', 'control', 1, 'i', 0, true]))).toBeNull();
    const notJson = Buffer.from('not json').toString('base64url');
    expect(signer.verify(`${notJson}.${createHmac('sha256', key).update(notJson).digest('base64url')}`)).toBeNull();
  });
});

describe('loadLinkKey', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'handoff-key-'));
    dirs.push(d);
    return d;
  };

  it('makes a 32-byte key 0600 once, leaves nothing aside, and reads the same key again', () => {
    const dir = tmp();
    const path = join(dir, 'live-link.key');
    const key = loadLinkKey(path);
    expect(key.length).toBe(32);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['live-link.key']);
    expect(loadLinkKey(path).equals(key)).toBe(true);
  });

  it('is 0600 even under a permissive umask', () => {
    const old = process.umask(0);
    try {
      const path = join(tmp(), 'live-link.key');
      loadLinkKey(path);
      expect(statSync(path).mode & 0o777).toBe(0o600);
    } finally {
      process.umask(old);
    }
  });

  it('narrows a key others may read to 0600 and says so', () => {
    const path = join(tmp(), 'live-link.key');
    const key = randomBytes(48);
    writeFileSync(path, key);
    chmodSync(path, 0o644);
    const warnings: string[] = [];
    expect(loadLinkKey(path, (m) => warnings.push(m)).equals(key)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/readable by others.*0600/);
    expect(warnings[0]).not.toContain(key.toString('hex'));
  });

  it('refuses an empty, short or oversize key, or a symlink, with a clear message', () => {
    const dir = tmp();
    for (const [name, bytes] of [['empty', 0], ['short', 31], ['huge', 5000]] as const) {
      const path = join(dir, name);
      writeFileSync(path, randomBytes(bytes), { mode: 0o600 });
      expect(() => loadLinkKey(path)).toThrow(new RegExp(`is ${Math.min(bytes, 4097)} bytes; it must be 32 to 4096 random bytes`));
      // Never replaced behind the operator's back.
      expect(readFileSync(path).length).toBe(bytes);
    }
    const target = join(dir, 'elsewhere');
    writeFileSync(target, randomBytes(32), { mode: 0o600 });
    symlinkSync(target, join(dir, 'link'));
    expect(() => loadLinkKey(join(dir, 'link'))).toThrow(/not a regular file/);
    expect(existsSync(target)).toBe(true);
  });
});
