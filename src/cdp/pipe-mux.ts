import { EventEmitter } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { NulSplitter, type PipeMessage } from './pipe-message.js';

/**
 * The one owner of a Chromium's DevTools pipe (--remote-debugging-pipe: NUL-terminated JSON,
 * commands on fd 3, answers and events on fd 4), shared by the daemon and the agent.
 *
 * - Every command gets a pipe-wide id; its answer goes back to whoever sent it, with the
 *   sender's own id restored.
 * - The daemon speaks on the root session (no sessionId) and alone gets root events.
 * - Each agent connection gets a DevTools session of its own (`Target.attachToBrowserTarget`,
 *   or `Target.attachToTarget` for a page-level socket): what it sends without a sessionId
 *   goes there, and what comes back on it reaches the agent without the sessionId, so the
 *   agent sees what a WebSocket of its own to Chromium showed it. Chromium keeps discovery,
 *   auto-attach and attached children per DevTools session, so nothing one client sets up
 *   reaches another, and detaching that session when the agent goes drops all of it.
 * - Child sessions (flatten mode) belong to the client whose session attached them; a client
 *   naming a session it does not own gets Chromium's "not found" answer and nothing is sent.
 */

/** Cap on one message from Chromium (a full-page screenshot of a huge page stays well below). */
const MAX_PIPE_MESSAGE = 512 * 1024 * 1024;
const SESSION_NOT_FOUND = -32001;
const GONE: CdpError = { code: -32000, message: 'the browser is gone' };
const INVALID_REQUEST = -32600;
/** Commands whose answer names a new session of the sender. */
const ATTACHING = new Set(['Target.attachToTarget', 'Target.attachToBrowserTarget']);
/** Agent commands that act on a page (not the set-up a client sends every page it attaches): that page is the one the agent uses. */
const ACTS_ON_PAGE = /^(Input\.|Page\.(navigate|reload|bringToFront|captureScreenshot|printToPDF)$|Runtime\.(callFunctionOn|evaluate)$|DOM\.setFileInputFiles$)/;

interface Pending {
  client: MuxClient;
  clientId: number;
  /** Watch the answer for a new session (see ATTACHING). */
  attaching: boolean;
  /** The mux's own command for this client (its attach): answered to the mux, not the client. */
  internal?: (m: PipeMessage | null) => void;
}

export interface CdpError {
  code: number;
  message: string;
}

/** Rejection of a command the daemon sent. */
export class CdpCommandError extends Error {
  constructor(
    readonly method: string,
    readonly error: CdpError,
  ) {
    super(`${method}: ${error.message}`);
  }
}

abstract class MuxClient {
  readonly sessions = new Set<string>();
  closed = false;
  /** The client's browser- or page-level session; undefined for the root (the daemon). */
  primary?: string;
  abstract deliver(m: PipeMessage, clientId: number | undefined): void;
  abstract fail(clientId: number, error: CdpError): void;
}

export class CdpPipeMux extends EventEmitter<{ event: [method: string, params: any, sessionId: string | undefined]; closed: []; agentPage: [targetId: string | null] }> {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly owners = new Map<string, MuxClient>();
  private readonly root: RootClient;
  private readonly blocked = new Set<AgentChannel>();
  private drainWaiters: (() => void)[] = [];
  private ended = false;
  /** Agents' sessions on pages -> the page's targetId. */
  private readonly pageOf = new Map<string, string>();
  /** The page an agent last acted on (ACTS_ON_PAGE), while one is connected: the viewers' tab strip marks it. */
  agentPage: string | null = null;
  /** Resolves once the pipe from Chromium has ended (every message on it was routed). */
  readonly closed: Promise<void>;

