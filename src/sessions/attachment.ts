export type Attachment = 'none' | 'agent' | 'human';

/**
 * The one attachment of a session (API.md 3.4). Node runs this synchronously, so a check and
 * its update can never interleave: of N simultaneous connects exactly one wins.
 *
 * The agent slot and the human controllers are tracked apart because a handoff lets a human
 * take control while the agent stays connected.
 */
export class AttachmentLease {
  private agent = false;
  private controllers = 0;
  private handoff = false;
  private readonly listeners = new Set<() => void>();

  get attachment(): Attachment {
    if (this.controllers > 0) return 'human';
    return this.agent ? 'agent' : 'none';
  }

  get agentConnected(): boolean {
    return this.agent;
  }

  get humanControllers(): number {
    return this.controllers;
  }

  get handoffActive(): boolean {
    return this.handoff;
  }

  /** An agent may attach only when nobody is: returns false (and changes nothing) otherwise. */
  tryAttachAgent(): boolean {
    if (this.attachment !== 'none') return false;
    this.agent = true;
    this.changed();
    return true;
  }

  detachAgent(): void {
    if (!this.agent) return;
    this.agent = false;
    this.changed();
  }

  /**
   * A human viewer asks for control: granted when no agent holds the session, or while a
   * handoff gives it to humans. Returns whether this viewer now controls.
   */
  tryAttachHuman(): boolean {
    if (this.agent && !this.handoff) return false;
    this.controllers++;
    this.changed();
    return true;
  }

  detachHuman(): void {
    if (this.controllers === 0) return;
    this.controllers--;
    this.changed();
  }

  setHandoff(active: boolean): void {
    if (this.handoff === active) return;
    this.handoff = active;
    this.changed();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }
}
