import type { RawData, WebSocket } from 'ws';
import type { LinkKind } from './tokens.js';
import type { PageTab, ViewerHandle, ViewerSession } from './types.js';
import { SESSION_ENDED_CLOSE_CODE } from './types.js';
import type { Logger } from '../util/logger.js';
import { domainToUnicode } from 'node:url';

/**
 * What the JSON viewer sockets (screencast, WebRTC signalling) share: the close codes, the
 * one error type their parsers throw, JSON message parsing with a size cap, and closing a
 * socket cleanly even when the peer never answers.
 */

/** RFC 6455 7.4.1: policy violation (a malformed message) and message too big. */
export const CLOSE_POLICY = 1008;
export const CLOSE_TOO_BIG = 1009;
/** API.md 3.5: the session stopped. */
export { SESSION_ENDED_CLOSE_CODE as CLOSE_SESSION_ENDED } from './types.js';
/** 4000 + 429: no place for this viewer (too_many_viewers). */
export const CLOSE_TOO_MANY_VIEWERS = 4029;

/**
 * Places of a session's transport (10) that a view link cannot take (M4): whoever holds only
 * view links leaves room for the control link of the person asked to take over.
 */
export const CONTROL_RESERVED_PLACES = 2;

/** How many places of `maxViewers` a viewer that came with a `link` of this kind may fill. */
export function placesFor(link: LinkKind, maxViewers: number): number {
  return link === 'view' ? Math.max(0, maxViewers - CONTROL_RESERVED_PLACES) : maxViewers;
}

/** The refusal for a full session, for the viewer's error message. */
export function noPlaceMessage(link: LinkKind, maxViewers: number, what: string): string {
  return link === 'view'
    ? `this session already has ${placesFor(link, maxViewers)} ${what} viewers (the last ${CONTROL_RESERVED_PLACES} of ${maxViewers} places are kept for control links)`
    : `this session already has ${maxViewers} ${what} viewers`;
}

/** A JSON error message, then the close (docs/screencast-protocol.md, the WebRTC protocol). */
export function refuseSocket(ws: WebSocket, closeCode: number, code: string, message: string): void {
  ws.send(JSON.stringify({ type: 'error', code, message }), () => {});
  closeSocket(ws, closeCode, code);
}


