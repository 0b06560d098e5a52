import type { ViewerSession } from '../types.js';

/** What the VNC server needs from the session registry. */
export interface VncDirectory {
  /** Live VNC-enabled sessions with their vnc_password; DES uses the first 8 chars. */
  vncSessions(): Array<{ password: string; session: ViewerSession }>;
  /** Audits auth_failed for a wrong password (the daemon writes the audit row). */
  authFailed(sourceIp: string): void;
}
