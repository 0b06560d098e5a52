import { randomBytes } from 'node:crypto';
import { LiveLinkSigner, type LinkKind, type LiveLink } from '../liveview/tokens.js';
import { HandoffError } from '../util/errors.js';
import type { Session } from './session.js';
import type { SessionRegistry } from './registry.js';

export interface IssuedLink {
  url: string;
  expires_at: string;
}

/** A link that checked out: its session and what it may do. */
export interface CheckedLink {
  session: Session;
  kind: LinkKind;
  link: LiveLink;
}

/** A viewer's WebSocket, as far as links are concerned (closed on revocation). */
export interface LinkSocket {
  send(data: string, cb?: (err?: Error) => void): void;
  close(code: number, reason: string): void;
  terminate(): void;
  once(event: 'close', listener: () => void): unknown;
}

/** Viewer sockets of a revoked link close with 4000 + 404: the link now answers like an invalid one. */
export const CLOSE_LINK_REVOKED = 4404;
const REVOKE_GRACE_MS = 2000;
/**
 * Viewer sockets one link may hold at once, all transports together (M4): a page uses one or
 * two (WebRTC falling back to screencast), a second tab or a reconnect one more. More would
 * let one view link fill a session's places.
 */
export const MAX_SOCKETS_PER_LINK = 3;
/** 4000 + 429, like a full session: too_many_viewers. */
const CLOSE_TOO_MANY_VIEWERS = 4029;

/** Per run of a session: what its links have done. Dropped when the run ends. */
interface RunLinks {
  /** Links of an older generation are revoked. */
  generation: number;
  /** Link ids opened in time (a viewer socket connected): they keep working past the TTL. */
  opened: Set<string>;
  /** Open viewer sockets, by link id. */
  sockets: Map<string, Set<LinkSocket>>;
}

const invalid = () => new HandoffError('not_found', 'this live view link is not valid');

/**
 * Mints and checks live view URLs (API.md 5): signed, naming session, run and kind; to be
 * opened within the TTL, after which an opened link lasts as long as its session. "Opened"
 * means a viewer socket connected: the page, HEAD, a chat app's preview or /info only check.
 */
export class LiveLinks {
  private readonly signer: LiveLinkSigner;
  private readonly runs = new Map<string, RunLinks>();

  constructor(
    key: Buffer,
    private readonly registry: SessionRegistry,
    private readonly ttlMs: number,
    /** `--public-url`: links carry its scheme (https behind a TLS proxy). */
    private readonly publicUrl: URL | null = null,
  ) {
    this.signer = new LiveLinkSigner(key);
  }

  issue(session: Session, publicHost: string, kind: LinkKind, sourceIp?: string, opts: { singleUse?: boolean } = {}): IssuedLink {
    const issuedAt = Date.now();
    const singleUse = opts.singleUse ?? false;
    const link: LiveLink = { sessionId: session.id, runId: session.runId, kind, issuedAt, id: randomBytes(9).toString('base64url'), generation: this.run(session).generation, singleUse };
    const token = this.signer.sign(link);
    session.audit({ type: 'live_url_issued', source_ip: sourceIp ?? null, detail: { kind, single_use: singleUse } });
    const origin = this.publicUrl ? this.publicUrl.origin : `http://${publicHost}`;
    return { url: `${origin}/live/${token}`, expires_at: new Date(issuedAt + this.ttlMs).toISOString() };
  }

  /**
   * The live session a token names, without using the link. Made-up and revoked links: 404
   * not_found; a link of a stopped session: 404 session_not_found; not opened within the TTL,
   * or single-use and used (its viewer gone): 410 link_expired.
   */
  check(token: string): CheckedLink {
    const link = this.signer.verify(token);
    if (!link) throw invalid();
    const session = this.registry.get(link.sessionId);
    if (!session || session.runId !== link.runId || !session.live) throw new HandoffError('session_not_found', 'the session of this live view has ended');
    const run = this.run(session);
    if (link.generation !== run.generation) throw invalid();
    if (run.opened.has(link.id)) {
      // A used single-use link serves its one viewer's page (info, downloads, Done) while it is there.
      if (link.singleUse && !run.sockets.get(link.id)?.size) throw used();
    } else if (Date.now() - link.issuedAt > this.ttlMs) {
      throw new HandoffError('link_expired', 'this live view link has expired; ask for a new one');
    }
    return { session, kind: link.kind, link };
  }

  /**
   * For a viewer socket about to be accepted: checks the link and takes a single-use one for
   * good (a second socket gets 410, even one racing this). Call `connected` with the socket
   * once it is open: only then does the link count as opened. `connected` is false when the
   * socket must not be served: the link was revoked meanwhile, or it already holds
   * MAX_SOCKETS_PER_LINK sockets (counted here, once open, so racing upgrades cannot pass it);
   * the socket is then being closed (4404, or 4029 too_many_viewers after an error message
   * when `json`).
   */
  claim(token: string): CheckedLink & { connected(ws: LinkSocket, json?: boolean): boolean } {
    const checked = this.check(token);
    const { session, link } = checked;
    const run = this.run(session);
    if (link.singleUse) {
      if (run.opened.has(link.id)) throw used();
      run.opened.add(link.id);
    }
    return {
      ...checked,
      connected: (ws, json = true) => {
        // Revoked, or the session ended, while the socket was being accepted.
        if (this.runs.get(session.runId) !== run || run.generation !== link.generation) {
          ws.close(CLOSE_LINK_REVOKED, 'live link revoked');
          return false;
        }
        let set = run.sockets.get(link.id);
        if ((set?.size ?? 0) >= MAX_SOCKETS_PER_LINK) {
          const message = `this live link already has ${MAX_SOCKETS_PER_LINK} viewers open; close one or ask for another link`;
          if (json) ws.send(JSON.stringify({ type: 'error', code: 'too_many_viewers', message }), () => {});
          ws.close(CLOSE_TOO_MANY_VIEWERS, 'too_many_viewers');
          setTimeout(() => ws.terminate(), REVOKE_GRACE_MS).unref();
          return false;
        }
        run.opened.add(link.id);
        if (!set) run.sockets.set(link.id, (set = new Set()));
        set.add(ws);
        ws.once('close', () => {
          set.delete(ws);
          if (!set.size && run.sockets.get(link.id) === set) run.sockets.delete(link.id);
        });
        return true;
      },
    };
  }

  /** DELETE /session/ID/live: every link issued so far stops working and its viewers are closed. */
  revoke(session: Session, sourceIp?: string): void {
    const run = this.run(session);
    run.generation++;
    run.opened.clear();
    const sockets = [...run.sockets.values()].flatMap((s) => [...s]);
    run.sockets.clear();
    session.audit({ type: 'live_url_revoked', source_ip: sourceIp ?? null, detail: { generation: run.generation, viewers_closed: sockets.length } });
    for (const ws of sockets) {
      ws.close(CLOSE_LINK_REVOKED, 'live link revoked');
      // A viewer that never answers the close still goes.
      setTimeout(() => ws.terminate(), REVOKE_GRACE_MS).unref();
    }
  }

  private run(session: Session): RunLinks {
    let run = this.runs.get(session.runId);
    if (!run) {
      run = { generation: 0, opened: new Set(), sockets: new Map() };
      if (!session.live) return run; // 'ended' has fired: keep nothing
      this.runs.set(session.runId, run);
      session.once('ended', () => this.runs.delete(session.runId));
    }
    return run;
  }
}

function used(): HandoffError {
  return new HandoffError('link_expired', 'this single-use live view link has already been used; ask for a new one');
}
