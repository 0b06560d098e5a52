import { LiveLinkSigner, type LinkKind } from '../liveview/tokens.js';
import { HandoffError } from '../util/errors.js';
import type { Session } from './session.js';
import type { SessionRegistry } from './registry.js';

export interface IssuedLink {
  url: string;
  expires_at: string;
}

/**
 * Mints and checks live view URLs (API.md 5): signed, naming session, run and kind; to be
 * opened within the TTL, after which an opened link lasts as long as its session.
 */
export class LiveLinks {
  private readonly signer: LiveLinkSigner;
  /** Tokens opened in time, per run: they keep working past the TTL. */
  private readonly opened = new Map<string, Set<string>>();

  constructor(
    key: Buffer,
    private readonly registry: SessionRegistry,
    private readonly ttlMs: number,
    /** `--public-url`: links carry its scheme (https behind a TLS proxy). */
    private readonly publicUrl: URL | null = null,
  ) {
    this.signer = new LiveLinkSigner(key);
  }

  issue(session: Session, publicHost: string, kind: LinkKind, sourceIp?: string): IssuedLink {
    const issuedAt = Date.now();
    const token = this.signer.sign({ sessionId: session.id, runId: session.runId, kind, issuedAt });
    session.audit({ type: 'live_url_issued', source_ip: sourceIp ?? null, detail: { kind } });
    const origin = this.publicUrl ? this.publicUrl.origin : `http://${publicHost}`;
    return { url: `${origin}/live/${token}`, expires_at: new Date(issuedAt + this.ttlMs).toISOString() };
  }

  /**
   * The live session a token opens. A first use must fall within the TTL (410 link_expired
   * after); a link of a stopped session answers 404 session_not_found.
   */
  resolve(token: string): { session: Session; kind: LinkKind } {
    const link = this.signer.verify(token);
    if (!link) throw new HandoffError('not_found', 'this live view link is not valid');
    const session = this.registry.get(link.sessionId);
    if (!session || session.runId !== link.runId || !session.live) {
      this.opened.delete(link.runId);
      throw new HandoffError('session_not_found', 'the session of this live view has ended');
    }
    let opened = this.opened.get(link.runId);
    if (!opened?.has(token)) {
      if (Date.now() - link.issuedAt > this.ttlMs) throw new HandoffError('link_expired', 'this live view link has expired; ask for a new one');
      if (!opened) {
        this.opened.set(link.runId, (opened = new Set()));
        session.once('ended', () => this.opened.delete(link.runId));
      }
      opened.add(token);
    }
    return { session, kind: link.kind };
  }
}
