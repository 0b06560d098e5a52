import { forwardedClient, hostForUrl, normalizeIp } from '../util/net.js';
import { networkMatcher, type Cidr } from '../util/cidr.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo, Socket } from 'node:net';
import { createHash, timingSafeEqual } from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';
import { HandoffError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { rawErrorResponse, rejectUpgrade, sendError, toPublicError } from './errors.js';
import { CORS_HEADERS, allowedOriginCors, describeOrigin, isCorsPath, isSimpleBodyType, preflightHeaders, verdict, type GuardPolicy } from './guard.js';
import { CredentialThrottle, DEFAULT_THROTTLE_LIMITS } from '../util/throttle.js';
import { ConnectionCaps, DEFAULT_CONNECTION_CAPS, type ConnectionCapsOptions, type ConnectionSlot } from './caps.js';

/** Wrong API keys through one trusted proxy before it is locked out as a whole. */
const PROXY_FREE_KEY_FAILURES = 50;

/** How long a refused or dropped connection has to read its answer and close before it is cut. */
const SHED_GRACE_MS = 2000;
/** At most this many such connections wait out the grace at once; past it they are cut at once. */
const MAX_SHEDDING = 256;

export interface RequestContext {
  req: IncomingMessage;
  url: URL;
  params: Record<string, string>;
  /** The client: the connection's address, or the one a trusted proxy names (--trusted-proxies). */
  sourceIp: string;
  /** The connection's own address (a trusted proxy's, when it differs from sourceIp). */
  peerIp: string;
  /** host[:port] for URLs we hand back: `--public-url`'s, else the one the client used. */
  publicHost: string;
  /** `http://HOST` or `https://HOST` (an https `--public-url`) for links we hand back. */
  publicOrigin: string;
  /** The same for WebSocket URLs: `ws://HOST` or `wss://HOST`. */
  wsOrigin: string;
}

export type HttpHandler = (ctx: RequestContext, res: ServerResponse) => Promise<void> | void;
/** The raw upgrade, and `accept` to finish it as a `ws` WebSocket. */
export interface Upgrade {
  socket: Duplex;
  head: Buffer;
  accept(): Promise<WebSocket>;
}
/** Throwing (or rejecting) before the upgrade completes answers with the error's status. */
export type UpgradeHandler = (ctx: RequestContext, upgrade: Upgrade) => Promise<void> | void;

interface Route<H> {
  method: string;
  pattern: RegExp;
  keys: string[];
  handler: H;
  open: boolean;
}

const MAX_URL_LENGTH = 8192;
/** Request line plus headers; beyond it Node answers 431 itself. */
export const MAX_HEADER_BYTES = 16 * 1024;
/** Headers must be complete this long after the connection (or the previous request) began. */
export const HEADERS_TIMEOUT_MS = 10_000;
/** The whole request, body included, must arrive within this; answers may take longer (long polls, downloads). */
export const REQUEST_TIMEOUT_MS = 30_000;
const STATE_CHANGING = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);
/** On every HTTP answer: the dashboard, the live page, REST and errors. */
const NO_FRAMING_HEADERS: readonly (readonly [string, string])[] = [
  ['content-security-policy', "frame-ancestors 'none'"],
  ['x-frame-options', 'DENY'],
];

export interface HttpServerOptions {
  apiKey: string | null;
  logger: Logger;
  onAuthFailed: (ctx: RequestContext) => void;
  /** `--allowed-origins` (API.md 2). */
  allowedOrigins?: readonly string[];
  /** `--public-url`: links use it; its origin and host pass the checks. */
  publicUrl?: URL | null;
  /** `--trusted-proxies`: the client is read from their X-Forwarded-For (util/net.ts). */
  trustedProxies?: Cidr[];
  caps?: ConnectionCapsOptions;
}

/** `/session/:id/wait` -> a regex with named segments; segments never match `/`. */
function compile(path: string): { pattern: RegExp; keys: string[] } {
  const keys: string[] = [];
  const src = path.replace(/:(\w+)(\*)?/g, (_, k: string, star?: string) => {
    keys.push(k);
    return star ? '(.+)' : '([^/]+)';
  });
  return { pattern: new RegExp(`^${src}$`), keys };
}

/**
 * node:http plus a small router for requests and WebSocket upgrades. In front of every route:
 * connection caps and timeouts, the Host and Origin checks (guard.ts), then the API key
 * check for routes not marked open.
 */
