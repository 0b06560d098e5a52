import { connect, type Socket } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { FrameSplitter, closeFrame, textFrame } from './frames.js';
import { HandoffError } from '../util/errors.js';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const MAX_HANDSHAKE_BYTES = 16 * 1024;
/** Client commands up to this size are looked at (the one we watch for is tiny). */
const INSPECT_LIMIT = 4096;

export interface RelayOptions {
  /** Sees each small text frame the client sends; returning true keeps it from the browser. */
  onClientText?: (payload: Buffer) => boolean;
  /** Any bytes from the client: the agent is active. */
  onClientActivity?: () => void;
  /** Once, when either side closes. */
  onClose?: (who: 'client' | 'browser') => void;
}

/**
 * Joins an agent's WebSocket to the browser's DevTools socket at the byte level. Both
 * handshakes are ours, with no extensions, so the frames on the two TCP connections are
 * the same bytes: the client's masked frames are valid for Chromium and Chromium's unmasked
 * frames are valid for the client. Nothing is re-framed or re-encoded on the way; splitters
 * only find where frames end, so small client commands can be looked at (and the Handoff
 * domain answered here) and our own frames (answers, events, the 4000 close of API.md 3.5)
 * go between the browser's frames.
 */
export class CdpRelay {
  private closed = false;
  private readonly fromClient: FrameSplitter;
  private readonly fromBrowser: FrameSplitter;
  /** Frames of our own for the client, waiting for the end of the browser's current frame. */
  private injected: Buffer[] = [];

  private constructor(
    private readonly client: Duplex,
    private readonly upstream: Socket,
    private readonly opts: RelayOptions,
  ) {
    const toBrowser = (b: Buffer) => {
      if (!upstream.write(b)) client.pause();
    };
    this.fromClient = new FrameSplitter(INSPECT_LIMIT, {
      pass: toBrowser,
      frame: (raw, payload, opcode, fin) => {
        if (opcode === 1 && fin && opts.onClientText?.(payload)) return;
        toBrowser(raw);
      },
    });
    this.fromBrowser = new FrameSplitter(-1, {
      pass: (b) => {
        if (!client.write(b)) upstream.pause();
      },
    });
  }

  /**
   * Opens the browser side first, so a failure there is still an HTTP error for the
   * client; then answers the client's upgrade with 101 and starts relaying.
   */
  static async open(req: IncomingMessage, client: Duplex, head: Buffer, browserWsUrl: string, opts: RelayOptions = {}): Promise<CdpRelay> {
    const key = req.headers['sec-websocket-key'];
    if (req.headers.upgrade?.toLowerCase() !== 'websocket' || typeof key !== 'string' || !/^[A-Za-z0-9+/]{22}==$/.test(key)) {
      throw new HandoffError('bad_request', 'not a WebSocket upgrade');
    }
    const { socket: upstream, rest } = await openUpstream(browserWsUrl);
    if (client.destroyed) {
      upstream.destroy();
      throw new HandoffError('bad_request', 'client went away');
    }
    const accept = createHash('sha1').update(key + WS_GUID).digest('base64');
    client.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    const relay = new CdpRelay(client, upstream, opts);
    relay.start(head, rest);
    return relay;
  }

  private start(head: Buffer, rest: Buffer): void {
    const { client, upstream, opts } = this;
    (client as Socket).setNoDelay?.(true);
    upstream.setNoDelay(true);
    const fromClient = (chunk: Buffer) => {
      opts.onClientActivity?.();
      this.fromClient.push(chunk);
    };
    const fromBrowser = (chunk: Buffer) => {
      this.fromBrowser.push(chunk);
      if (this.injected.length && this.fromBrowser.atBoundary) this.flushInjected();
    };
    upstream.on('drain', () => client.resume());
    client.on('drain', () => upstream.resume());
    if (head.length) fromClient(head);
    if (rest.length) fromBrowser(rest);
    client.on('data', fromClient);
    upstream.on('data', fromBrowser);

    client.on('close', () => this.finish('client'));
    upstream.on('close', () => this.finish('browser'));
    client.on('error', () => client.destroy());
    upstream.on('error', () => upstream.destroy());
  }

  /** Sends a CDP message of our own to the agent, between the browser's frames. */
  sendToClient(message: object): void {
    if (this.closed) return;
    this.injected.push(textFrame(JSON.stringify(message)));
    if (this.fromBrowser.atBoundary) this.flushInjected();
  }

  private flushInjected(): void {
    for (const f of this.injected.splice(0)) this.client.write(f);
  }

  private finish(who: 'client' | 'browser'): void {
    if (who === 'client') this.upstream.destroy();
    // Chromium answered the agent's close and hung up: the agent left (auto_close applies),
    // and as the server side we close the agent's TCP connection now.
    if (who === 'browser' && this.fromClient.sawClose) {
      who = 'client';
      this.client.end();
    }
    if (this.closed) return;
    this.closed = true;
    this.opts.onClose?.(who);
  }

  /**
   * Closes the agent's socket with `code` and `reason`. The browser side is dropped first
   * so no frame of it can follow our close frame.
   */
  close(code: number, reason: string): void {
    this.upstream.removeAllListeners('data');
    this.upstream.destroy();
    if (!this.client.destroyed) {
      // Mid-frame (the browser died halfway through one) a close frame would corrupt the
      // stream: then the socket is just dropped.
      if (this.fromBrowser.atBoundary) this.client.end(closeFrame(code, reason));
      else this.client.destroy();
      setTimeout(() => this.client.destroy(), 2000).unref();
    }
    if (!this.closed) {
      this.closed = true;
      this.opts.onClose?.('client');
    }
  }
}

/** A WebSocket client handshake to Chromium on a raw socket (RFC 6455 4.1), no extensions. */
function openUpstream(url: string): Promise<{ socket: Socket; rest: Buffer }> {
  const u = new URL(url);
  const key = randomBytes(16).toString('base64');
  const expected = createHash('sha1').update(key + WS_GUID).digest('base64');
  return new Promise((resolve, reject) => {
    const socket = connect(Number(u.port), u.hostname);
    let buf = Buffer.alloc(0);
    const fail = (why: string) => {
      socket.destroy();
      reject(new HandoffError('browser_failed', 'the browser did not accept the connection', {}, why));
    };
    const timer = setTimeout(() => fail('handshake timed out'), 10_000);
    socket.once('error', (e) => {
      clearTimeout(timer);
      fail(e.message);
    });
    socket.once('connect', () => {
      socket.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) {
        if (buf.length > MAX_HANDSHAKE_BYTES) fail('handshake response too large');
        return;
      }
      socket.off('data', onData);
      clearTimeout(timer);
      const headerText = buf.subarray(0, end).toString('latin1');
      if (!/^HTTP\/1\.1 101 /.test(headerText)) return fail(headerText.split('\r\n')[0] ?? 'no status');
      const accept = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(headerText)?.[1];
      if (accept !== expected) return fail('bad Sec-WebSocket-Accept');
      socket.removeAllListeners('error');
      resolve({ socket, rest: buf.subarray(end + 4) });
    };
    socket.on('data', onData);
  });
}
