import { describe, expect, it } from 'vitest';
import { parseSessionParams, validVncPassword } from '../../../src/sessions/params.js';
import { HandoffError } from '../../../src/util/errors.js';

function refusal(fn: () => unknown): HandoffError {
  try {
    fn();
  } catch (e) {
    if (e instanceof HandoffError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('vnc_password validation', () => {
  it('takes printable ASCII and printable Latin-1, 8 characters or more', () => {
    for (const pw of ['12345678', 'correct horse ~!@#$%^&*()', 'éééé1234', 'Grüße aus Köln', '¡¿ÿ\u00a0þðßæ']) {
      expect(validVncPassword(pw)).toBe(pw);
      expect(parseSessionParams(new URLSearchParams({ enable_vnc: 'true', vnc_password: pw })).vncPassword).toBe(pw);
    }
  });

  it('refuses characters VNC clients cannot all send the same way, saying so', () => {
    for (const pw of ['日本語のパスワード', 'password€', 'emoji🙂pass', 'tab\there1', 'new\nline1', 'nul\u0000byte', 'del\u007fchar', 'c1\u0085control']) {
      const e = refusal(() => validVncPassword(pw));
      expect(e.code).toBe('bad_request');
      expect(e.message).toMatch(/printable ASCII and Latin-1/);
    }
  });

  it('still needs 8 characters when VNC is enabled, and ignores the password otherwise', () => {
    expect(refusal(() => validVncPassword('short')).message).toMatch(/at least 8 characters/);
    expect(refusal(() => parseSessionParams(new URLSearchParams({ enable_vnc: 'true' }))).code).toBe('bad_request');
    expect(parseSessionParams(new URLSearchParams({ vnc_password: '日本語' })).vncPassword).toBeNull();
  });
});
