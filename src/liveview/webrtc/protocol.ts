/**
 * The WebRTC transport's two wire formats, validated in one place:
 *
 * 1. Signalling: JSON text messages on the WebSocket `/live/TOKEN/webrtc` (API.md 5).
 *
 *    viewer -> server
 *      {type:"hello", username?, password?, codecs:["H264","VP8"]}   first message, exactly once
 *      {type:"answer", sdp}                                          after the server's offer
 *      {type:"candidate", candidate, sdpMid?, sdpMLineIndex?}        optional trickle (the offer
 *                                                                   has all server candidates)
 *      {type:"handoff", outcome:"done"|"failed"}                     the Done / Can't do it buttons
 *      {type:"tab"|"file_start"|"file_chunk"|"file_end"|"file_cancel", ...}
 *                                         the tab strip and file answers, as on the screencast
 *                                         (docs/screencast-protocol.md; a file_chunk may be 1 MiB)
 *    server -> viewer
 *      {type:"offer", sdp, codec, sessionId, width, height}
 *      {type:"state", canControl, attachment, handoff, viewers, downloads, tabs, fileRequest}
 *      {type:"clipboard", text}               a copy in the session (control links in control)
 *      {type:"file_done", request, files}     a file answer was taken
 *      {type:"ended", reason}                 then close 4000
 *      {type:"error", code, message}          then close (see CLOSE_* below); with `request`, or
 *                                             answering a tab or file message, the socket stays open
 *
 * 2. Input: binary messages on the DataChannel labelled "input" (the server creates it, so it
 *    is in the offer). Integers are big-endian (network order). Byte 0 is the message type:
 *
 *      0x01 pointer  6 bytes   x u16 | y u16 | buttons u8
 *      0x02 wheel    7 bytes   x u16 | y u16 | dx i8 | dy i8
 *      0x03 key      6 bytes   keysym u32 | down u8 (0 up, 1 down)
 *      0x04 paste    2+ bytes  flags u8 (bit 0: last chunk) | UTF-8 bytes
 *
 *    x, y are framebuffer pixels (the viewer scales from its video element). buttons is the
 *    RFB mask (RFC 6143 7.5.5): bit 0 left, bit 1 middle, bit 2 right, bits 3-6 wheel
 *    up/down/left/right, bit 7 button 8. dx, dy are wheel notches (positive: right, down).
 *    A paste is one or more chunks (split anywhere, even inside a UTF-8 sequence: chunks are
 *    joined before decoding) of at most MAX_INPUT_MESSAGE_BYTES each; the text is at most
 *    MAX_PASTE_BYTES in total. It becomes the X clipboard and is pasted with Ctrl+V.
 *    A viewer without control may send; nothing it sends reaches the session.
 */
import { badRequest, parseJsonObject, ProtocolError, CLOSE_TOO_BIG } from '../viewer-socket.js';
import { parsePageMessage, type FileMessage, type TabMessage } from '../page-messages.js';
export { ProtocolError, CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_SESSION_ENDED } from '../viewer-socket.js';

/** WebSocket close codes (RFC 6455 7.4.1) and ours (API.md 3.5: 4000 + the HTTP status). */
export const CLOSE_INTERNAL = 1011;
export const CLOSE_UNAUTHORIZED = 4001;
export const CLOSE_NETWORK_NOT_ALLOWED = 4003;
export const CLOSE_TOO_MANY_VIEWERS = 4029;

/** Codecs in the server's order of preference (issue 5: H.264 first). */
export const CODECS = ['H264', 'VP8'] as const;
export type Codec = (typeof CODECS)[number];

/** A signalling message over this closes the socket with 1009 (SDP answers are a few KB). */
export const MAX_SIGNAL_BYTES = 64 * 1024;
/** A file_chunk signalling message, at most (the screencast's text message cap). */
export const MAX_FILE_MESSAGE_BYTES = 1 << 20;
/** One DataChannel message, at most (a paste chunk; the kit sends 16 KiB chunks). */
export const MAX_INPUT_MESSAGE_BYTES = 64 * 1024;
/** A whole paste, at most (issue 5). */
export const MAX_PASTE_BYTES = 1024 * 1024;
/** Wheel notches per message: an i8, but more than this is a broken viewer (one notch = one X click). */
export const MAX_WHEEL_NOTCHES = 100;
/** X keysyms are 29-bit values (X11 protocol, appendix A). */
const MAX_KEYSYM = 0x1fffffff;
/** Credentials and codec names are short; these bound what a hello can make us hash or scan. */
const MAX_CREDENTIAL_CHARS = 1024;
const MAX_CODECS = 16;

