// What the dashboard reads from the REST API (API.md 3).

export interface SessionInfo {
  session_id: string;
  run_id: string;
  state: string;
  attachment: string;
  width: number;
  height: number;
  created_at: string;
  last_activity_at?: string;
  expires_at: string | null;
  transports: Record<string, boolean>;
  viewers: Record<string, number>;
  vnc_url?: string | null;
  handoff: { id: string; reason: string; requested_at: string } | null;
}

export interface AuditEvent {
  id: number;
  ts: string;
  type: string;
  session_id?: string | null;
  run_id?: string | null;
  transport?: string | null;
  source_ip?: string | null;
  actor?: string | null;
  detail?: Record<string, unknown> | null;
}
