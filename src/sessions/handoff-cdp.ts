import type { IssuedLink } from './live-links.js';
import type { Session } from './session.js';
import { parseHandoffRequest, type HandoffCompleted, type HandoffRequest } from './handoff.js';
import { HandoffError } from '../util/errors.js';

interface CdpCommand {
  id: number;
  method: string;
  params?: Record<string, unknown>;
  sessionId?: string;
}

// CDP's "method not found" and "invalid params" codes, as Chromium answers them.
const METHOD_NOT_FOUND = -32601;
const INVALID_PARAMS = -32602;

/**
 * The Handoff domain of API.md 7, answered by the daemon on an agent's browser connection:
 * Handoff.request / getState / cancel / liveUrl, and the Handoff.completed event. Commands
 * are answered on the CDP session they came on; the event goes to every CDP session that
 * used the domain (the root connection when none did).
 */
/** CDP sessions of one connection that get Handoff.completed; an agent uses one or two. */
const MAX_EVENT_SESSIONS = 32;

export class CdpHandoffDomain {
  private readonly listeners = new Set<string | undefined>();
  private readonly onCompleted = (e: HandoffCompleted) => this.emit('Handoff.completed', e);

  constructor(
    private readonly session: Session,
    private readonly send: (message: object) => void,
    private readonly liveLink: (opts?: { singleUse?: boolean }) => IssuedLink,
  ) {
    session.on('handoffCompleted', this.onCompleted);
  }

  /** Looks at one command from the agent; true when it was ours and has been answered. */
  handle(cmd: CdpCommand): boolean {
    if (!cmd || typeof cmd !== 'object' || typeof cmd.method !== 'string' || !cmd.method.startsWith('Handoff.') || typeof cmd.id !== 'number') return false;
    if (cmd.sessionId !== undefined && typeof cmd.sessionId !== 'string') return false;
    // Bounded: an agent naming made-up session ids must not grow this (or the events) without end.
    if (this.listeners.size < MAX_EVENT_SESSIONS) this.listeners.add(cmd.sessionId);
    const on = cmd.sessionId ? { sessionId: cmd.sessionId } : {};
    const reply = (result: object) => (this.send({ id: cmd.id, result, ...on }), true);
    const fail = (code: number, message: string) => (this.send({ id: cmd.id, error: { code, message }, ...on }), true);
    const p = cmd.params && typeof cmd.params === 'object' ? cmd.params : {};
    const s = this.session;
    switch (cmd.method) {
      case 'Handoff.request': {
        let req: HandoffRequest;
        try {
          req = parseHandoffRequest(p, 'cdp');
        } catch (e) {
          if (e instanceof HandoffError) return fail(INVALID_PARAMS, e.message);
          throw e;
        }
        const link = this.liveLink({ singleUse: req.singleUse });
        const h = s.requestHandoff(req, 'cdp', { liveUrl: link.url });
        return reply({ handoffId: h.id, liveUrl: link.url, expiresAt: link.expires_at });
      }
      case 'Handoff.getState': {
        const h = s.handoff;
        return reply({ active: !!h, handoffId: h?.id ?? null, reason: h?.reason ?? null, durationMs: h ? Date.now() - Date.parse(h.requested_at) : 0 });
      }
      case 'Handoff.cancel':
        s.completeHandoff('cancelled', 'cdp');
        return reply({});
      case 'Handoff.liveUrl': {
        const link = this.liveLink();
        return reply({ liveUrl: link.url, expiresAt: link.expires_at });
      }
      default:
        return fail(METHOD_NOT_FOUND, `'${cmd.method}' wasn't found`);
    }
  }

  private emit(method: string, params: object): void {
    const targets = this.listeners.size ? this.listeners : new Set([undefined]);
    for (const sessionId of targets) this.send({ method, params, ...(sessionId ? { sessionId } : {}) });
  }

  close(): void {
    this.session.off('handoffCompleted', this.onCompleted);
  }
}