export class HttpServer {
  private readonly server: Server;
  // Live view sockets only (CDP goes through the byte relay): their messages are small, and
  // ws buffers a whole message before anyone can look at it, so cap it here.
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 2 * 1024 * 1024 + 64 });
  private readonly routes: Route<HttpHandler>[] = [];
  private readonly upgrades: Route<UpgradeHandler>[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly apiKeyDigest: Buffer | null;
  private readonly keyThrottle = new CredentialThrottle();
  /**
   * Wrong keys that came through a trusted proxy also count against the proxy, with room for
   * many clients: whoever can reach the daemon from a trusted address (any local user, when
   * loopback is trusted) could otherwise name a new client in X-Forwarded-For for every guess.
   */
  private readonly proxyKeyThrottle = new CredentialThrottle({ freeFailures: PROXY_FREE_KEY_FAILURES, perSourceInFlight: DEFAULT_THROTTLE_LIMITS.totalInFlight });
  private refusing = false;
  private readonly policy: GuardPolicy;
  private readonly trustedProxy: (ip: string) => boolean;
  private readonly caps: ConnectionCaps;
  /** Connections over a cap: answered 429 at once; whatever they send is ignored. */
  private readonly overCap = new WeakSet<Socket>();
  /** Shed connections whose first request has been parsed (answered by shed()). */
  private readonly shedRequests = new WeakSet<Socket>();
  /** Refused or dropped connections waiting out SHED_GRACE_MS. */
  private shedding = 0;
  /** Each admitted connection's slot: told when its request headers are complete. */
  private readonly slots = new WeakMap<Socket, ConnectionSlot>();

  constructor(private readonly opts: HttpServerOptions) {
    this.apiKeyDigest = opts.apiKey ? digest(opts.apiKey) : null;
    this.policy = { bindHost: '127.0.0.1', allowedOrigins: opts.allowedOrigins ?? [], publicUrl: opts.publicUrl ?? null };
    this.caps = new ConnectionCaps(opts.caps ?? DEFAULT_CONNECTION_CAPS);
    this.trustedProxy = networkMatcher(opts.trustedProxies ?? []);
    this.server = createServer(
      {
        maxHeaderSize: MAX_HEADER_BYTES,
        headersTimeout: HEADERS_TIMEOUT_MS,
        // requestTimeout ends when the request is fully received, so long polls and downloads
        // are not cut; it does cut a body trickled a byte at a time (slowloris). Upgrades are
        // covered too: Node hands the socket over only once the headers are complete.
        requestTimeout: REQUEST_TIMEOUT_MS,
        // How often those two are enforced (default 30 s would let a slow client stay 40 s).
        connectionsCheckingInterval: 1000,
      },
      (req, res) => void this.handle(req, res),
    );
    this.server.on('upgrade', (req, socket, head) => void this.handleUpgrade(req, socket, head));
    this.server.on('connection', (s: Socket) => this.admit(s));
  }

  /** Counts the connection against the caps, or answers 429 and closes it. */
  private admit(s: Socket): void {
    const slot = this.caps.admit(normalizeIp(s.remoteAddress), (why) => this.shed(s, why === 'half-open'));
    this.sockets.add(s);
    s.once('close', () => {
      this.sockets.delete(s);
      slot?.release();
    });
    if (!slot) return this.shed(s, true);
    this.slots.set(s, slot);
  }

  /**
   * Closes a connection the caps refused or dropped without a TCP reset: one whose request may
   * be on its way is answered 429 `too_many_requests` with the JSON body (a WebSocket upgrade
   * too), a keep-alive one between requests just gets a FIN. Whatever it sends meanwhile is read
   * and ignored (closing with unread bytes would reset it and could discard the answer); one
   * that does not close within the grace is cut.
   */
  private shed(s: Socket, answer: boolean): void {
    if (this.overCap.has(s)) return;
    this.overCap.add(s);
    s.on('error', () => {});
    if (this.shedding >= MAX_SHEDDING || !s.writable) return void s.destroy();
    this.shedding++;
    if (answer) s.end(rawErrorResponse(TOO_MANY_CONNECTIONS));
    else s.end();
    const cut = setTimeout(() => s.destroy(), SHED_GRACE_MS).unref();
    s.once('close', () => {
      clearTimeout(cut);
      this.shedding--;
    });
  }

  route(method: string, path: string, handler: HttpHandler, open = false): this {
    this.routes.push({ method, ...compile(path), handler, open });
    return this;
  }

  upgrade(path: string, handler: UpgradeHandler, open = false): this {
    this.upgrades.push({ method: 'GET', ...compile(path), handler, open });
    return this;
  }

  async listen(port: number, host: string): Promise<AddressInfo> {
    this.policy.bindHost = host;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    return this.server.address() as AddressInfo;
  }

  /** New requests get 503 from now on (daemon stopping). */
  refuseNewWork(): void {
    this.refusing = true;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const ws of this.wss.clients) ws.terminate();
      for (const s of this.sockets) s.destroy();
    });
  }

  private context(req: IncomingMessage, params: Record<string, string>, url: URL): RequestContext {
    const pub = this.policy.publicUrl;
    const host = pub ? pub.host : publicHost(req);
    const secure = pub?.protocol === 'https:';
    return {
      req,
      url,
      params,
      sourceIp: forwardedClient(req.socket.remoteAddress, req.headers['x-forwarded-for'], this.trustedProxy),
      peerIp: normalizeIp(req.socket.remoteAddress),
      publicHost: host,
      publicOrigin: `${secure ? 'https' : 'http'}://${host}`,
      wsOrigin: `${secure ? 'wss' : 'ws'}://${host}`,
    };
  }

  /** The Host and Origin checks (API.md 2), before any route is looked at. */
  private guard(req: IncomingMessage, url: URL, upgrade: boolean): void {
    const origin = req.headers.origin;
    const v = verdict(this.policy, {
      method: req.method ?? 'GET',
      path: url.pathname,
      upgrade,
      origin,
      host: req.headers.host,
      localAddress: req.socket.localAddress,
      fetchSite: header(req.headers['sec-fetch-site']),
      fetchMode: header(req.headers['sec-fetch-mode']),
    });
    if (v === 'forbidden_host') {
      throw new HandoffError('forbidden_host', 'this host name is not one of the daemon\'s (DNS rebinding?); use localhost or 127.0.0.1, or set --public-url');
    }
    if (v === 'forbidden_origin') {
      throw new HandoffError('forbidden_origin', `web pages from ${describeOrigin(origin ?? 'another site')} may not use this daemon; allow it with --allowed-origins`);
    }
  }

  /** Parses the request target; a traversal attempt or an oversize URL is a bad request. */
  private parse(req: IncomingMessage): URL {
    const raw = req.url ?? '/';
    if (raw.length > MAX_URL_LENGTH) throw new HandoffError('bad_request', 'request URL is too long');
    const q = raw.indexOf('?');
    const path = q === -1 ? raw : raw.slice(0, q);
    // Without `%` the path decodes to itself, and without `..` no segment is `..`: the common
    // case (every poll) skips the decoding and the split.
    if (path.includes('%') || path.includes('..') || path.includes('\0')) {
      let decoded: string;
      try {
        decoded = decodeURIComponent(path);
      } catch {
        throw new HandoffError('bad_request', 'request path is not valid percent-encoding');
      }
      if (decoded.split(/[/\\]/).some((seg) => seg === '..') || decoded.includes('\0')) {
        throw new HandoffError('bad_request', 'path traversal is not allowed');
      }
    }
    return new URL(raw, 'http://localhost');
  }

  private find<H>(list: Route<H>[], method: string, path: string): { route?: Route<H>; params: Record<string, string>; pathKnown: boolean } {
    let pathKnown = false;
    for (const r of list) {
      const m = r.pattern.exec(path);
      if (!m) continue;
      pathKnown = true;
      if (r.method !== method && !(method === 'HEAD' && r.method === 'GET')) continue;
      const params: Record<string, string> = {};
      r.keys.forEach((k, i) => {
        params[k] = decodeURIComponent(m[i + 1]!);
      });
      return { route: r, params, pathKnown };
    }
    return { params: {}, pathKnown };
  }

  /**
   * The API key check (API.md 2). A request that presents a wrong key is a guess: guesses go
   * through the per-source throttle (a locked-out source is refused before the key is looked
   * at). A request with no key at all guesses nothing (a dashboard before its login) and is
   * not counted.
   */
  private checkApiKey(ctx: RequestContext): void {
    if (!this.apiKeyDigest) return;
    const header = ctx.req.headers.authorization;
    const given = ctx.url.searchParams.get('api_key') ?? (header?.startsWith('Bearer ') ? header.slice(7) : null);
    if (given !== null) {
      const a = this.keyThrottle.begin(ctx.sourceIp);
      if (!a.ok) throw new HandoffError('too_many_requests', a.message, { retry_after_s: Math.ceil(a.retryAfterMs / 1000) });
      const p = ctx.peerIp !== ctx.sourceIp ? this.proxyKeyThrottle.begin(ctx.peerIp) : null;
      if (p && !p.ok) {
        a.ticket.release();
        throw new HandoffError('too_many_requests', p.message, { retry_after_s: Math.ceil(p.retryAfterMs / 1000) });
      }
      // Digests have equal length, so the comparison time says nothing about the key.
      if (timingSafeEqual(digest(given), this.apiKeyDigest)) {
        a.ticket.succeeded();
        // One client's right key does not clear other clients' guesses at the proxy.
        p?.ticket.release();
        return;
      }
      a.ticket.failed();
      p?.ticket.failed();
    }
    this.opts.onAuthFailed(ctx);
    throw new HandoffError('unauthorized', 'missing or wrong API key');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.overCap.has(req.socket)) {
      // Its one request was answered by shed(); more pipelined ones would each hold a request
      // and a response object until the grace ends (security review): cut it instead.
      if (this.shedRequests.has(req.socket)) req.socket.destroy();
      else this.shedRequests.add(req.socket);
      return;
    }
    const slot = this.slots.get(req.socket);
    slot?.requestSeen();
    res.once('finish', () => slot?.responded());
    let ctx: RequestContext | undefined;
    try {
      // No page of ours is meant to be framed (the kit mounts without iframes): no clickjacking.
      for (const [k, v] of NO_FRAMING_HEADERS) res.setHeader(k, v);
      const cors = isCorsPath((req.url ?? '/').split('?')[0]!);
      if (cors) for (const [k, v] of Object.entries(CORS_HEADERS)) res.setHeader(k, v);
      if (this.refusing) throw new HandoffError('shutting_down', 'the daemon is shutting down');
      const url = this.parse(req);
      this.guard(req, url, false);
      if (cors && req.method === 'OPTIONS') {
        res.writeHead(204, preflightHeaders(req.headers));
        res.end();
        return;
      }
      const fromAllowed = cors ? null : allowedOriginCors(this.policy, req.headers.origin, req.method === 'OPTIONS');
      if (fromAllowed) for (const [k, v] of Object.entries(fromAllowed)) res.setHeader(k, v);
      if (fromAllowed && req.method === 'OPTIONS') return void res.writeHead(204).end();
      // A page may send these cross-site without asking first (a form post): no route takes them.
      const hasBody = (req.headers['content-length'] ?? '0') !== '0' || req.headers['transfer-encoding'] !== undefined;
      if (STATE_CHANGING.has(req.method ?? '') && hasBody && isSimpleBodyType(req.headers['content-type'])) {
        throw new HandoffError('bad_request', 'request bodies must be application/json');
      }
      const { route, params, pathKnown } = this.find(this.routes, req.method ?? 'GET', url.pathname);
      ctx = this.context(req, params, url);
      if (!route) {
        throw pathKnown
          ? new HandoffError('bad_request', `method ${req.method} is not allowed here`)
          : new HandoffError('not_found', `no such path: ${url.pathname.slice(0, 200)}`);
      }
      if (!route.open) this.checkApiKey(ctx);
      await route.handler(ctx, res);
    } catch (e) {
      sendError(res, toPublicError(e, this.opts.logger));
    }
  }

  private async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    if (this.overCap.has(req.socket)) return;
    this.slots.get(req.socket)?.requestSeen();
    try {
      if (this.refusing) throw new HandoffError('shutting_down', 'the daemon is shutting down');
      const url = this.parse(req);
      this.guard(req, url, true);
      const { route, params } = this.find(this.upgrades, 'GET', url.pathname);
      const ctx = this.context(req, params, url);
      if (!route) throw new HandoffError('not_found', `no WebSocket endpoint at ${url.pathname.slice(0, 200)}`);
      if (!route.open) this.checkApiKey(ctx);
      const accept = () =>
        new Promise<WebSocket>((resolve, reject) => {
          if (socket.destroyed) return reject(new HandoffError('bad_request', 'client went away'));
          this.wss.handleUpgrade(req, socket, head, resolve);
        });
      await route.handler(ctx, { socket, head, accept });
    } catch (e) {
      rejectUpgrade(socket, toPublicError(e, this.opts.logger));
    }
  }
}

