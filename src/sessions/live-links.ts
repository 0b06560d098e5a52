import type { LinkKind } from '../liveview/tokens.js';
import { LiveLinkSigner } from '../liveview/tokens.js';
import { HandoffError } from '../util/errors.js';
import type { Session } from './session.js';
import type { SessionRegistry } from './registry.js';

export interface IssuedLink {
  url: string;
  expires_at: string;
}

/** Mints and checks live view URLs (API.md 5): signed, to be opened within the TTL. */
export class LiveLinks {
  private readonly signer: LiveLinkSigner;

  constructor(
    key: Buffer,
    private readonly registry: SessionRegistry,
    private readonly ttlMs: number,
  ) {
    this.signer = new LiveLinkSigner(key);
  }

  issue(session: Session, publicHost: string, kind: LinkKind, sourceIp?: string): IssuedLink {
    const issuedAt = Date.now();
    const token = this.signer.sign({ sessionId: session.id, runId: session.runId, kind, issuedAt });
    session.audit({ type: 'live_url_issued', source_ip: sourceIp ?? null, detail: { kind } });
    return { url: `http://${publicHost}/live/${token}`, expires_at: new Date(issuedAt + this.ttlMs).toISOString() };
  }

  /**
   * The session a token opens. `opening` is a first open (the page), which must be within
   * the TTL; sockets of an already opened view only need a valid token for a live run.
   */
  resolve(token: string, opening: boolean): { session: Session; kind: LinkKind } {
    const link = this.signer.verify(token);
    if (!link) throw new HandoffError('not_found', 'this live view link is not valid');
    if (opening && Date.now() - link.issuedAt > this.ttlMs) throw new HandoffError('link_expired', 'this live view link has expired; ask for a new one');
    const session = this.registry.get(link.sessionId);
    if (!session || session.runId !== link.runId || !session.live) {
      throw new HandoffError('session_not_found', 'the session of this live view has ended');
    }
    return { session, kind: link.kind };
  }
}