  constructor(
    private readonly toBrowser: Writable,
    private readonly fromBrowser: Readable,
  ) {
    super();
    this.root = new RootClient(this);
    const splitter = new NulSplitter(
      MAX_PIPE_MESSAGE,
      (m) => this.route(m),
      (head) => this.oversize(head),
    );
    fromBrowser.on('data', (chunk: Buffer) => splitter.push(chunk));
    this.closed = new Promise((resolve) => {
      const done = () => {
        if (!this.ended) this.shutdown();
        resolve();
      };
      fromBrowser.once('end', done);
      fromBrowser.once('close', done);
      fromBrowser.once('error', done);
    });
    toBrowser.on('error', () => {}); // Chromium gone: the read side reports it
    toBrowser.on('drain', () => this.drained());
  }

  /** Chromium is not reading its commands as fast as they come: writers should wait. */
  get congested(): boolean {
    return !this.ended && this.toBrowser.writableNeedDrain;
  }

  /** Calls `cb` once the pipe to Chromium has drained (at once when it is not congested). */
  whenDrained(cb: () => void): void {
    if (this.congested) this.drainWaiters.push(cb);
    else cb();
  }

  private drained(): void {
    for (const cb of this.drainWaiters.splice(0)) cb();
  }

  get isClosed(): boolean {
    return this.ended;
  }

  /** A command on the root session, for the daemon. */
  send(method: string, params: object = {}, sessionId?: string): Promise<any> {
    return this.root.send(method, params, sessionId);
  }

  /**
   * A DevTools session of its own for an agent: the browser's, or with `targetId` that of
   * one page (for /devtools/page/ID sockets). Resolves once Chromium attached it.
   */
  openAgent(targetId?: string): Promise<AgentChannel> {
    const channel = new AgentChannel(this);
    const [method, params] = targetId ? ['Target.attachToTarget', { targetId, flatten: true }] : ['Target.attachToBrowserTarget', {}];
    return new Promise<AgentChannel>((resolve, reject) => {
      if (this.ended) return reject(new CdpCommandError(method, GONE));
      const internal = (m: PipeMessage | null) => {
        const reply = m?.json();
        const sessionId = reply?.result?.sessionId;
        if (typeof sessionId !== 'string') return reject(new CdpCommandError(method, reply?.error ?? GONE));
        // Owned before the next message is routed: events on it may follow at once.
        channel.primary = sessionId;
        this.own(channel, sessionId);
        if (targetId) this.pageOf.set(sessionId, targetId);
        resolve(channel);
      };
      this.write({ method, params }, { client: channel, clientId: -1, attaching: false, internal });
    });
  }

  /** Sends one command; `pending` says where its answer goes. */
  write(cmd: { method: string; params?: unknown; sessionId?: string }, pending: Pending): void {
    if (this.ended) return;
    const id = ++this.nextId;
    this.pending.set(id, pending);
    this.toBrowser.write(JSON.stringify({ id, method: cmd.method, params: cmd.params ?? {}, ...(cmd.sessionId ? { sessionId: cmd.sessionId } : {}) }) + '\0');
  }

  own(client: MuxClient, sessionId: string): void {
    if (client.closed || this.owners.has(sessionId)) return;
    this.owners.set(sessionId, client);
    client.sessions.add(sessionId);
  }

  private disown(sessionId: string): void {
    const c = this.owners.get(sessionId);
    if (!c) return;
    this.owners.delete(sessionId);
    this.pageOf.delete(sessionId);
    c.sessions.delete(sessionId);
    if (c instanceof AgentChannel && c.primary === sessionId) c.lost();
  }

  /** An agent left: forget it, and detach its session (which drops everything it set up). */
  release(channel: AgentChannel): void {
    for (const [id, p] of this.pending) if (p.client === channel) this.pending.delete(id);
    for (const s of channel.sessions) {
      this.owners.delete(s);
      this.pageOf.delete(s);
    }
    if (![...this.owners.values()].some((c) => c instanceof AgentChannel)) this.setAgentPage(null);
    this.setBlocked(channel, false);
    if (channel.primary && !this.ended) this.root.send('Target.detachFromTarget', { sessionId: channel.primary }).catch(() => {});
  }