const TOO_MANY_CONNECTIONS = new HandoffError('too_many_requests', 'too many open connections; close some and retry');

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}


function publicHost(req: IncomingMessage): string {
  const h = req.headers.host;
  // Only a plain host[:port] is echoed into URLs we return.
  if (h && /^[A-Za-z0-9.\-]+(:\d+)?$|^\[[0-9a-fA-F:.]+\](:\d+)?$/.test(h)) return h;
  const a = req.socket.localAddress ?? '127.0.0.1';
  return `${hostForUrl(a)}:${req.socket.localPort}`;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  sendJsonText(res, status, JSON.stringify(body));
}

/** `text` is JSON already (a cached serialization). */
export function sendJsonText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

const MAX_BODY = 64 * 1024;

/** The request's JSON object body ({} when there is none); a body of another type is a 400. */
export async function readJson(ctx: RequestContext): Promise<Record<string, unknown>> {
  const type = (ctx.req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const hasBody = (ctx.req.headers['content-length'] ?? '0') !== '0' || ctx.req.headers['transfer-encoding'] !== undefined;
  if (hasBody && type !== 'application/json') throw new HandoffError('bad_request', 'request bodies must be application/json');
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HandoffError('bad_request', 'request body is too large');
    chunks.push(chunk as Buffer);
  }
  if (!size) return {};
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString()) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new HandoffError('bad_request', 'request body must be a JSON object');
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
