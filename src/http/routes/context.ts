import type { Duplex } from 'node:stream';
import type { Config } from '../../config/config.js';
import type { AuditLog } from '../../audit/log.js';
import type { SessionRegistry } from '../../sessions/registry.js';
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
}
