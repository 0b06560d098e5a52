import type { ServerResponse } from 'node:http';
import { HandoffError } from '../../util/errors.js';
import { parseAutoClose, parseSessionParams, validSessionId, int } from '../../sessions/params.js';
import { runAgent, upgradeHeaders } from '../../sessions/agent.js';
import type { Session } from '../../sessions/session.js';
import { sendJson, type HttpServer, type RequestContext, type Upgrade } from '../server.js';
import { sessionById, type Services } from './context.js';

/** API.md 3: Scrapfly-style and Cloudflare-style connects, Chrome-compatible discovery. */
export function cdpRoutes(http: HttpServer, s: Services): void {
  const { registry } = s;

  // 3.1: ws://HOST/?session=ID&auto_close=false&... creates or resumes.
  http.upgrade('/', async (ctx, up) => {
    const q = ctx.url.searchParams;
    const id = q.get('session') ? validSessionId(q.get('session')!) : undefined;
    const { session, slot } = registry.attachAgent(
      id,
      () => parseSessionParams(q),
      () => parseAutoClose(q, true),
    );
    upgradeHeaders.set(ctx.req, [`X-Handoff-Session: ${session.id}`]); // the balancer's routing key
    await runAgent(session, slot, agentUpgrade(ctx, up, s, session));
  });

  // 3.2: attach to an existing session; auto_close keeps the session's own unless given.
  http.upgrade('/devtools/browser/:id', async (ctx, up) => {
    const id = sessionById(s, ctx.params.id!, { live: true }).id;
    const { session, slot } = registry.attachAgent(id, () => parseSessionParams(ctx.url.searchParams), (existing) =>
      parseAutoClose(ctx.url.searchParams, existing?.autoClose ?? false),
    );
    await runAgent(session, slot, agentUpgrade(ctx, up, s, session));
  });

  // Page-level sockets go to the session that owns the target.
  http.upgrade('/devtools/page/:target', async (ctx, up) => {
    const target = ctx.params.target!;
    const session = registry.list().find((x) => x.findTarget(target));
    if (!session) throw new HandoffError('not_found', `no page ${target.slice(0, 64)} in any live session`);
    await attachExisting(ctx, up, s, session, target);
  });

  // 3.2: POST /devtools/browser creates a session nobody is attached to yet.
  http.route('POST', '/devtools/browser', async (ctx, res) => {
    const q = ctx.url.searchParams;
    const keepAliveMs = int(q, 'keep_alive', 900_000, 1000, 3_600_000);
    const id = q.get('session') ? validSessionId(q.get('session')!) : crypto.randomUUID();
    const session = registry.create(id, parseSessionParams(q, { timeoutS: Math.ceil(keepAliveMs / 1000) }), false);
    await session.ready;
    const body: Record<string, unknown> = {
      sessionId: session.id,
      webSocketDebuggerUrl: `${ctx.wsOrigin}/devtools/browser/${session.id}${keyQuery(ctx)}`,
    };
    if (q.get('targets') === 'true') body.targets = targets(session, ctx, liveViewFrontend(session, ctx, s));
    res.setHeader('X-Handoff-Session', session.id); // the balancer's routing key
    sendJson(res, 200, body);
  });

  http.route('GET', '/devtools/browser/:id/json/list', (ctx, res) => {
    const session = sessionById(s, ctx.params.id!, { live: true });
    sendJson(res, 200, targets(session, ctx, liveViewFrontend(session, ctx, s)));
  });

  http.route('DELETE', '/devtools/browser/:id', async (ctx, res) => {
    const session = sessionById(s, ctx.params.id!, { live: true });
    await session.stop('session deleted');
    sendJson(res, 200, { stopped: true, sessionId: session.id });
  });

  // 3.3: Chrome's discovery shape; connecting to webSocketDebuggerUrl creates a session.
  const version = async (ctx: RequestContext, res: ServerResponse) => {
    // The request's own query (session=, auto_close=, api_key=) carries over to the socket.
    sendJson(res, 200, { ...(await chromeVersion(s)), webSocketDebuggerUrl: `${ctx.wsOrigin}/${ctx.url.search}` });
  };
  http.route('GET', '/json/version', version);
  http.route('GET', '/json/version/', version);

  const list = (ctx: RequestContext, res: ServerResponse) => {
    const id = ctx.url.searchParams.get('session');
    if (!id) throw new HandoffError('bad_request', 'give ?session=ID: each session is its own browser');
    const session = sessionById(s, id, { live: true });
    sendJson(res, 200, targets(session, ctx, liveViewFrontend(session, ctx, s)));
  };
  for (const p of ['/json', '/json/', '/json/list', '/json/list/']) http.route('GET', p, list);
}

