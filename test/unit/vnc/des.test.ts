import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { desEncrypt, vncAuthResponse, vncDesKeys, vncPasswordsCollide } from '../../../src/liveview/vnc/des.js';

// rfb2 ships Richard Outerbridge's d3des (public domain) with the VNC bit order: an independent
// implementation to check against.
const d3des = createRequire(import.meta.url)('rfb2/d3des.js') as {
  response(challenge: Buffer, password: string): Buffer;
};

const reverse = (b: number) => parseInt(b.toString(2).padStart(8, '0').split('').reverse().join(''), 2);

describe('VNC DES response', () => {
  it('matches the textbook DES known answer once the VNC bit reversal is undone', () => {
    // FIPS 46 worked example: key 133457799BBCDFF1, plaintext 0123456789ABCDEF -> 85E813540F0AB405.
    // VNC reverses each key byte, so the password whose reversal is that key must give it.
    const password = Buffer.from([...Buffer.from('133457799BBCDFF1', 'hex')].map(reverse));
    const plain = Buffer.from('0123456789ABCDEF0123456789ABCDEF', 'hex');
    expect(vncAuthResponse(password, plain).toString('hex')).toBe('85e813540f0ab40585e813540f0ab405');
  });

  it('matches d3des for password "password" and challenge 00..0f', () => {
    const challenge = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
    expect(d3des.response(challenge, 'password').toString('hex')).toBe('b866924125c8eebb9debc1db61c538e2');
    expect(vncAuthResponse('password', challenge).toString('hex')).toBe('b866924125c8eebb9debc1db61c538e2');
  });

  it('pads short and truncates long passwords to 8 bytes like d3des', () => {
    for (const pw of ['', 'a', 'secret', 'exactly8', 'muchlongerthan8']) {
      const challenge = crypto.randomBytes(16);
      expect(vncAuthResponse(pw, challenge)).toEqual(d3des.response(challenge, pw));
    }
    const c = crypto.randomBytes(16);
    expect(vncAuthResponse('exactly8', c)).toEqual(vncAuthResponse('exactly8-and-more', c));
  });
});

describe('VNC password keys', () => {
  it('derives the UTF-8 key, plus the Latin-1 one noVNC uses when they differ', () => {
    expect(vncDesKeys('password')).toHaveLength(1);
    const keys = vncDesKeys('éééé1234');
    expect(keys).toHaveLength(2);
    const c = crypto.randomBytes(16);
    expect(desEncrypt(keys[0]!, c)).toEqual(vncAuthResponse('éééé1234', c));
    // noVNC: one byte per character code (core/rfb.js genDES).
    expect(desEncrypt(keys[1]!, c)).toEqual(vncAuthResponse(Buffer.from([0xe9, 0xe9, 0xe9, 0xe9, 0x31, 0x32, 0x33, 0x34]), c));
  });

  it('finds the passwords that authenticate as each other', () => {
    // é is 2 UTF-8 bytes: both keys are éééé's 8 bytes.
    expect(vncPasswordsCollide('éééé1234', 'éééé5678')).toBe(true);
    // Same first 8 characters.
    expect(vncPasswordsCollide('abcdefgh-one', 'abcdefgh-two')).toBe(true);
    // Bytes that differ only in the top bit: DES ignores it (the parity bit after reversal).
    expect(vncPasswordsCollide('C)abcdef', 'éabcdef!')).toBe(true); // C3 A9 vs 43 29
    expect(vncPasswordsCollide('iabcdefg', 'éabcdefg')).toBe(true); // Latin-1 E9 vs 69
    const c = crypto.randomBytes(16);
    expect(vncAuthResponse('C)abcdef', c)).toEqual(vncAuthResponse('éabcdef!', c));
    expect(vncPasswordsCollide('abcdefgh', 'abcdefgi')).toBe(false);
    expect(vncPasswordsCollide('éééé1234', 'èééé1234')).toBe(false);
  });
});
