import { randomUUID } from 'node:crypto';
import { HandoffError } from '../util/errors.js';

export type HandoffPhase = 'idle' | 'requested' | 'active' | 'completed';
export type HandoffOutcome = 'done' | 'failed' | 'timeout' | 'cancelled';

/** The handoff as API.md 4 `Session.handoff` shows it. */
export interface HandoffInfo {
  id: string;
  reason: string;
  requested_at: string;
}

/** Handoff.completed (API.md 7). */
export interface HandoffCompleted {
  handoffId: string;
  outcome: HandoffOutcome;
  by: string;
  durationMs: number;
  changes: { urls: string[]; downloads: string[] };
}

/** A validated request (REST, CDP and MCP all go through parseHandoffRequest). */
export interface HandoffRequest {
  reason: string;
  timeoutMs?: number;
  holdAgentInput: boolean;
  /** CDP only: the control link it answers with serves one viewer. */
  singleUse: boolean;
}

export const MAX_REASON_CHARS = 1000;
/** A setTimeout past 2^31-1 ms fires at once: the cap keeps every timer below it. */
export const MIN_HANDOFF_TIMEOUT_MS = 1000;
export const MAX_HANDOFF_TIMEOUT_MS = 86_400_000;
/** How long a link-started handoff waits for its human to come back (reload, dropped socket). */
export const DEFAULT_HANDOFF_GRACE_MS = 15_000;

/** Which phase may follow which: anything else is a bug and throws. */
const NEXT: Record<HandoffPhase, readonly HandoffPhase[]> = {
  idle: ['requested'],
  requested: ['active', 'completed'],
  active: ['requested', 'completed'],
  completed: ['requested'],
};

/**
 * One validation for every caller. Field names follow the caller's style (`timeout_ms` on
 * REST, `timeoutMs` on CDP) so the error names what was sent; throws bad_request.
 */
export function parseHandoffRequest(body: Record<string, unknown>, style: 'rest' | 'cdp'): HandoffRequest {
  const name = (rest: string, cdp: string) => (style === 'rest' ? rest : cdp);
  const bad = (m: string) => new HandoffError('bad_request', m);
  const { reason } = body;
  if (typeof reason !== 'string' || !reason) throw bad('reason (a non-empty string) is required');
  const rawTimeout = body[name('timeout_ms', 'timeoutMs')];
  let timeoutMs: number | undefined;
  if (rawTimeout !== undefined) {
    // REST has always taken a number in a string too; CDP a number.
    timeoutMs = style === 'rest' && typeof rawTimeout === 'string' && rawTimeout.trim() !== '' ? Number(rawTimeout) : (rawTimeout as number);
    if (!(typeof timeoutMs === 'number' && Number.isInteger(timeoutMs) && timeoutMs >= MIN_HANDOFF_TIMEOUT_MS && timeoutMs <= MAX_HANDOFF_TIMEOUT_MS)) {
      throw bad(`${name('timeout_ms', 'timeoutMs')} must be a whole number of milliseconds from ${MIN_HANDOFF_TIMEOUT_MS} to ${MAX_HANDOFF_TIMEOUT_MS}`);
    }
  }
  const flag = (rest: string, cdp: string, dflt: boolean): boolean => {
    const v = body[name(rest, cdp)];
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') throw bad(`${name(rest, cdp)} must be true or false`);
    return v;
  };
  return {
    reason: reason.slice(0, MAX_REASON_CHARS),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    holdAgentInput: flag('hold_agent_input', 'holdAgentInput', true),
    singleUse: flag('single_use', 'singleUse', false),
  };
}

/** The outcome a human's Done / Can't do it sends; throws bad_request otherwise. */
export function parseHumanOutcome(outcome: unknown): 'done' | 'failed' {
  const o = outcome ?? 'done';
  if (o !== 'done' && o !== 'failed') throw new HandoffError('bad_request', 'outcome must be "done" or "failed"');
  return o;
}

export interface HandoffEvents {
  /** A request was accepted (a new handoff, or a new reason for the pending one). */
  requested(h: HandoffInfo, meta: { by: string; liveUrl: string | null; linkStarted: boolean; renewed: boolean }): void;
  completed(e: HandoffCompleted, heldCommands: number): void;
  /** Anything Session.handoff shows changed. */
  changed(): void;
}

/**
 * The structured handoff of one session (API.md 7) as an explicit state machine:
 * idle -> requested (an agent or a link asked) -> active (a human has control) -> completed,
 * back to requested while its human is away. It owns its timers (the request's timeout, the
 * grace a link-started handoff gives a reloading human) and clears them on every way out;
 * the session's end cancels it and closes it for good.
 */
