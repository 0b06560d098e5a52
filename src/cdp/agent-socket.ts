import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { HandoffError } from '../util/errors.js';
import type { AgentChannel } from './pipe-mux.js';
import { keepAlive } from '../util/ws-keepalive.js';

/**
 * Largest message an agent may send (ws buffers a whole message before it is seen). CDP
 * commands are small, but Fetch.fulfillRequest bodies and injected scripts can be tens of
 * megabytes; 256 MiB is what one authenticated agent holding the lease may make us buffer.
 */
export const AGENT_MAX_PAYLOAD = 256 * 1024 * 1024;
/** Stop reading the browser's pipe while this much is queued toward a slow agent... */
const HIGH_WATER = 32 * 1024 * 1024;
/** ...and read again once it is down to this. */
const LOW_WATER = 8 * 1024 * 1024;

const agentWss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: AGENT_MAX_PAYLOAD, clientTracking: false });
/** Extra lines for an upgrade's 101 answer, set by the route (`X-Handoff-Session`, API.md 3.1). */
export const upgradeHeaders = new WeakMap<IncomingMessage, string[]>();
agentWss.on('headers', (headers, req) => headers.push(...(upgradeHeaders.get(req) ?? [])));

/** Refuses what is not a WebSocket upgrade, before anything is set up for it. */
export function checkUpgrade(req: IncomingMessage): void {
  const key = req.headers['sec-websocket-key'];
  if (req.headers.upgrade?.toLowerCase() !== 'websocket' || typeof key !== 'string' || !/^[A-Za-z0-9+/]{22}==$/.test(key) || req.headers['sec-websocket-version'] !== '13') {
    throw new HandoffError('bad_request', 'not a WebSocket upgrade');
  }
}

/** Answers the agent's upgrade (no extensions, text frames, AGENT_MAX_PAYLOAD). */
export function acceptAgentSocket(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return reject(new HandoffError('bad_request', 'client went away'));
    const gone = () => reject(new HandoffError('bad_request', 'client went away'));
    socket.once('close', gone);
    agentWss.handleUpgrade(req, socket, head, (ws) => {
      socket.off('close', gone);
      resolve(ws);
    });
  });
}

export interface AgentSocketOptions {
  /** Ping every keepaliveMs/2; a peer silent (no pong, no message) for keepaliveMs is dropped. */
  keepaliveMs: number;
  /** Sees each command first; returning true keeps it from the browser. */
  onCommand?: (cmd: any) => boolean;
  /** Any message from the agent: it is active. */
  onActivity?: () => void;
  /** Once: the agent's socket ended ('client'), or its browser session did ('browser'). */
  onClose?: (who: 'client' | 'browser') => void;
}

/**
 * An agent's CDP WebSocket joined to its own session on the browser's pipe. A close frame,
 * a FIN, a reset, a socket error and a missed keepalive all end it the same way (issue 15.1).
 */
export class AgentSocket {
  private finished = false;
  private queued = 0;
  private backedUp = false;
  private readingPaused = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly channel: AgentChannel,
    private readonly opts: AgentSocketOptions,
  ) {
    channel.onMessage = (data) => this.send(data);
    channel.onLost = () => this.finish('browser');
    ws.on('message', (data: Buffer) => this.onMessage(data));
    ws.on('error', () => ws.terminate());
    ws.on('close', () => {
      this.channel.close();
      this.finish('client');
    });
    // A peer that vanished without a FIN (host gone, process stopped) answers no ping.
    keepAlive(ws, opts.keepaliveMs);
  }

  private onMessage(data: Buffer): void {
    if (this.finished) return;
    try {
      this.opts.onActivity?.();
      let cmd: unknown;
      try {
        cmd = JSON.parse(data.toString('utf8'));
      } catch {
        return this.send(JSON.stringify({ error: { code: -32700, message: 'Message must be a valid JSON' } }));
      }
      if (this.opts.onCommand?.(cmd)) return;
      this.channel.send(cmd);
      // Chromium reads its commands slower than they come: stop reading the agent until the
      // pipe drains, so its commands wait in its own socket, not in our memory.
      if (this.channel.congested && !this.readingPaused) {
        this.readingPaused = true;
        this.ws.pause();
        this.channel.whenDrained(() => {
          this.readingPaused = false;
          this.ws.resume();
        });
      }
    } catch {
      // Nothing an agent sends may end the daemon: a command we cannot handle is dropped.
      this.ws.terminate();
    }
  }

  /** A text frame to the agent; the pipe pauses while too much waits for a slow one. */
  private send(data: Buffer | string): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    const n = data.length;
    this.queued += n;
    this.ws.send(data, { binary: false }, () => {
      this.queued -= n;
      if (this.backedUp && this.queued <= LOW_WATER) {
        this.backedUp = false;
        this.channel.setBackedUp(false);
      }
    });
    if (!this.backedUp && this.queued > HIGH_WATER) {
      this.backedUp = true;
      this.channel.setBackedUp(true);
    }
  }

  /** A command the agent sent earlier, sent on to the browser now (held input, API.md 7). */
  forward(cmd: unknown): void {
    if (!this.finished) this.channel.send(cmd);
  }

  /** A CDP message of the daemon's own (Handoff domain answers and events). */
  sendToClient(message: object): void {
    this.send(JSON.stringify(message));
  }

  /** Closes the agent's socket with `code` and `reason` (API.md 3.5: 4000 when the session ends). */
  close(code: number, reason: string): void {
    this.channel.close();
    if (this.ws.readyState === this.ws.OPEN) {
      this.ws.close(code, clip(reason, 123));
      // A peer that does not answer the close is dropped.
      setTimeout(() => this.ws.terminate(), 2000).unref();
    } else if (this.ws.readyState !== this.ws.CLOSED) {
      this.ws.terminate();
    }
    this.finish('client');
  }

  private finish(who: 'client' | 'browser'): void {
    if (this.finished) return;
    this.finished = true;
    this.opts.onClose?.(who);
  }
}

/** At most `max` UTF-8 bytes, cut between characters (a close reason's limit). */
function clip(s: string, max: number): string {
  let out = s;
  while (Buffer.byteLength(out) > max) out = out.slice(0, -1);
  return out;
}
