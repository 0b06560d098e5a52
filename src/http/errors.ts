import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import { HandoffError, type ErrorCode } from '../util/errors.js';
import type { Logger } from '../util/logger.js';

/** API.md 3.5: the one place codes become statuses. */
const STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  unauthorized: 401,
  network_not_allowed: 403,
  session_not_found: 404,
  not_found: 404,
  timeout: 408,
  session_attached: 409,
  vnc_password_conflict: 409,
  link_expired: 410,
  too_many_viewers: 429,
  too_many_sessions: 503,
  shutting_down: 503,
  browser_failed: 502,
  forbidden_origin: 403,
  forbidden_host: 421,
  // A live link whose kind does not allow the action (a view link completing a handoff).
  forbidden: 403,
  profile_in_use: 409,
  audit_unavailable: 503,
  insufficient_storage: 507,
  too_many_requests: 429,
  internal: 500,
};

export function statusOf(code: ErrorCode): number {
  return STATUS[code];
}

/** Turns anything thrown into the public error; unknown errors are logged once, here. */
export function toPublicError(err: unknown, logger: Logger): HandoffError {
  if (err instanceof HandoffError) {
    if (err.detail) logger.warn(err.message, { code: err.code, detail: err.detail });
    return err;
  }
  logger.error('unexpected error', { error: (err as Error)?.stack ?? String(err) });
  return new HandoffError('internal', 'internal error');
}

export function errorBody(err: HandoffError): string {
  return JSON.stringify({ error: { code: err.code, message: err.message, ...err.extra } });
}

export function sendError(res: ServerResponse, err: HandoffError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(err);
  res.writeHead(STATUS[err.code], { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** A whole HTTP/1.1 answer carrying the error, for a socket no ServerResponse owns. */
export function rawErrorResponse(err: HandoffError): string {
  const status = STATUS[err.code];
  const body = errorBody(err);
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
    'Content-Type: application/json\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  );
}

/** Refuses a WebSocket upgrade with a real HTTP status and the JSON error body. */
export function rejectUpgrade(socket: Duplex, err: HandoffError): void {
  if (!socket.writable) return void socket.destroy();
  socket.end(rawErrorResponse(err));
  // Destroy once the answer is flushed, so a client that never closes cannot hold it open.
  socket.once('finish', () => socket.destroy());
}