export class HandoffMachine {
  private phase: HandoffPhase = 'idle';
  private current: HandoffInfo | null = null;
  private linkStarted = false;
  private holdInput = true;
  private heldCommands = 0;
  private changes: HandoffCompleted['changes'] = { urls: [], downloads: [] };
  private timeout?: NodeJS.Timeout;
  private grace?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly events: HandoffEvents,
    private readonly graceMs = DEFAULT_HANDOFF_GRACE_MS,
  ) {}

  get state(): HandoffPhase {
    return this.phase;
  }

  /** Session.handoff: the pending or active handoff. */
  get info(): HandoffInfo | null {
    return this.current;
  }

  /** Whether the agent's input waits now: a human controls in a handoff that holds it. */
  get holdsAgentInput(): boolean {
    return this.phase === 'active' && this.holdInput;
  }

  /**
   * Asks for a human. A second request while one is pending or active keeps the same
   * handoff (its id, its link) and shows the new reason to the human (README "Handoff");
   * its timeout, if given, restarts. A link-started handoff taken over this way becomes the
   * agent's (it no longer ends when the human leaves).
   */
  request(req: Omit<HandoffRequest, 'singleUse'>, by: string, opts: { liveUrl?: string | null; linkStarted?: boolean; humanInControl?: boolean } = {}): HandoffInfo {
    if (this.closed) throw new HandoffError('session_not_found', 'the session has ended');
    const renewed = this.current !== null;
    if (renewed) {
      this.current = { ...this.current!, reason: req.reason };
      if (!opts.linkStarted) this.linkStarted = false;
      this.holdInput = req.holdAgentInput;
    } else {
      this.go('requested');
      this.current = { id: randomUUID(), reason: req.reason, requested_at: new Date().toISOString() };
      this.linkStarted = opts.linkStarted ?? false;
      this.holdInput = req.holdAgentInput;
      this.heldCommands = 0;
      this.changes = { urls: [], downloads: [] };
    }
    if (req.timeoutMs !== undefined) this.startTimeout(req.timeoutMs);
    this.events.requested(this.current!, { by, liveUrl: opts.liveUrl ?? null, linkStarted: this.linkStarted, renewed });
    // The human may already be in control (a viewer opened the link before the request).
    if (opts.humanInControl) this.humanControls(true, by);
    this.events.changed();
    return this.current!;
  }

  /**
   * The lease's humans took or lost control. While away, a link-started handoff waits
   * `graceMs` for one to come back (a reload, a dropped socket) before it ends as done.
   */
  humanControls(inControl: boolean, by: string): void {
    if (!this.current) return;
    if (inControl) {
      clearTimeout(this.grace);
      this.grace = undefined;
      if (this.phase === 'requested') this.go('active');
      return;
    }
    if (this.phase === 'active') this.go('requested');
    if (this.linkStarted && !this.grace) {
      const id = this.current.id;
      this.grace = setTimeout(() => this.current?.id === id && this.complete('done', by), this.graceMs);
      this.grace.unref();
    }
  }

  /** Ends the pending or active handoff; false when there is none. */
  complete(outcome: HandoffOutcome, by: string): boolean {
    if (!this.current) return false;
    const { id, requested_at } = this.current;
    this.go('completed');
    this.current = null;
    this.clearTimers();
    const durationMs = Date.now() - Date.parse(requested_at);
    this.events.completed({ handoffId: id, outcome, by, durationMs, changes: this.changes }, this.heldCommands);
    this.events.changed();
    return true;
  }

  countHeldCommand(): void {
    this.heldCommands++;
  }

  /** What happened meanwhile, for Handoff.completed `changes`. */
  noteUrl(url: string): void {
    if (this.current) this.changes.urls.push(url);
  }

  noteDownload(name: string): void {
    if (this.current) this.changes.downloads.push(name);
  }

  /** The session ends: the handoff is cancelled and no new one starts. */
  close(): void {
    this.complete('cancelled', 'daemon');
    this.clearTimers();
    this.closed = true;
  }

  private startTimeout(ms: number): void {
    clearTimeout(this.timeout);
    const id = this.current!.id;
    this.timeout = setTimeout(() => this.current?.id === id && this.complete('timeout', 'daemon'), Math.min(ms, MAX_HANDOFF_TIMEOUT_MS));
    this.timeout.unref();
  }

  private clearTimers(): void {
    clearTimeout(this.timeout);
    clearTimeout(this.grace);
    this.timeout = this.grace = undefined;
  }

  private go(next: HandoffPhase): void {
    if (!NEXT[this.phase].includes(next)) throw new Error(`handoff: ${this.phase} -> ${next} is not a transition`);
    this.phase = next;
  }
}
