import { describe, expect, it } from 'vitest';
import { AttachmentLease } from '../../../src/sessions/attachment.js';

describe('AttachmentLease (API.md 3.4)', () => {
  it('starts free; one agent wins, the next is refused until it leaves', () => {
    const lease = new AttachmentLease();
    expect(lease.attachment).toBe('none');
    const results = Array.from({ length: 20 }, () => lease.tryAttachAgent());
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(results[0]).toBe(true);
    expect(lease.attachment).toBe('agent');
    lease.detachAgent();
    expect(lease.attachment).toBe('none');
    expect(lease.tryAttachAgent()).toBe(true);
  });

  it('a human with the session free takes control; an agent is then refused', () => {
    const lease = new AttachmentLease();
    expect(lease.tryAttachHuman()).toBe(true);
    expect(lease.attachment).toBe('human');
    expect(lease.tryAttachAgent()).toBe(false);
    lease.detachHuman();
    expect(lease.attachment).toBe('none');
    expect(lease.tryAttachAgent()).toBe(true);
  });

  it('a human is view-only while an agent holds it, unless a handoff is active', () => {
    const lease = new AttachmentLease();
    lease.tryAttachAgent();
    expect(lease.tryAttachHuman()).toBe(false);
    expect(lease.attachment).toBe('agent');
    lease.setHandoff(true);
    expect(lease.handoffActive).toBe(true);
    expect(lease.tryAttachHuman()).toBe(true);
    expect(lease.attachment).toBe('human');
    expect(lease.agentConnected).toBe(true);
    // The human leaves: control returns to the agent, which never disconnected.
    lease.detachHuman();
    lease.setHandoff(false);
    expect(lease.attachment).toBe('agent');
  });

  it('detaches are idempotent and never go below zero', () => {
    const lease = new AttachmentLease();
    lease.detachAgent();
    lease.detachHuman();
    expect(lease.attachment).toBe('none');
    lease.tryAttachHuman();
    lease.tryAttachHuman();
    lease.detachHuman();
    expect(lease.attachment).toBe('human');
    lease.detachHuman();
    lease.detachHuman();
    expect(lease.attachment).toBe('none');
    expect(lease.tryAttachHuman()).toBe(true);
    lease.detachHuman();
    expect(lease.attachment).toBe('none');
  });

  it('tells listeners about every change and nothing else; unsubscribing stops it', () => {
    const lease = new AttachmentLease();
    const seen: string[] = [];
    const off = lease.onChange(() => seen.push(lease.attachment));
    lease.tryAttachAgent();
    lease.tryAttachAgent(); // refused: no change
    lease.tryAttachHuman(); // refused: no change
    lease.setHandoff(false); // already off: no change
    lease.detachAgent();
    lease.detachAgent(); // already detached: no change
    expect(seen).toEqual(['agent', 'none']);
    off();
    lease.tryAttachAgent();
    expect(seen).toEqual(['agent', 'none']);
  });
});
