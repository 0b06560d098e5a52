import { describe, expect, it } from 'vitest';
import { SessionRegistry } from '../../../src/sessions/registry.js';
import type { SessionDeps } from '../../../src/sessions/session.js';
import type { SessionParams } from '../../../src/sessions/params.js';
import { HandoffError } from '../../../src/util/errors.js';

/** README "Fault policy": while the audit cannot be written, no session is created and no agent attaches. */
function registry(degraded: string | null): SessionRegistry {
  const audit = { degraded, get writable() { return degraded === null; } };
  return new SessionRegistry({ config: { maxSessions: 8 }, audit } as unknown as SessionDeps);
}

const refusal = (fn: () => unknown): HandoffError => {
  try {
    fn();
  } catch (e) {
    return e as HandoffError;
  }
  throw new Error('did not throw');
};

describe('SessionRegistry and an unwritable audit', () => {
  it('refuses create and attachAgent with audit_unavailable before anything is built', () => {
    const r = registry('SQLITE_BUSY: database is locked (1 rows queued)');
    expect(r.auditWritable).toBe(false);
    let paramsAsked = false;
    const params = () => ((paramsAsked = true), {} as SessionParams);
    for (const e of [refusal(() => r.create('x', {} as SessionParams, false)), refusal(() => r.attachAgent('x', params, () => true)), refusal(() => r.requireAudit())]) {
      expect(e).toBeInstanceOf(HandoffError);
      expect(e.code).toBe('audit_unavailable');
      expect(e.detail).toContain('SQLITE_BUSY');
    }
    expect(paramsAsked).toBe(false);
    expect(r.liveCount()).toBe(0);
  });

  it('lets everything through when the audit is writable', () => {
    const r = registry(null);
    expect(r.auditWritable).toBe(true);
    expect(() => r.requireAudit()).not.toThrow();
  });
});
