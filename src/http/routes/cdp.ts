import type { ServerResponse } from 'node:http';
import { HandoffError } from '../../util/errors.js';
import { parseAutoClose, parseSessionParams, validSessionId, int } from '../../sessions/params.js';
import { runAgent } from '../../sessions/agent.js';
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
    const { session } = registry.attachAgent(
      id,
      () => parseSessionParams(q),
      () => parseAutoClose(q, true),
    );
    await runAgent(session, agentUpgrade(ctx, up, s, session));
  });

  // 3.2: attach to an existing session; auto_close keeps the session's own unless given.
  http.upgrade('/devtools/browser/:id', async (ctx, up) => {
    const id = sessionById(s, ctx.params.id!, { live: true }).id;
    const { session } = registry.attachAgent(id, () => parseSessionParams(ctx.url.searchParams), (existing) =>
      parseAutoClose(ctx.url.searchParams, existing?.autoClose ?? false),
    );
    await runAgent(session, agentUpgrade(ctx, up, s, session));
  });

  // Page-level sockets go to the session that owns the target.
  http.upgrade('/devtools/page/:target', async (ctx, up) => {
    const target = ctx.params.target!;
    const session = registry.list().find((x) => x.live && x.control?.hasTarget(target));
    if (!session) throw new HandoffError('not_found', `no page ${target.slice(0, 64)} in any live session`);
    if (!session.lease.tryAttachAgent()) {
      throw new HandoffError('session_attached', `session ${session.id} is already attached`, { attachment: session.lease.attachment });
    }
    await runAgent(session, agentUpgrade(ctx, up, s, session), target);
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
    if (q.get('targets') === 'true') body.targets = targets(session, ctx, s);
    sendJson(res, 200, body);
  });

  http.route('GET', '/devtools/browser/:id/json/list', (ctx, res) => {
    sendJson(res, 200, targets(sessionById(s, ctx.params.id!, { live: true }), ctx, s));
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
    sendJson(res, 200, targets(sessionById(s, id, { live: true }), ctx, s));
  };
  for (const p of ['/json', '/json/', '/json/list', '/json/list/']) http.route('GET', p, list);
}

function agentUpgrade(ctx: RequestContext, up: Upgrade, s: Services, session: Session) {
  return {
    req: ctx.req,
    socket: up.socket,
    head: up.head,
    sourceIp: ctx.sourceIp,
    keepaliveMs: s.config.agentKeepaliveMs,
    liveLink: (opts?: { singleUse?: boolean }) => s.liveLinks.issue(session, ctx.publicHost, 'control', ctx.sourceIp, opts),
  };
}

function keyQuery(ctx: RequestContext): string {
  const key = ctx.url.searchParams.get('api_key');
  return key ? `?api_key=${encodeURIComponent(key)}` : '';
}

/** Chrome's /json/list entries, pointing at our proxy; devtoolsFrontendUrl is a live view link. */
function targets(session: Session, ctx: RequestContext, s: Services) {
  const pages = session.control?.pages() ?? [];
  return pages.map((t) => ({
    id: t.targetId,
    type: t.type,
    title: t.title,
    url: t.url,
    webSocketDebuggerUrl: `${ctx.wsOrigin}/devtools/page/${t.targetId}${keyQuery(ctx)}`,
    devtoolsFrontendUrl: s.liveLinks.issue(session, ctx.publicHost, 'control', ctx.sourceIp).url,
  }));
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
  if (from) await from.ready.catch(() => {});
  if (session?.live && session.chromium) {
    try {
      const v = await session.chromium.cdp.send('Browser.getVersion');
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