/**
 * API.md 3.1 `debug_port`: the routes of a session's own loopback port, Chrome's discovery for
 * that one session (Selenium's debuggerAddress, chrome://inspect). The port is the credential
 * (see debug-port.ts); lease, Origin/Host guard and audit are the main port's.
 */
export function debugPortRoutes(http: HttpServer, s: Services, session: Session): void {
  const live = () => {
    if (!session.live) throw new HandoffError('session_not_found', 'the session has ended');
    return session;
  };
  const version = async (ctx: RequestContext, res: ServerResponse) => {
    live();
    sendJson(res, 200, { ...(await chromeVersion(s, session)), webSocketDebuggerUrl: `${ctx.wsOrigin}/devtools/browser/${session.id}` });
  };
  http.route('GET', '/json/version', version);
  http.route('GET', '/json/version/', version);
  const list = (ctx: RequestContext, res: ServerResponse) => sendJson(res, 200, targets(live(), ctx, chromeFrontend()));
  for (const p of ['/json', '/json/', '/json/list', '/json/list/']) http.route('GET', p, list);

  // Chrome's /json/new?URL opens a tab. Chrome takes PUT only; GET is kept for older clients,
  // but not from a web page (a cross-site <img> could open tabs at will).
  const open = async (ctx: RequestContext, res: ServerResponse) => {
    const fetchSite = ctx.req.headers['sec-fetch-site'];
    if (ctx.req.method !== 'PUT' && (ctx.req.headers.origin !== undefined || (fetchSite !== undefined && fetchSite !== 'none'))) {
      throw new HandoffError('forbidden_origin', 'web pages may not open tabs; use PUT /json/new');
    }
    let url = 'about:blank';
    try {
      url = decodeURIComponent(ctx.url.search.slice(1)) || url;
    } catch {
      url = '';
    }
    if (url.length > 8192 || !URL.canParse(url)) throw new HandoffError('bad_request', 'give the URL to open: /json/new?URL');
    const targetId = await live().openTab(url);
    const entry = { targetId, type: 'page', title: url, url };
    sendJson(res, 200, target(entry, ctx, chromeFrontend()));
  };
  http.route('PUT', '/json/new', open);
  http.route('GET', '/json/new', open);

  const browser = async (ctx: RequestContext, up: Upgrade) => {
    if (ctx.params.id !== undefined && ctx.params.id !== session.id) throw new HandoffError('not_found', 'this port serves one session only');
    const q = ctx.url.searchParams;
    // Applied only once the attach succeeded: a refused client changes nothing (security review).
    const autoClose = q.has('auto_close') ? parseAutoClose(q, session.autoClose) : undefined;
    await attachExisting(ctx, up, s, live(), undefined, autoClose);
  };
  http.upgrade('/devtools/browser', browser);
  http.upgrade('/devtools/browser/:id', browser);
  http.upgrade('/devtools/page/:target', async (ctx, up) => {
    const id = ctx.params.target!;
    if (!live().findTarget(id)) throw new HandoffError('not_found', `no page ${id.slice(0, 64)} in this session`);
    await attachExisting(ctx, up, s, session, id);
  });
}

/** Attaches an agent to a session that must already exist (API.md 3.4: 409 when attached). */
async function attachExisting(ctx: RequestContext, up: Upgrade, s: Services, session: Session, targetId?: string, autoClose?: boolean): Promise<void> {
  const slot = s.registry.attachAgentTo(session);
  if (autoClose !== undefined) session.autoClose = autoClose;
  // On a debug port (the only caller on another port), the attach row names it, and the links
  // the agent mints point at the main port (/live is not served on a debug port).
  const port = ctx.req.socket.localPort;
  const onDebugPort = session.debugPort !== null && port === session.debugPort;
  const upgrade = agentUpgrade(ctx, up, s, session, onDebugPort ? s.mainHost : ctx.publicHost);
  await runAgent(session, slot, { ...upgrade, via: onDebugPort ? { debug_port: port } : undefined }, targetId);
}

