import { createHmac, timingSafeEqual } from 'node:crypto';

/** control: minted by the automation side, may start a handoff; view: anything else. */
export type LinkKind = 'control' | 'view';

export interface LiveLink {
  sessionId: string;
  runId: string;
  kind: LinkKind;
  /** ms since epoch */
  issuedAt: number;
}

const MAX_TOKEN_LENGTH = 1024;

/** Live view tokens: `payload.signature`, both base64url, HMAC-SHA256 with the daemon's key. */
export class LiveLinkSigner {
  constructor(private readonly key: Buffer) {}

  sign(link: LiveLink): string {
    const payload = Buffer.from(JSON.stringify([link.sessionId, link.runId, link.kind, link.issuedAt])).toString('base64url');
    return `${payload}.${this.mac(payload)}`;
  }

  /** Returns the link a token names, or null when it is malformed or not ours. */
  verify(token: string): LiveLink | null {
    if (token.length > MAX_TOKEN_LENGTH) return null;
    const [payload, sig, extra] = token.split('.');
    if (!payload || !sig || extra !== undefined) return null;
    const expected = Buffer.from(this.mac(payload));
    const given = Buffer.from(sig);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    try {
      const [sessionId, runId, kind, issuedAt] = JSON.parse(Buffer.from(payload, 'base64url').toString()) as unknown[];
      if (typeof sessionId !== 'string' || typeof runId !== 'string' || typeof issuedAt !== 'number') return null;
      if (kind !== 'control' && kind !== 'view') return null;
      return { sessionId, runId, kind, issuedAt };
    } catch {
      return null;
    }
  }

  private mac(payload: string): string {
    return createHmac('sha256', this.key).update(payload).digest('base64url');
  }
}
