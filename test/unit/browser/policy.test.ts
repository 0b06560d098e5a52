import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromiumPolicy, chromiumPolicyPath, writeChromiumPolicy } from '../../../src/browser/policy.js';

describe('the Chromium policy barring the daemon', () => {
  it("blocks the daemon's port on every host, and the public URL's host when set", () => {
    const internal = ['chrome://*', 'chrome-untrusted://*', 'devtools://*', 'view-source:*'];
    expect(chromiumPolicy(8765, null)).toMatchObject({ URLBlocklist: ['*:8765', ...internal], AllowFileSelectionDialogs: false, NewTabPageLocation: 'about:blank' });
    expect(chromiumPolicy(8765, new URL('https://handoff.example.com')).URLBlocklist).toEqual(['*:8765', '.handoff.example.com', ...internal]);
  });

  it('is written to STATE_DIR/chromium-policy.json, replacing the previous port', () => {
    const dir = mkdtempSync(join(tmpdir(), 'handoff-policy-unit-'));
    try {
      writeChromiumPolicy(dir, 1111, null);
      expect(writeChromiumPolicy(dir, 2222, null)).toBe(chromiumPolicyPath(dir));
      expect(JSON.parse(readFileSync(join(dir, 'chromium-policy.json'), 'utf8'))).toEqual(chromiumPolicy(2222, null));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