function agentUpgrade(ctx: RequestContext, up: Upgrade, s: Services, session: Session, linkHost = ctx.publicHost) {
  return {
    req: ctx.req,
    socket: up.socket,
    head: up.head,
    sourceIp: ctx.sourceIp,
    keepaliveMs: s.config.agentKeepaliveMs,
    liveLink: (opts?: { singleUse?: boolean }) => s.liveLinks.issue(session, linkHost, 'control', ctx.sourceIp, opts),
  };
}

function keyQuery(ctx: RequestContext): string {
  const key = ctx.url.searchParams.get('api_key');
  return key ? `?api_key=${encodeURIComponent(key)}` : '';
}

interface TargetEntry {
  targetId: string;
  type: string;
  title: string;
  url: string;
}
type Frontend = (wsUrl: string) => string;

/** The main port's devtoolsFrontendUrl: a live view control link (API.md 3.2). */
function liveViewFrontend(session: Session, ctx: RequestContext, s: Services): Frontend {
  return () => s.liveLinks.issue(session, ctx.publicHost, 'control', ctx.sourceIp).url;
}

/** A debug port's: Chrome's own DevTools on that page (what chrome://inspect opens). */
function chromeFrontend(): Frontend {
  return (wsUrl) => `devtools://devtools/bundled/inspector.html?ws=${wsUrl.replace(/^wss?:\/\//, '')}`;
}

/** Chrome's /json/list entries, pointing at our proxy. */
function targets(session: Session, ctx: RequestContext, frontend: Frontend) {
  return session.targets().map((t) => target(t, ctx, frontend));
}

function target(t: TargetEntry, ctx: RequestContext, frontend: Frontend) {
  const wsUrl = `${ctx.wsOrigin}/devtools/page/${t.targetId}${keyQuery(ctx)}`;
  return { id: t.targetId, type: t.type, title: t.title, url: t.url, webSocketDebuggerUrl: wsUrl, devtoolsFrontendUrl: frontend(wsUrl) };
}

/** Chrome's /json/version fields other than webSocketDebuggerUrl. */
export interface ChromeVersion {
  Browser: string;
  /** Chrome 13x+: how the browser spells file paths (its host's). */
  'File-Path-Style': 'posix';
  'Protocol-Version': string;
  'User-Agent': string;
  'V8-Version': string;
  'WebKit-Version': string;
}

let knownVersion: ChromeVersion | undefined;

/**
 * What Chrome's own /json/version says, from `Browser.getVersion` of a running session's
 * browser (every session runs the same binary, so it is asked once). Before any session ran,
 * the fields are built from `chromium --version` as Chrome builds them (chromedriver needs
 * them all and parses only `Browser` and the `WebKit-Version` shape).
 */
export async function chromeVersion(s: Services, from?: Session): Promise<ChromeVersion> {
  if (knownVersion) return knownVersion;
  const session = from ?? s.registry.list().find((x) => x.state === 'ready');
  if (session) {
    try {
      const v = await session.browserVersion();
      if (!v) throw new Error('no browser');
      // Chrome: "WebKit-Version": "537.36 (@<blink revision>)"; getVersion's revision is "@<hash>".
      const webkit = /AppleWebKit\/([\d.]+)/.exec(v.userAgent)?.[1] ?? '537.36';
      knownVersion = {
        Browser: v.product,
        'File-Path-Style': 'posix',
        'Protocol-Version': v.protocolVersion,
        'User-Agent': v.userAgent,
        'V8-Version': v.jsVersion,
        'WebKit-Version': `${webkit} (${v.revision})`,
      };
      return knownVersion;
    } catch {
      // the browser went away meanwhile: answer from the binary's version
    }
  }
  const chrome = s.browserVersion.replace(/^Chrome\//, '');
  const major = chrome.split('.')[0] ?? '0';
  return {
    Browser: s.browserVersion,
    'File-Path-Style': 'posix',
    'Protocol-Version': '1.3',
    'User-Agent': `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${major}.0.0.0 Safari/537.36`,
    // V8's version follows Chrome's milestone (Chrome 156 ships V8 15.6); its build is unknown here.
    'V8-Version': `${Math.floor(Number(major) / 10)}.${Number(major) % 10}.0.0`,
    'WebKit-Version': '537.36 (@unknown)',
  };
}
