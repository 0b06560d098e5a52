import { afterEach, describe, expect, it, vi } from 'vitest';
import { parsePageMessage } from '../../../src/liveview/page-messages.js';
import { ViewerPageActions } from '../../../src/liveview/page-actions.js';
import { cleanHint } from '../../../src/sessions/page-ui.js';
import type { FocusHint, PagePort } from '../../../src/liveview/types.js';

// Issue 12: the phone keyboard's focus hint (a tap's probe and the daemon's answers).
describe('the focus hint', () => {
  afterEach(() => vi.useRealTimers());

  it('a probe is a tab message without an id', () => {
    expect(parsePageMessage({ type: 'tab', action: 'focus' })).toEqual({ type: 'tab', action: 'focus' });
    expect(parsePageMessage({ type: 'tab', action: 'focus', id: 'x'.repeat(1000) })).toEqual({ type: 'tab', action: 'focus' });
  });

  it('keeps only editable, a known kind and a known inputmode: never a value or anything else the page says', () => {
    expect(cleanHint({ editable: true, kind: 'password', inputMode: 'numeric', value: 'hunter2', name: 'pw' })).toEqual({ editable: true, kind: 'password', inputMode: 'numeric' });
    expect(cleanHint({ editable: true, kind: 'x'.repeat(10_000), inputMode: '<script>' })).toEqual({ editable: true });
    expect(cleanHint({ editable: false, kind: 'text' })).toEqual({ editable: false });
    expect(cleanHint({ editable: null })).toEqual({ editable: null });
    expect(cleanHint({ editable: 'yes' })).toBeNull();
    expect(cleanHint('editable')).toBeNull();
    expect(cleanHint(null)).toBeNull();
  });

  it('after a tap: the first read, then only changes; a new tap starts over', async () => {
    vi.useFakeTimers();
    const answers: FocusHint[] = [{ editable: false }, { editable: true, kind: 'text' }, { editable: true, kind: 'text' }, { editable: true, kind: 'text' }];
    let reads = 0;
    const port = { focusHint: async () => answers[Math.min(reads++, answers.length - 1)]! } as unknown as PagePort;
    const sent: object[] = [];
    const actions = new ViewerPageActions(() => port, { transport: 'screencast', sourceIp: '127.0.0.1' }, (m) => sent.push(m));
    actions.handle({ type: 'tab', action: 'focus' });
    await vi.advanceTimersByTimeAsync(1000);
    expect(reads).toBe(4);
    expect(sent).toEqual([{ type: 'focus', editable: false }, { type: 'focus', editable: true, kind: 'text' }]);
    actions.handle({ type: 'tab', action: 'focus' });
    await vi.advanceTimersByTimeAsync(1000);
    expect(sent.length).toBe(3); // the same answer again: a new tap is told anew
  });
});