/** A viewer broke the protocol (or was refused): the socket closes with `closeCode` after an error message. */
export class ProtocolError<Code extends string = string> extends Error {
  constructor(
    readonly closeCode: number,
    readonly code: Code,
    message: string,
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

export function badRequest(message: string): never {
  throw new ProtocolError(CLOSE_POLICY, 'bad_request', message);
}

/** One text message as a JSON object; binary, oversize or anything else is a ProtocolError. */
export function parseJsonObject(data: Buffer, isBinary: boolean, maxBytes: number): Record<string, unknown> {
  if (isBinary) return badRequest('binary messages are not accepted on this socket');
  if (data.length > maxBytes) throw new ProtocolError(CLOSE_TOO_BIG, 'message_too_big', `message over ${maxBytes} bytes`);
  let m: unknown;
  try {
    m = JSON.parse(data.toString('utf8'));
  } catch {
    return badRequest('message is not JSON');
  }
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return badRequest('message must be a JSON object');
  return m as Record<string, unknown>;
}

const CLOSE_GRACE_MS = 2000;

/** Starts the closing handshake; a peer that never answers it is cut off after a grace time. */
export function closeSocket(ws: WebSocket, code: number, reason: string): void {
  // A close reason is at most 123 bytes (RFC 6455 5.5: control frame payload <= 125).
  let r = reason;
  while (Buffer.byteLength(r) > 123) r = r.slice(0, -1);
  try {
    ws.close(code, r);
  } catch {
    ws.terminate();
  }
  const t = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
  t.unref();
  ws.once('close', () => clearTimeout(t));
}

/**
 * The socket half every JSON viewer (screencast, WebRTC signalling) shares: the ws events,
 * JSON sends, the `state` line sent only when it changed, and one way out that runs the
 * viewer's own teardown exactly once, whoever closes first (us or the peer).
 */
export class ViewerSocket {
  private lastState = '';
  private closedNow = false;
  private resolveClosed!: () => void;
  /** Resolves once the socket has closed. */
  readonly closed: Promise<void>;

  constructor(
    readonly ws: WebSocket,
    what: string,
    log: Logger,
    private readonly on: {
      /** A message while open (text or binary, as a Buffer). */
      message(data: Buffer, isBinary: boolean): void;
      /** The viewer's teardown: runs once, as soon as either side closes. */
      closed(): void;
    },
  ) {
    this.closed = new Promise((r) => (this.resolveClosed = r));
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (!this.closedNow) on.message(Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data), isBinary);
    });
    // ws reports its own protocol errors (bad UTF-8, its maxPayload) here, then closes.
    ws.on('error', (err) => log.debug(`${what} socket error`, { err: err.message }));
    ws.on('close', () => {
      this.markClosed();
      this.resolveClosed();
    });
  }

  get isClosed(): boolean {
    return this.closedNow;
  }

  sendJson(m: object): void {
    this.sendText(JSON.stringify(m));
  }

  sendText(text: string): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(text, () => {});
  }

  /** Sends `state` if anything in it differs from what this viewer was last told. */
  sendState(session: ViewerSession, handle: ViewerHandle): void {
    if (this.closedNow) return;
    const s = session.viewerState();
    const text = JSON.stringify({
      type: 'state',
      canControl: handle.canControl,
      attachment: s.attachment,
      handoff: s.handoff,
      viewers: s.viewers,
      downloads: s.downloads,
      // A view link sees which tabs exist by title, not where they are (review L4: tokens in
      // query strings, private hosts and paths).
      tabs: handle.viewLink ? (s.tabs ?? []).map(titleOnly) : (s.tabs ?? []),
      fileRequest: handle.viewLink ? null : (s.fileRequest ?? null),
    });
    if (text === this.lastState) return;
    this.lastState = text;
    this.sendText(text);
  }

  /** Tells the viewer why (`ended` when the session ended), then closes with `code`. */
  end(code: number, reason: string): void {
    if (this.closedNow) return;
    if (code === SESSION_ENDED_CLOSE_CODE) this.sendJson({ type: 'ended', reason });
    this.close(code, reason);
  }

  /** A protocol error or refusal: the error message, then the close with its code. */
  fail(e: ProtocolError): void {
    if (this.closedNow) return;
    this.sendJson({ type: 'error', code: e.code, message: e.message });
    this.close(e.closeCode, e.code);
  }

  close(code: number, reason: string): void {
    if (this.closedNow) return;
    this.markClosed();
    closeSocket(this.ws, code, reason);
  }

  private markClosed(): void {
    if (this.closedNow) return;
    this.closedNow = true;
    this.on.closed();
  }
}

/** A tab without its url, and without a title Chromium made from the url. */
function titleOnly(t: PageTab): Omit<PageTab, 'url'> {
  const { url, ...rest } = t;
  return titleFromUrl(rest.title, url) ? { ...rest, title: '' } : rest;
}

/**
 * Whether `title` may show `url`: Chromium titles a page without a <title> with its url, shown
 * its own way (no scheme or user info, percent-decoded, the host in Unicode), and both are cut
 * to 300 characters before this sees them. So any title naming the url's host counts, and any
 * that starts like the url in one of those forms (data:, about: and file: urls have no host).
 */
export function titleFromUrl(title: string, url: string): boolean {
  if (!title) return false;
  const decode = (v: string) => {
    try {
      return decodeURIComponent(v);
    } catch {
      return v;
    }
  };
  const t = title.toLowerCase();
  const forms = [url, url.replace(/^[a-z][a-z0-9+.-]*:(\/\/)?([^@/?#]*@)?/i, '')];
  let host = '';
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    // not a url: only the prefix forms
  }
  const hosts = host ? [host, domainToUnicode(host)].filter(Boolean).map((h) => h.toLowerCase()) : [];
  if (hosts.some((h) => t.includes(h))) return true;
  return forms.flatMap((f) => [f, decode(f)]).some((f) => f.toLowerCase().startsWith(t) || t.startsWith(f.toLowerCase()));
}
