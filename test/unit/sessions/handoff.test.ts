import { afterEach, describe, expect, it, vi } from 'vitest';
import { HandoffMachine, MAX_HANDOFF_TIMEOUT_MS, parseHandoffRequest, parseHumanOutcome, type HandoffCompleted } from '../../../src/sessions/handoff.js';
import { HandoffError } from '../../../src/util/errors.js';

function machine(graceMs = 1000) {
  const completed: HandoffCompleted[] = [];
  const requested: { reason: string; renewed: boolean }[] = [];
  const m = new HandoffMachine(
    {
      requested: (h, meta) => requested.push({ reason: h.reason, renewed: meta.renewed }),
      completed: (e) => completed.push(e),
      changed: () => {},
    },
    graceMs,
  );
  return { m, completed, requested };
}

const req = (reason: string, timeoutMs?: number) => ({ reason, holdAgentInput: true, ...(timeoutMs ? { timeoutMs } : {}) });

afterEach(() => vi.useRealTimers());

describe('parseHandoffRequest: one validation for REST and CDP', () => {
  it('accepts the same request in both styles', () => {
    expect(parseHandoffRequest({ reason: 'log in', timeout_ms: 5000, hold_agent_input: false }, 'rest')).toEqual({ reason: 'log in', timeoutMs: 5000, holdAgentInput: false, singleUse: false });
    expect(parseHandoffRequest({ reason: 'log in', timeoutMs: 5000, holdAgentInput: false, singleUse: true }, 'cdp')).toEqual({ reason: 'log in', timeoutMs: 5000, holdAgentInput: false, singleUse: true });
  });

  it('caps the timeout on both (a timer past 2^31 ms would fire at once) and names the field as sent', () => {
    for (const [body, style, field] of [
      [{ reason: 'x', timeoutMs: 2 ** 31 }, 'cdp', 'timeoutMs'],
      [{ reason: 'x', timeout_ms: 2 ** 31 }, 'rest', 'timeout_ms'],
      [{ reason: 'x', timeoutMs: 999 }, 'cdp', 'timeoutMs'],
      [{ reason: 'x', timeoutMs: 1.5e3 + 0.5 }, 'cdp', 'timeoutMs'],
      [{ reason: 'x', timeoutMs: '5000' }, 'cdp', 'timeoutMs'],
      [{ reason: 'x', timeout_ms: Infinity }, 'rest', 'timeout_ms'],
    ] as const) {
      expect(() => parseHandoffRequest(body as Record<string, unknown>, style)).toThrow(new RegExp(field));
    }
    expect(parseHandoffRequest({ reason: 'x', timeout_ms: String(MAX_HANDOFF_TIMEOUT_MS) }, 'rest').timeoutMs).toBe(MAX_HANDOFF_TIMEOUT_MS);
  });

  it('refuses a missing reason and non-boolean flags; cuts the reason at 1000 characters', () => {
    expect(() => parseHandoffRequest({}, 'rest')).toThrow(HandoffError);
    expect(() => parseHandoffRequest({ reason: '' }, 'cdp')).toThrow(/reason/);
    expect(() => parseHandoffRequest({ reason: 'x', holdAgentInput: 'no' }, 'cdp')).toThrow(/holdAgentInput/);
    expect(() => parseHandoffRequest({ reason: 'x', hold_agent_input: 1 }, 'rest')).toThrow(/hold_agent_input/);
    expect(parseHandoffRequest({ reason: 'y'.repeat(5000) }, 'rest').reason).toHaveLength(1000);
    expect(parseHumanOutcome(undefined)).toBe('done');
    expect(() => parseHumanOutcome('timeout')).toThrow(/outcome/);
  });
});

describe('HandoffMachine', () => {
  it('idle -> requested -> active -> requested -> completed, and again', () => {
    const { m, completed } = machine();
    expect(m.state).toBe('idle');
    expect(m.complete('done', 'rest')).toBe(false);
    const h = m.request(req('log in'), 'rest');
    expect(m.state).toBe('requested');
    expect(m.holdsAgentInput).toBe(false);
    m.humanControls(true, 'viewer');
    expect(m.state).toBe('active');
    expect(m.holdsAgentInput).toBe(true);
    m.humanControls(false, 'screencast');
    expect(m.state).toBe('requested');
    expect(m.complete('failed', 'viewer')).toBe(true);
    expect(m.state).toBe('completed');
    expect(completed).toEqual([expect.objectContaining({ handoffId: h.id, outcome: 'failed', by: 'viewer' })]);
    expect(m.request(req('again'), 'rest').id).not.toBe(h.id);
  });

  it('the timeout ends it; the capped timer never overflows; completing clears it', () => {
    vi.useFakeTimers();
    const { m, completed } = machine();
    m.request(req('quick', 1000), 'cdp');
    vi.advanceTimersByTime(1000);
    expect(completed.map((c) => c.outcome)).toEqual(['timeout']);
    m.request(req('long', MAX_HANDOFF_TIMEOUT_MS), 'cdp');
    vi.advanceTimersByTime(60_000);
    expect(completed).toHaveLength(1);
    m.complete('done', 'rest');
    vi.advanceTimersByTime(MAX_HANDOFF_TIMEOUT_MS);
    expect(completed.map((c) => c.outcome)).toEqual(['timeout', 'done']);
  });

  it('a second request keeps the id, shows the new reason and restarts the timeout', () => {
    vi.useFakeTimers();
    const { m, completed, requested } = machine();
    const a = m.request(req('first', 2000), 'cdp');
    vi.advanceTimersByTime(1500);
    const b = m.request(req('second', 2000), 'cdp');
    expect(b).toMatchObject({ id: a.id, reason: 'second' });
    vi.advanceTimersByTime(1500);
    expect(completed).toHaveLength(0);
    vi.advanceTimersByTime(500);
    expect(completed.map((c) => c.outcome)).toEqual(['timeout']);
    expect(requested).toEqual([
      { reason: 'first', renewed: false },
      { reason: 'second', renewed: true },
    ]);
  });

  it('a link-started handoff waits the grace period for its human; a comeback keeps it', () => {
    vi.useFakeTimers();
    const { m, completed } = machine(15_000);
    m.request(req('live link opened'), 'screencast', { linkStarted: true, humanInControl: true });
    expect(m.state).toBe('active');
    m.humanControls(false, 'screencast');
    vi.advanceTimersByTime(14_000);
    m.humanControls(true, 'viewer');
    vi.advanceTimersByTime(60_000);
    expect(completed).toHaveLength(0);
    m.humanControls(false, 'webrtc');
    vi.advanceTimersByTime(15_000);
    expect(completed).toEqual([expect.objectContaining({ outcome: 'done', by: 'webrtc' })]);
  });

  it('an agent request taking over a link-started handoff stops it ending on leave', () => {
    vi.useFakeTimers();
    const { m, completed } = machine(1000);
    m.request(req('live link opened'), 'screencast', { linkStarted: true, humanInControl: true });
    m.request(req('please also accept the cookies'), 'cdp');
    m.humanControls(false, 'screencast');
    vi.advanceTimersByTime(10_000);
    expect(completed).toHaveLength(0);
  });

  it('close() cancels the open handoff, clears its timers and refuses new ones', () => {
    vi.useFakeTimers();
    const { m, completed } = machine();
    m.request(req('x', 5000), 'rest');
    m.close();
    expect(completed.map((c) => [c.outcome, c.by])).toEqual([['cancelled', 'daemon']]);
    vi.advanceTimersByTime(10_000);
    expect(completed).toHaveLength(1);
    expect(() => m.request(req('y'), 'rest')).toThrow(HandoffError);
  });
});