export const INPUT_POINTER = 0x01;
export const INPUT_WHEEL = 0x02;
export const INPUT_KEY = 0x03;
export const INPUT_PASTE = 0x04;
export const PASTE_LAST = 0x01;

export type ErrorCode =
  | 'bad_request'
  | 'message_too_big'
  | 'unauthorized'
  | 'network_not_allowed'
  | 'too_many_viewers'
  | 'timeout'
  | 'connection_failed'
  | 'internal';

const bad = badRequest;

// -------------------------------------------------------------------------------------------
// Signalling

export type SignalMessage =
  | { type: 'hello'; username: string | null; password: string | null; codecs: string[] }
  | { type: 'answer'; sdp: string }
  | { type: 'candidate'; candidate: string; sdpMid: string | null; sdpMLineIndex: number | null }
  | { type: 'handoff'; outcome: 'done' | 'failed' }
  | TabMessage
  | FileMessage;

function optString(o: Record<string, unknown>, key: string, max: number): string | null {
  const v = o[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') return bad(`${key} must be a string`);
  if (v.length > max) return bad(`${key} is longer than ${max} characters`);
  return v;
}

/**
 * Parses one signalling message. Every problem throws ProtocolError (the caller has one
 * fail() path). Unknown extra fields are ignored so a newer viewer can talk to an older server.
 */
export function parseSignal(data: Buffer, isBinary: boolean): SignalMessage {
  // Only a file_chunk may be as large as the screencast's text messages.
  const big = data.length > MAX_SIGNAL_BYTES;
  const tooBig = () => new ProtocolError(CLOSE_TOO_BIG, 'message_too_big', `message over ${MAX_SIGNAL_BYTES} bytes`);
  let o: Record<string, unknown>;
  try {
    o = parseJsonObject(data, isBinary, big ? MAX_FILE_MESSAGE_BYTES : MAX_SIGNAL_BYTES);
  } catch (e) {
    throw big && !isBinary ? tooBig() : e;
  }
  if (big && o.type !== 'file_chunk') throw tooBig();
  const page = parsePageMessage(o);
  if (page) return page;
  switch (o.type) {
    case 'hello': {
      const codecs = o.codecs;
      if (!Array.isArray(codecs) || codecs.length > MAX_CODECS || !codecs.every((c) => typeof c === 'string' && c.length <= 32)) {
        return bad(`codecs must be an array of at most ${MAX_CODECS} codec names`);
      }
      return {
        type: 'hello',
        username: optString(o, 'username', MAX_CREDENTIAL_CHARS),
        password: optString(o, 'password', MAX_CREDENTIAL_CHARS),
        codecs: codecs as string[],
      };
    }
    case 'answer':
      if (typeof o.sdp !== 'string' || o.sdp.length === 0) return bad('sdp must be a non-empty string');
      return { type: 'answer', sdp: o.sdp };
    case 'candidate': {
      if (typeof o.candidate !== 'string') return bad('candidate must be a string');
      const mid = o.sdpMid;
      if (mid !== undefined && mid !== null && typeof mid !== 'string') return bad('sdpMid must be a string');
      const idx = o.sdpMLineIndex;
      if (idx !== undefined && idx !== null && !(Number.isInteger(idx) && (idx as number) >= 0 && (idx as number) < 64)) {
        return bad('sdpMLineIndex must be a small integer');
      }
      return { type: 'candidate', candidate: o.candidate, sdpMid: (mid as string | undefined) ?? null, sdpMLineIndex: (idx as number | undefined) ?? null };
    }
    case 'handoff':
      if (o.outcome !== 'done' && o.outcome !== 'failed') return bad('outcome must be "done" or "failed"');
      return { type: 'handoff', outcome: o.outcome };
    default:
      return bad(typeof o.type === 'string' ? `unknown message type ${JSON.stringify(o.type.slice(0, 40))}` : 'type must be a string');
  }
}

/** The first codec of ours (in our order) the viewer can decode; names are case-insensitive. */
export function chooseCodec(viewerCodecs: readonly string[]): Codec | null {
  const theirs = new Set(viewerCodecs.map((c) => c.toUpperCase().replace(/^VIDEO\//, '')));
  return CODECS.find((c) => theirs.has(c)) ?? null;
}

// -------------------------------------------------------------------------------------------
// DataChannel input

export type InputMessage =
  | { type: 'pointer'; x: number; y: number; buttons: number }
  | { type: 'wheel'; x: number; y: number; dx: number; dy: number }
  | { type: 'key'; keysym: number; down: boolean }
  | { type: 'paste'; last: boolean; bytes: Buffer };

function exactLength(buf: Buffer, n: number, what: string): void {
  if (buf.length !== n) bad(`${what} message must be ${n} bytes, got ${buf.length}`);
}

/** Parses one DataChannel message (layout in the header comment). Throws ProtocolError. */
export function parseInput(data: Buffer | string): InputMessage {
  if (typeof data === 'string') return bad('input messages are binary');
  if (data.length > MAX_INPUT_MESSAGE_BYTES) {
    throw new ProtocolError(CLOSE_TOO_BIG, 'message_too_big', `input message over ${MAX_INPUT_MESSAGE_BYTES} bytes`);
  }
  if (data.length === 0) return bad('empty input message');
  switch (data[0]) {
    case INPUT_POINTER:
      exactLength(data, 6, 'pointer');
      return { type: 'pointer', x: data.readUInt16BE(1), y: data.readUInt16BE(3), buttons: data[5]! };
    case INPUT_WHEEL: {
      exactLength(data, 7, 'wheel');
      const dx = data.readInt8(5);
      const dy = data.readInt8(6);
      if (Math.abs(dx) > MAX_WHEEL_NOTCHES || Math.abs(dy) > MAX_WHEEL_NOTCHES) bad(`wheel notches out of range -${MAX_WHEEL_NOTCHES}..${MAX_WHEEL_NOTCHES}`);
      return { type: 'wheel', x: data.readUInt16BE(1), y: data.readUInt16BE(3), dx, dy };
    }
    case INPUT_KEY: {
      exactLength(data, 6, 'key');
      const keysym = data.readUInt32BE(1);
      if (keysym > MAX_KEYSYM) bad(`keysym ${keysym} out of range`);
      const down = data[5]!;
      if (down > 1) bad('key down must be 0 or 1');
      return { type: 'key', keysym, down: down === 1 };
    }
    case INPUT_PASTE: {
      if (data.length < 2) bad('paste message must have a flags byte');
      const flags = data[1]!;
      if ((flags & ~PASTE_LAST) !== 0) bad('unknown paste flags');
      return { type: 'paste', last: (flags & PASTE_LAST) !== 0, bytes: data.subarray(2) };
    }
    default:
      return bad(`unknown input message type 0x${data[0]!.toString(16)}`);
  }
}

/**
 * Joins paste chunks; `push` returns the text when the last chunk arrives. Over
 * MAX_PASTE_BYTES in total is a protocol error (the kit never sends that much).
 */
export class PasteAssembler {
  private chunks: Buffer[] = [];
  private bytes = 0;

  push(last: boolean, bytes: Buffer): string | null {
    this.bytes += bytes.length;
    if (this.bytes > MAX_PASTE_BYTES) {
      this.reset();
      throw new ProtocolError(CLOSE_TOO_BIG, 'message_too_big', `paste over ${MAX_PASTE_BYTES} bytes`);
    }
    // Copied: the DataChannel may reuse the buffer it handed us.
    this.chunks.push(Buffer.from(bytes));
    if (!last) return null;
    const text = Buffer.concat(this.chunks).toString('utf8');
    this.reset();
    return text;
  }

  reset(): void {
    this.chunks = [];
    this.bytes = 0;
  }
}

/** Encoders for the same layout: tests and bench use them; kit-webrtc.js mirrors them. */
export const encodeInput = {
  pointer(x: number, y: number, buttons: number): Buffer {
    const b = Buffer.alloc(6);
    b[0] = INPUT_POINTER;
    b.writeUInt16BE(x, 1);
    b.writeUInt16BE(y, 3);
    b[5] = buttons;
    return b;
  },
  wheel(x: number, y: number, dx: number, dy: number): Buffer {
    const b = Buffer.alloc(7);
    b[0] = INPUT_WHEEL;
    b.writeUInt16BE(x, 1);
    b.writeUInt16BE(y, 3);
    b.writeInt8(dx, 5);
    b.writeInt8(dy, 6);
    return b;
  },
  key(keysym: number, down: boolean): Buffer {
    const b = Buffer.alloc(6);
    b[0] = INPUT_KEY;
    b.writeUInt32BE(keysym, 1);
    b[5] = down ? 1 : 0;
    return b;
  },
  paste(text: string, chunkBytes = 16 * 1024): Buffer[] {
    const bytes = Buffer.from(text, 'utf8');
    const out: Buffer[] = [];
    for (let i = 0; i === 0 || i < bytes.length; i += chunkBytes) {
      const part = bytes.subarray(i, i + chunkBytes);
      const last = i + chunkBytes >= bytes.length;
      out.push(Buffer.concat([Buffer.from([INPUT_PASTE, last ? PASTE_LAST : 0]), part]));
    }
    return out;
  },
};
