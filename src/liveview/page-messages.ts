/**
 * The tab and file messages a viewer sends (docs/screencast-protocol.md, issue 11), on the
 * screencast socket and on WebRTC's signalling socket alike, validated in one place.
 */
import { badRequest } from './viewer-socket.js';

const bad = badRequest;

/**
 * The tab strip and its key menu (issue 11 item 2). `focus` (issue 12, no id): after a tap, which
 * keyboard the shown tab's focused field wants; answered with `focus` messages (page-actions.ts).
 */
export type TabMessage = { type: 'tab'; action: 'activate' | 'close' | 'new' | 'reload' | 'focus'; id?: string };

/**
 * The human's answer to a page's file request (issue 11 item 1), files in base64 chunks:
 * file_start (one per file), file_chunk..., then file_end for the whole request, or
 * file_cancel. The daemon answers `file_done {request, files}` or an `error`.
 */
export type FileMessage =
  | { type: 'file_start'; request: string; name: string; size: number }
  | { type: 'file_chunk'; request: string; data: Buffer }
  | { type: 'file_end'; request: string }
  | { type: 'file_cancel'; request: string };

/** Base64 characters in one file_chunk (fits a 1 MiB text message with room for the JSON around it). */
export const MAX_FILE_CHUNK_CHARS = 512 * 1024;
const MAX_FILE_NAME = 1024;
const MAX_ID = 64;

function str(m: Record<string, unknown>, key: string, max: number): string {
  const v = m[key];
  if (typeof v !== 'string' || v.length === 0 || v.length > max) return bad(`${key} must be a string of 1..${max} characters`);
  return v;
}

function size(v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return bad('size must be an integer of 0 or more');
  return v;
}

/** The tab and file messages, shared by the screencast socket and WebRTC's signalling socket. */
export function parsePageMessage(o: Record<string, unknown>): TabMessage | FileMessage | undefined {
  switch (o.type) {
    case 'tab': {
      const action = o.action;
      if (action !== 'activate' && action !== 'close' && action !== 'new' && action !== 'reload' && action !== 'focus') return bad('action must be activate, close, new, reload or focus');
      if (action === 'new' || action === 'focus') return { type: 'tab', action };
      return { type: 'tab', action, id: str(o, 'id', MAX_ID) };
    }
    case 'file_start':
      return { type: 'file_start', request: str(o, 'request', MAX_ID), name: str(o, 'name', MAX_FILE_NAME), size: size(o.size) };
    case 'file_chunk': {
      const data = o.data;
      if (typeof data !== 'string' || data.length > MAX_FILE_CHUNK_CHARS || !/^[A-Za-z0-9+/]*={0,2}$/.test(data)) return bad(`data must be base64, at most ${MAX_FILE_CHUNK_CHARS} characters`);
      return { type: 'file_chunk', request: str(o, 'request', MAX_ID), data: Buffer.from(data, 'base64') };
    }
    case 'file_end':
    case 'file_cancel':
      return { type: o.type, request: str(o, 'request', MAX_ID) };
    default:
      return undefined;
  }
}
