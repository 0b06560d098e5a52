export type Attachment = 'none' | 'agent' | 'human';

/**
 * Who attaches, as the audit row names them (API.md 8: actor, transport, source_ip). `detail`
 * goes into the attach row (`{target}`, `{debug_port}` for agents).
 */
export interface Attacher {
  actor: 'agent' | 'human';
  transport: string;
  sourceIp: string;
  detail?: Record<string, unknown>;
}

/** One attach or detach, as the lease's one listener sees it (it writes the audit row). */
export interface AttachEvent {
  kind: 'attach' | 'detach';
  who: Attacher;
  /** attach: the attacher's detail (humans: `{control}`); detach: `{duration_ms}`. */
  detail: Record<string, unknown>;
}

/**
 * The one attachment of a session (API.md 3.4), and the one funnel every attach and detach
 * goes through, agents and humans on every transport alike. Node runs this synchronously, so
 * a check and its update can never interleave: of N simultaneous connects exactly one wins.
 *
 * The agent slot and the human controllers are tracked apart because a handoff lets a human
 * take control while the agent stays connected.
 */
export class AttachmentLease {
  private agent = false;
  private controllers = 0;
  private handoff = false;
  private readonly changeListeners = new Set<() => void>();
  private readonly eventListeners = new Set<(e: AttachEvent) => void>();

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

  /** Humans may control when no agent holds the session, or while a handoff gives it to them. */
  get humansMayControl(): boolean {
    return !this.agent || this.handoff;
  }

  /**
   * An agent may attach only when nobody is: returns null (and changes nothing) otherwise.
   * The slot is held from here; the attach row is written when the agent is `connected`.
   */
  tryAttachAgent(): AgentSlot | null {
    if (this.attachment !== 'none') return null;
    this.agent = true;
    this.changed();
    return new AgentSlot(this);
  }

  /** A human viewer joins: it controls when humans may (and follows the lease from then on). */
  joinHuman(who: Attacher, onControl: (canControl: boolean) => void): HumanSeat {
    return new HumanSeat(this, who, onControl);
  }

  setHandoff(active: boolean): void {
    if (this.handoff === active) return;
    this.handoff = active;
    this.changed();
  }

  onChange(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** Every attach and detach (the session's one audit listener). */
  onAttachEvent(listener: (e: AttachEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /** @internal AgentSlot, HumanSeat */
  emitEvent(e: AttachEvent): void {
    for (const l of this.eventListeners) l(e);
  }

  /** @internal AgentSlot, HumanSeat */
  setAgent(on: boolean): void {
    if (this.agent === on) return;
    this.agent = on;
    this.changed();
  }

  /** @internal HumanSeat */
  addController(delta: 1 | -1): void {
    this.controllers += delta;
    this.changed();
  }

  private changed(): void {
    for (const l of this.changeListeners) l();
  }
}

/** An agent's hold on the lease, from the registry's check to its socket's close. */
export class AgentSlot {
  private connectedAt: number | null = null;
  private who: Attacher | null = null;
  private released = false;

  constructor(private readonly lease: AttachmentLease) {}

  get held(): boolean {
    return !this.released;
  }

  /** The agent's socket is open: the attach row. */
  connected(who: Attacher): void {
    if (this.released || this.who) return;
    this.who = who;
    this.connectedAt = Date.now();
    this.lease.emitEvent({ kind: 'attach', who, detail: { ...who.detail } });
  }

  /** Gives the lease back (idempotent); the detach row when the agent had connected. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.lease.setAgent(false);
    if (this.who) this.lease.emitEvent({ kind: 'detach', who: this.who, detail: { duration_ms: Date.now() - this.connectedAt! } });
  }
}

/**
 * One human viewer's place in the lease: it takes or gives up control to match the lease
 * (API.md 3.4). Guarded: the lease notifies synchronously, also while this seat changes it.
 */
export class HumanSeat {
  private control = false;
  private left = false;
  private updating = false;
  private readonly joinedAt = Date.now();
  private readonly unsubscribe: () => void;

  constructor(
    private readonly lease: AttachmentLease,
    private readonly who: Attacher,
    /** Called before the lease changes when control is lost (reset input first), after when gained. */
    private readonly onControl: (canControl: boolean) => void,
  ) {
    this.follow();
    lease.emitEvent({ kind: 'attach', who, detail: { ...who.detail, control: this.control } });
    this.unsubscribe = lease.onChange(() => this.follow());
  }

  get canControl(): boolean {
    return this.control && !this.left;
  }

  get hasLeft(): boolean {
    return this.left;
  }

  private follow(): void {
    if (this.left || this.updating) return;
    this.updating = true;
    try {
      const may = this.lease.humansMayControl;
      if (!this.control && may) {
        this.control = true;
        this.lease.addController(1);
        this.onControl(true);
      } else if (this.control && !may) this.release();
    } finally {
      this.updating = false;
    }
  }

  private release(): void {
    this.control = false;
    this.onControl(false);
    this.lease.addController(-1);
  }

  /** Idempotent: gives up control (if held) and writes the detach row. */
  leave(): void {
    if (this.left) return;
    this.updating = true; // no more following
    this.unsubscribe();
    if (this.control) this.release();
    this.left = true;
    this.lease.emitEvent({ kind: 'detach', who: this.who, detail: { duration_ms: Date.now() - this.joinedAt } });
  }
}
