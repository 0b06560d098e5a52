import type { ViewerSession } from '../types.js';

/** What the VNC server needs from the session registry. */
export interface VncDirectory {
  /** Live VNC-enabled sessions with their vnc_password (des.ts derives the keys). */
  vncSessions(): Array<{ password: string; session: ViewerSession }>;
  /**
   * Audits auth_failed for a wrong password (the daemon writes the audit row). `detail` says
   * what the failure did to the source's throttle: consecutive failures, the lockout it
   * started, and the attempts refused unchecked since the previous row (those get no row).
   */
  authFailed(sourceIp: string, detail: { failures: number; locked_ms: number; refused_unchecked: number }): void;
}