  /** An agent sent `method` on `sessionId`: if it acts on a page, that page is the agent's. */
  agentCommand(sessionId: string, method: string): void {
    const page = this.pageOf.get(sessionId);
    if (page && ACTS_ON_PAGE.test(method)) this.setAgentPage(page);
  }

  private setAgentPage(targetId: string | null): void {
    if (targetId === this.agentPage) return;
    this.agentPage = targetId;
    this.emit('agentPage', targetId);
  }

  /** Back-pressure: while an agent's socket is backed up, stop reading the pipe. */
  setBlocked(channel: AgentChannel, blocked: boolean): void {
    if (blocked) this.blocked.add(channel);
    else this.blocked.delete(channel);
    if (this.blocked.size > 0) this.fromBrowser.pause();
    else this.fromBrowser.resume();
  }

  private route(m: PipeMessage): void {
    const r = m.route;
    if (r.id !== undefined) {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (p.internal) return p.internal(m);
      if (p.attaching && !p.client.closed) {
        const s = m.json()?.result?.sessionId;
        if (typeof s === 'string') this.own(p.client, s);
      }
      if (!p.client.closed) p.client.deliver(m, p.clientId);
      return;
    }
    const client = r.sessionId === undefined ? this.root : this.owners.get(r.sessionId);
    if (r.method === 'Target.attachedToTarget' || r.method === 'Target.detachedFromTarget') {
      const child = m.json()?.params?.sessionId;
      if (typeof child === 'string') {
        // The root's sessions come only from its own commands; an agent's also from auto-attach.
        if (r.method === 'Target.attachedToTarget') {
          if (client && client !== this.root) {
            this.own(client, child);
            const info = m.json()?.params?.targetInfo;
            if (info?.type === 'page' && typeof info.targetId === 'string') this.pageOf.set(child, info.targetId);
          }
        } else if (this.owners.get(child) && (client === this.owners.get(child) || client === this.root)) {
          const owner = this.owners.get(child)!;
          this.disown(child);
          // A detach of an agent's own session is news for that agent only as its end.
          if (client === this.root && owner !== this.root) return;
        }
      }
    }
    if (client && !client.closed) client.deliver(m, undefined);
  }

  /** A message over the cap was dropped: its sender gets an error instead of waiting forever. */
  private oversize(head: string): void {
    const id = /^\{"id":(\d{1,15}),/.exec(head)?.[1];
    const p = id === undefined ? undefined : this.pending.get(Number(id));
    if (!p) return;
    this.pending.delete(Number(id));
    if (p.internal) return p.internal(null);
    p.client.fail(p.clientId, { code: -32000, message: `message larger than ${MAX_PIPE_MESSAGE} bytes dropped` });
  }

  private shutdown(): void {
    this.ended = true;
    const clients = new Set<MuxClient>([...this.owners.values()]);
    for (const p of this.pending.values()) clients.add(p.client);
    this.owners.clear();
    for (const p of this.pending.values()) p.internal?.(null);
    this.pending.clear();
    this.root.failAll();
    this.drained();
    for (const c of clients) if (c instanceof AgentChannel) c.lost();
    this.emit('closed');
  }
}

/** For ChromiumBrowser.launch `connect`. */
export function connectPipe(toBrowser: Writable, fromBrowser: Readable): CdpPipeMux {
  return new CdpPipeMux(toBrowser, fromBrowser);
}

/** An error answer as Chromium gives it. */
function errorReply(id: number, code: number, message: string): string {
  return JSON.stringify({ id, error: { code, message } });
}

/** The daemon's own client on the root session: parsed answers and events. */
class RootClient extends MuxClient {
  private readonly waiting = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void; method: string }>();
  private nextId = 0;

  constructor(private readonly mux: CdpPipeMux) {
    super();
  }

  send(method: string, params: object, sessionId?: string): Promise<any> {
    return new Promise((resolve, reject) => {
      if (this.mux.isClosed) return reject(new CdpCommandError(method, GONE));
      const id = ++this.nextId;
      this.waiting.set(id, { resolve, reject, method });
      this.mux.write({ method, params, sessionId }, { client: this, clientId: id, attaching: ATTACHING.has(method) });
    });
  }

