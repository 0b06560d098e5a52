import type { Transport, ViewerHandle } from '../liveview/types.js';
import type { LinkKind } from '../liveview/tokens.js';
import type { Session } from './session.js';

/**
 * One human viewer of a session, on any transport, and its share of control (API.md 3.4):
 * it controls when no agent holds the session or while a handoff gives control to humans,
 * and is view-only otherwise. It follows the lease as the agent comes and goes.
 */
export class Viewer implements ViewerHandle {
  private control = false;
  private left = false;
  private updating = false;
  private readonly joinedAt = Date.now();
  private readonly controlListeners = new Set<(c: boolean) => void>();
  private readonly endListeners = new Set<(r: string) => void>();
  private readonly unsubscribe: () => void;
  private readonly detachFromSession: () => void;

  constructor(
    private readonly session: Session,
    private readonly transport: Transport,
    readonly sourceIp: string,
    private readonly counts: Record<Transport, number>,
    private readonly link: LinkKind | undefined,
  ) {
    counts[transport]++;
    this.follow();
    session.audit({ type: 'cloud_browser_agent_attach', transport, source_ip: sourceIp, actor: 'human', detail: { control: this.control } });
    this.unsubscribe = session.lease.onChange(() => this.follow());
    this.detachFromSession = session.attach({ close: (_code, reason) => this.end(reason) });
    session.changed();
  }

  get canControl(): boolean {
    return this.control && !this.left;
  }

  /** A view link watches and may get input, but never ends a handoff (API.md 3.4, 7). */
  completeHandoff(outcome: 'done' | 'failed'): boolean {
    if (this.link === 'view') return false;
    if (!this.left) this.session.completeHandoff(outcome, this.transport);
    return true;
  }

  onControlChange(listener: (c: boolean) => void): void {
    this.controlListeners.add(listener);
  }

  onEnd(listener: (reason: string) => void): void {
    this.endListeners.add(listener);
  }

  /** Takes or gives up control to match the lease. Guarded: the lease notifies synchronously. */
  private follow(): void {
    if (this.left || this.updating) return;
    this.updating = true;
    try {
      const lease = this.session.lease;
      const humansMayControl = !lease.agentConnected || lease.handoffActive;
      if (!this.control && humansMayControl && lease.tryAttachHuman()) this.setControl(true);
      else if (this.control && !humansMayControl) this.release();
    } finally {
      this.updating = false;
    }
  }

  private release(): void {
    this.session.input?.releaseAll();
    this.setControl(false);
    this.session.lease.detachHuman();
  }

  private setControl(c: boolean): void {
    if (this.control === c) return;
    this.control = c;
    for (const l of this.controlListeners) l(c);
  }

  private end(reason: string): void {
    for (const l of this.endListeners) l(reason);
    this.leave();
  }

  leave(): void {
    if (this.left) return;
    this.updating = true; // no more following
    this.unsubscribe();
    this.detachFromSession();
    this.counts[this.transport]--;
    if (this.control) this.release();
    this.left = true;
    this.session.audit({
      type: 'cloud_browser_agent_detach',
      transport: this.transport,
      source_ip: this.sourceIp,
      actor: 'human',
      detail: { duration_ms: Date.now() - this.joinedAt },
    });
    this.session.humanLeft(this.transport);
    this.session.changed();
  }
}
