/**
 * The screencast wire format (docs/screencast-protocol.md): the binary picture header the
 * server writes and the JSON messages a viewer may send, validated in one place.
 */
import { badRequest, parseJsonObject } from '../viewer-socket.js';
import type { AtlasEntry } from './atlas.js';
export { ProtocolError, CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_SESSION_ENDED } from '../viewer-socket.js';

/** Binary message kinds (protocol "Server -> viewer"). */
export const KIND_TILE = 1;
export const KIND_LAST_TILE = 2;
export const HEADER_BYTES = 14;
/**
 * A whole frame in one message, for a viewer that asked for it (`{"type":"format","atlas":true}`):
 * kind 3, seq, the number of rects, then per rect where it goes on the screen and where its
 * pixels are in the one JPEG that follows (atlas.ts).
 */
export const KIND_ATLAS = 3;
export const ATLAS_HEADER_BYTES = 8;
export const ATLAS_ENTRY_BYTES = 16;

/** A text message over this closes the socket with 1009 (the WebSocketServer's own cap is larger). */
export const MAX_TEXT_BYTES = 1 << 20;
/** At most this many frames sent and not yet acked, per viewer. */
export const MAX_UNACKED = 2;
export const DEFAULT_QUALITY = 75;
export const MIN_QUALITY = 10;
export const MAX_QUALITY = 95;
/** Wheel notches per message; more is a broken or hostile viewer (one notch = one X click). */
export const MAX_WHEEL_NOTCHES = 100;
/** X keysyms are 29-bit values (X11 protocol, appendix A). */
const MAX_KEYSYM = 0x1fffffff;
const MAX_SEQ = 0xffffffff;

/** WebSocket close codes (RFC 6455 7.4.1) and ours (API.md 3.5: 4000 + the status), as WebRTC's. */
export const CLOSE_INTERNAL = 1011;
export const CLOSE_NETWORK_NOT_ALLOWED = 4003;
export { CLOSE_TOO_MANY_VIEWERS } from '../viewer-socket.js';

/** Writes the 14-byte big-endian header in front of a JPEG: kind, seq, x, y, width, height, 0. */
export function pictureMessage(kind: number, seq: number, x: number, y: number, width: number, height: number, jpeg: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + jpeg.length);
  out.writeUInt8(kind, 0);
  out.writeUInt32BE(seq >>> 0, 1);
  out.writeUInt16BE(x, 5);
  out.writeUInt16BE(y, 7);
  out.writeUInt16BE(width, 9);
  out.writeUInt16BE(height, 11);
  out.writeUInt8(0, 13);
  jpeg.copy(out, HEADER_BYTES);
  return out;
}

/** Kind 3: u8 kind, u32 seq, u16 count, u8 0, then count x 8 u16 (dx dy dw dh sx sy sw sh), then the JPEG. */
export function atlasMessage(seq: number, entries: readonly AtlasEntry[], jpeg: Buffer): Buffer {
  const head = ATLAS_HEADER_BYTES + entries.length * ATLAS_ENTRY_BYTES;
  const out = Buffer.allocUnsafe(head + jpeg.length);
  out.writeUInt8(KIND_ATLAS, 0);
  out.writeUInt32BE(seq >>> 0, 1);
  out.writeUInt16BE(entries.length, 5);
  out.writeUInt8(0, 7);
  entries.forEach((e, i) => {
    const o = ATLAS_HEADER_BYTES + i * ATLAS_ENTRY_BYTES;
    [e.dx, e.dy, e.dw, e.dh, e.sx, e.sy, e.sw, e.sh].forEach((v, k) => out.writeUInt16BE(v, o + k * 2));
  });
  jpeg.copy(out, head);
  return out;
}

export type ViewerMessage =
  | { type: 'ack'; seq: number }
  | { type: 'pointer'; x: number; y: number; buttons: number }
  | { type: 'wheel'; x: number; y: number; dx: number; dy: number }
  | { type: 'key'; keysym: number; down: boolean }
  | { type: 'paste'; text: string }
  | { type: 'quality'; value: number }
  | { type: 'format'; atlas: boolean }
  | { type: 'handoff'; outcome: 'done' | 'failed' }
  | TabMessage
  | FileMessage;

// The tab and file messages are shared with WebRTC's signalling (../page-messages.ts).
export { MAX_FILE_CHUNK_CHARS, parsePageMessage, type FileMessage, type TabMessage } from '../page-messages.js';
import { parsePageMessage, type FileMessage, type TabMessage } from '../page-messages.js';

const bad = badRequest;

function num(m: Record<string, unknown>, key: string, min: number, max: number, integer: boolean): number {
  const v = m[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) return bad(`${key} must be a number`);
  if (integer && !Number.isInteger(v)) return bad(`${key} must be an integer`);
  if (v < min || v > max) return bad(`${key} out of range ${min}..${max}`);
  return v;
}

/**
 * Parses one viewer message. Every problem throws ProtocolError: the caller has one fail()
 * path. Unknown extra fields are ignored so a newer viewer can talk to an older server.
 * Coordinates may be fractional (a scaled canvas) and are clamped by the caller, so only
 * absurd magnitudes are errors here.
 */
export function parseViewerMessage(data: Buffer, isBinary: boolean): ViewerMessage {
  const o = parseJsonObject(data, isBinary, MAX_TEXT_BYTES);
  const COORD = 1e6;
  switch (o.type) {
    case 'ack':
      return { type: 'ack', seq: num(o, 'seq', 0, MAX_SEQ, true) };
    case 'pointer':
      return { type: 'pointer', x: num(o, 'x', -COORD, COORD, false), y: num(o, 'y', -COORD, COORD, false), buttons: num(o, 'buttons', 0, 0xff, true) };
    case 'wheel':
      return {
        type: 'wheel',
        x: num(o, 'x', -COORD, COORD, false),
        y: num(o, 'y', -COORD, COORD, false),
        dx: num(o, 'dx', -MAX_WHEEL_NOTCHES, MAX_WHEEL_NOTCHES, false),
        dy: num(o, 'dy', -MAX_WHEEL_NOTCHES, MAX_WHEEL_NOTCHES, false),
      };
    case 'key': {
      if (typeof o.down !== 'boolean') return bad('down must be a boolean');
      return { type: 'key', keysym: num(o, 'keysym', 0, MAX_KEYSYM, true), down: o.down };
    }
    case 'paste':
      if (typeof o.text !== 'string') return bad('text must be a string');
      return { type: 'paste', text: o.text };
    case 'quality':
      return { type: 'quality', value: num(o, 'value', MIN_QUALITY, MAX_QUALITY, true) };
    case 'format':
      if (typeof o.atlas !== 'boolean') return bad('atlas must be a boolean');
      return { type: 'format', atlas: o.atlas };
    case 'handoff':
      if (o.outcome !== 'done' && o.outcome !== 'failed') return bad('outcome must be "done" or "failed"');
      return { type: 'handoff', outcome: o.outcome };
    default:
      return parsePageMessage(o) ?? bad(typeof o.type === 'string' ? `unknown message type ${JSON.stringify(o.type.slice(0, 40))}` : 'type must be a string');
  }
}