  deliver(m: PipeMessage, clientId: number | undefined): void {
    const o = m.json();
    if (!o || typeof o !== 'object') {
      // Not a JSON object (a broken pipe, never Chromium itself): an error for whoever waits, no throw.
      if (clientId !== undefined) this.fail(clientId, { code: -32700, message: 'the browser answered with something that is not a JSON object' });
      return;
    }
    if (clientId !== undefined) {
      const w = this.waiting.get(clientId);
      if (!w) return;
      this.waiting.delete(clientId);
      if (o.error) w.reject(new CdpCommandError(w.method, o.error));
      else w.resolve(o.result);
      return;
    }
    if (typeof o.method === 'string') this.mux.emit('event', o.method, o.params, o.sessionId);
  }

  fail(clientId: number, error: CdpError): void {
    const w = this.waiting.get(clientId);
    this.waiting.delete(clientId);
    w?.reject(new CdpCommandError(w.method, error));
  }

  failAll(): void {
    for (const w of this.waiting.values()) w.reject(new CdpCommandError(w.method, GONE));
    this.waiting.clear();
  }
}

/**
 * One agent's view of the browser: commands in (parsed, small), answers and events out as
 * ready-to-send bytes. The agent's socket layer sets `onMessage` and `onLost`.
 */
export class AgentChannel extends MuxClient {
  /** A message for the agent: a text frame's payload. */
  onMessage: (data: Buffer | string) => void = () => {};
  /** The agent's own session ended (page closed, browser gone): no more messages will come. */
  onLost: () => void = () => {};

  constructor(private readonly mux: CdpPipeMux) {
    super();
  }

  /** One command from the agent, as it sent it. */
  send(cmd: unknown): void {
    if (this.closed) return;
    const c = cmd as { id?: unknown; method?: unknown; params?: unknown; sessionId?: unknown };
    if (!c || typeof c !== 'object' || !Number.isSafeInteger(c.id) || (c.id as number) < 0) {
      return this.onMessage(JSON.stringify({ error: { code: INVALID_REQUEST, message: "Message must have integer 'id' property" } }));
    }
    const id = c.id as number;
    if (typeof c.method !== 'string') return this.onMessage(errorReply(id, INVALID_REQUEST, "Message must have string 'method' property"));
    if (c.params !== undefined && (typeof c.params !== 'object' || c.params === null || Array.isArray(c.params))) {
      return this.onMessage(errorReply(id, -32602, "Invalid parameters: 'params' must be an object"));
    }
    const sessionId = c.sessionId === undefined ? this.primary : c.sessionId;
    if (typeof sessionId !== 'string' || !this.sessions.has(sessionId)) {
      return this.onMessage(errorReply(id, SESSION_NOT_FOUND, 'Session with given id not found.'));
    }
    this.mux.agentCommand(sessionId, c.method);
    this.mux.write({ method: c.method, params: c.params, sessionId }, { client: this, clientId: id, attaching: ATTACHING.has(c.method) });
  }

  deliver(m: PipeMessage, clientId: number | undefined): void {
    this.onMessage(m.rewrite({ id: clientId, dropSession: m.route.sessionId === this.primary }));
  }

  fail(clientId: number, error: CdpError): void {
    this.onMessage(JSON.stringify({ id: clientId, error }));
  }

  /** The pipe toward the browser is backed up: the agent's socket should stop being read. */
  get congested(): boolean {
    return this.mux.congested;
  }

  whenDrained(cb: () => void): void {
    this.mux.whenDrained(cb);
  }

  /** The socket toward the agent is backed up (true) or drained (false). */
  setBackedUp(backedUp: boolean): void {
    if (!this.closed) this.mux.setBlocked(this, backedUp);
  }

  /** @internal the mux lost this agent's session. */
  lost(): void {
    if (this.closed) return;
    this.closed = true;
    this.mux.release(this);
    this.onLost();
  }

  /** The agent went: detach its session. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.mux.release(this);
  }
}
