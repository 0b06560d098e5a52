import { describe, expect, it } from 'vitest';
import { AttachmentLease, type AttachEvent } from '../../../src/sessions/attachment.js';

const human = (ip = '10.0.0.1') => ({ actor: 'human' as const, transport: 'screencast', sourceIp: ip });
const agent = { actor: 'agent' as const, transport: 'cdp', sourceIp: '127.0.0.1' };

describe('AttachmentLease (API.md 3.4)', () => {
  it('starts free; one agent wins, the next is refused until it leaves', () => {
    const lease = new AttachmentLease();
    expect(lease.attachment).toBe('none');
    const results = Array.from({ length: 20 }, () => lease.tryAttachAgent());
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(results[0]).not.toBeNull();
    expect(lease.attachment).toBe('agent');
    results[0]!.release();
    expect(lease.attachment).toBe('none');
    expect(lease.tryAttachAgent()).not.toBeNull();
  });

  it('a human with the session free takes control; an agent is then refused', () => {
    const lease = new AttachmentLease();
    const seat = lease.joinHuman(human(), () => {});
    expect(seat.canControl).toBe(true);
    expect(lease.attachment).toBe('human');
    expect(lease.tryAttachAgent()).toBeNull();
    seat.leave();
    expect(lease.attachment).toBe('none');
    expect(lease.tryAttachAgent()).not.toBeNull();
  });

  it('a human is view-only while an agent holds it, takes control in a handoff, and gives it back after', () => {
    const lease = new AttachmentLease();
    lease.tryAttachAgent();
    const control: boolean[] = [];
    const seat = lease.joinHuman(human(), (c) => control.push(c));
    expect(seat.canControl).toBe(false);
    expect(lease.attachment).toBe('agent');
    lease.setHandoff(true);
    expect(seat.canControl).toBe(true);
    expect(lease.attachment).toBe('human');
    expect(lease.agentConnected).toBe(true);
    lease.setHandoff(false);
    expect(seat.canControl).toBe(false);
    expect(lease.attachment).toBe('agent');
    expect(control).toEqual([true, false]);
  });

  it('releases and leaves are idempotent and never go below zero', () => {
    const lease = new AttachmentLease();
    const slot = lease.tryAttachAgent()!;
    slot.release();
    slot.release();
    expect(lease.attachment).toBe('none');
    const a = lease.joinHuman(human(), () => {});
    const b = lease.joinHuman(human(), () => {});
    expect(lease.humanControllers).toBe(2);
    a.leave();
    a.leave();
    expect(lease.attachment).toBe('human');
    b.leave();
    expect(lease.humanControllers).toBe(0);
    expect(lease.attachment).toBe('none');
  });

  it('tells change listeners about every change and nothing else; unsubscribing stops it', () => {
    const lease = new AttachmentLease();
    const seen: string[] = [];
    const off = lease.onChange(() => seen.push(lease.attachment));
    const slot = lease.tryAttachAgent()!;
    lease.tryAttachAgent(); // refused: no change
    lease.setHandoff(false); // already off: no change
    slot.release();
    slot.release(); // already released: no change
    expect(seen).toEqual(['agent', 'none']);
    off();
    lease.tryAttachAgent();
    expect(seen).toEqual(['agent', 'none']);
  });

  it('is the one funnel of attach and detach events, with actor and transport', () => {
    const lease = new AttachmentLease();
    const events: AttachEvent[] = [];
    lease.onAttachEvent((e) => events.push(e));
    // An agent that never connected (its upgrade failed) leaves no row.
    lease.tryAttachAgent()!.release();
    expect(events).toEqual([]);
    const slot = lease.tryAttachAgent()!;
    slot.connected({ ...agent, detail: { target: '/devtools/page/X' } });
    const seat = lease.joinHuman(human('10.1.1.1'), () => {});
    seat.leave();
    slot.release();
    expect(events.map((e) => [e.kind, e.who.actor, e.who.transport])).toEqual([
      ['attach', 'agent', 'cdp'],
      ['attach', 'human', 'screencast'],
      ['detach', 'human', 'screencast'],
      ['detach', 'agent', 'cdp'],
    ]);
    expect(events[0]!.detail).toEqual({ target: '/devtools/page/X' });
    expect(events[1]!.detail).toEqual({ control: false });
    expect(events[1]!.who.sourceIp).toBe('10.1.1.1');
    expect(events[2]!.detail.duration_ms).toEqual(expect.any(Number));
    expect(events[3]!.detail.duration_ms).toEqual(expect.any(Number));
  });
});
