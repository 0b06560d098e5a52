import type { Duplex } from 'node:stream';
import type { Config } from '../../config/config.js';
import type { AuditLog } from '../../audit/log.js';
import type { SessionRegistry } from '../../sessions/registry.js';
import type { Session } from '../../sessions/session.js';
import { validSessionId } from '../../sessions/params.js';
import { HandoffError } from '../../util/errors.js';
import type { LiveLinks } from '../../sessions/live-links.js';
import type { Logger } from '../../util/logger.js';

/** What route handlers may use: sessions and audit (DESIGN.md dependency direction). */
export interface Services {
  config: Readonly<Config>;
  registry: SessionRegistry;
  audit: AuditLog;
  liveLinks: LiveLinks;
  logger: Logger;
  startedAt: number;
  /** Hands a browser viewer's WebSocket bytes to the RFB server (noVNC in the page). */
  vncBridge: (stream: Duplex, sourceIp: string, sessionId: string) => void;
  /** e.g. "Chrome/156.0.8078.79", read once at start. */
  browserVersion: string;
  /**
   * host:port of the main port as users reach it (--public-url's, else the listening address),
   * set once it listens: links minted on a debug port point there (/live is not on a debug port).
   */
  mainHost: string;
}

/**
 * The session a route names: a valid id the daemon knows (a stopped one stays known for an
 * hour), and with `live`, one that is still running. Otherwise 400 or 404 session_not_found.
 */
export function sessionById(s: Services, rawId: string, { live = false } = {}): Session {
  const id = validSessionId(rawId);
  const session = s.registry.get(id);
  if (!session || (live && !session.live)) throw new HandoffError('session_not_found', `no ${live ? 'live ' : ''}session ${id}`);
  return session;
}
