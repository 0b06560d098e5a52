/** Stable error codes of API.md 3.5; only http/ maps them to statuses. */
export type ErrorCode =
  | 'bad_request'
  | 'unauthorized'
  | 'network_not_allowed'
  | 'session_not_found'
  | 'not_found'
  | 'timeout'
  | 'session_attached'
  | 'vnc_password_conflict'
  | 'link_expired'
  | 'too_many_viewers'
  | 'too_many_sessions'
  | 'browser_failed'
  | 'forbidden_origin'
  | 'forbidden_host'
  | 'forbidden'
  | 'profile_in_use'
  | 'audit_unavailable'
  | 'insufficient_storage'
  | 'too_many_requests'
  | 'shutting_down'
  | 'internal';

/** The one base error: a public `message` for clients, `detail` for logs only. */
export class HandoffError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'HandoffError';
  }
}

export function isHandoffError(e: unknown): e is HandoffError {
  return e instanceof HandoffError;
}
