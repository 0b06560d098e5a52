import type { Transport, ViewerHandle } from '../liveview/types.js';
import type { LinkKind } from '../liveview/tokens.js';
import type { HumanSeat } from './attachment.js';

/** What a viewer needs of its session (narrow, so viewer.ts does not import session.ts). */
export interface ViewerHost {
  /** Takes the viewer's seat in the lease (writes the attach row through the lease). */
  seat(onControl: (canControl: boolean) => void): HumanSeat;
  /** No key or button left pressed (API.md 3.4: when a human detaches). */
  releaseInput(): void;
  /** Registers the viewer to be ended with the session; returns its removal. */
  attach(c: { close(code: number, reason: string): void }): () => void;
  /** Done / Can't do it from this viewer's transport. */
  completeHandoff(outcome: 'done' | 'failed', by: Transport): void;
  /** Viewer counts and the link-started handoff follow joins and leaves. */
  viewerJoined(transport: Transport): void;
  viewerLeft(transport: Transport): void;
}

/**
 * One human viewer of a session, on any transport, and its share of control (API.md 3.4):
 * it controls when no agent holds the session or while a handoff gives control to humans,
 * and is view-only otherwise. Its seat in the lease follows the agent as it comes and goes.
 */
export class Viewer implements ViewerHandle {
  private readonly controlListeners = new Set<(c: boolean) => void>();
  private readonly endListeners = new Set<(r: string) => void>();
  private readonly seat: HumanSeat;
  private readonly detachFromSession: () => void;

  constructor(
    private readonly host: ViewerHost,
    private readonly transport: Transport,
    readonly sourceIp: string,
    private readonly link: LinkKind | undefined,
  ) {
    host.viewerJoined(transport);
    this.seat = host.seat((c) => {
      if (!c) host.releaseInput();
      for (const l of this.controlListeners) l(c);
    });
    this.detachFromSession = host.attach({ close: (_code, reason) => this.end(reason) });
  }

  get canControl(): boolean {
    return this.seat.canControl;
  }

  get viewLink(): boolean {
    return this.link === 'view';
  }

  /** A view link watches and may get input, but never ends a handoff (API.md 3.4, 7). */
  completeHandoff(outcome: 'done' | 'failed'): boolean {
    if (this.link === 'view') return false;
    if (!this.seat.hasLeft) this.host.completeHandoff(outcome, this.transport);
    return true;
  }

  onControlChange(listener: (c: boolean) => void): void {
    this.controlListeners.add(listener);
  }

  onEnd(listener: (reason: string) => void): void {
    this.endListeners.add(listener);
  }

  private end(reason: string): void {
    for (const l of this.endListeners) l(reason);
    this.leave();
  }

  leave(): void {
    if (this.seat.hasLeft) return;
    this.detachFromSession();
    this.seat.leave();
    this.host.viewerLeft(this.transport);
  }
}
