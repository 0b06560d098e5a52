import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createWebSocketStream, type WebSocket } from 'ws';
import { HandoffError } from '../../util/errors.js';
import { sendJson, type HttpServer, type RequestContext } from '../server.js';
import { hostOnly, listDownloads, sendFile, checkDownloadName, completeHandoff } from './sessions.js';
import { sessionById, type Services } from './context.js';
import { bool } from '../../sessions/params.js';
import { ASSETS_DIR } from './assets.js';
import { keepAlive } from '../../util/ws-keepalive.js';

/**
 * API.md 5: the live view. The token in the path is the credential (signed, see
 * sessions/live-links.ts), so these routes are open; hitl_allowed_networks still applies.
 */
export function liveRoutes(http: HttpServer, s: Services): void {
  /** The session a live path names, after the token and network checks; the link is not used. */
  const check = (ctx: RequestContext, transport: string) => {
    const link = s.liveLinks.check(ctx.params.token!);
    link.session.checkNetwork(ctx.sourceIp, transport);
    return link;
  };
  /**
   * A viewer socket: the same checks, then the link is used (a single-use one for good); it
   * counts as opened once the socket is accepted (`connected`), never on a page load or /info.
   */
  const claim = (ctx: RequestContext, transport: string, checked = false) => {
    if (!checked) check(ctx, transport);
    // No attach without its audit row: refused (503) before a single-use link is spent.
    s.registry.requireAudit();
    return s.liveLinks.claim(ctx.params.token!);
  };
  /**
   * Every live viewer socket, once accepted: the keepalive of agent sockets (--agent-keepalive),
   * so a vanished viewer frees its place and ends the handoff its link started (L4); then the
   * link counts it (at most MAX_SOCKETS_PER_LINK per link, M4). False: not to be served.
   */
  const accepted = (ws: WebSocket, connected: (ws: WebSocket, json?: boolean) => boolean, json = true) => {
    keepAlive(ws, s.config.agentKeepaliveMs);
    return connected(ws, json);
  };

  // The viewer page. Its status follows the link (410 expired or used, 404 ended or not valid)
  // while the page itself always renders, so a person sees what happened. Only a check: a
  // page load, HEAD or a chat app's preview does not open the link.
  http.route(
    'GET',
    '/live/:token',
    async (ctx, res) => {
      let status = 200;
      try {
        check(ctx, 'screencast');
      } catch (e) {
        if (!(e instanceof HandoffError)) throw e;
        if (e.code === 'network_not_allowed') throw e;
        status = e.code === 'link_expired' ? 410 : 404;
      }
      const html = await readFile(join(ASSETS_DIR, 'live.html'));
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(html);
    },
    true,
  );

  http.route(
    'GET',
    '/live/:token/info',
    (ctx, res) => {
      const { session, kind } = check(ctx, 'screencast');
      const st = session.viewerState();
      const agentHolds = session.agentHoldsControl;
      sendJson(res, 200, {
        sessionId: session.id,
        width: session.params.width,
        height: session.params.height,
        state: session.state,
        transports: session.info(hostOnly(ctx.publicHost)).transports,
        attachment: st.attachment,
        handoff: st.handoff,
        downloads: st.downloads,
        // A control link opened now would start a handoff; any other viewer watches.
        viewOnly: agentHolds && kind !== 'control',
        // Only control links may answer a handoff (Done / Can't do it).
        link: kind,
      });
    },
    true,
  );

  http.route(
    'GET',
    '/live/:token/downloads',
    async (ctx, res) => {
      const { session } = check(ctx, 'download');
      sendJson(res, 200, { files: await listDownloads(session.downloadDir) });
    },
    true,
  );

  http.route(
    'GET',
    '/live/:token/downloads/:name',
    async (ctx, res) => {
      const { session } = check(ctx, 'download');
      const name = checkDownloadName(ctx.params.name!);
      await sendFile(res, join(session.downloadDir, name), name);
    },
    true,
  );

  // The viewer's Done / Can't do it buttons for transports without a message channel of ours.
  // Only a control link may end a handoff (API.md 3.4, 7): a view link watches.
  http.route(
    'POST',
    '/live/:token/handoff',
    async (ctx, res) => {
      const { session, kind } = check(ctx, 'screencast');
      if (kind !== 'control') throw new HandoffError('forbidden', 'a view link cannot end the handoff');
      await completeHandoff(session, ctx, res, 'viewer');
    },
    true,
  );

  http.upgrade(
    '/live/:token/screencast',
    async (ctx, up) => {
      const { session, kind, connected } = claim(ctx, 'screencast');
      const ws = await up.accept();
      if (!accepted(ws, connected)) return;
      // Like WebRTC: the hub takes a place (at most 10, the last 2 not for a view link, else
      // close 4029) before the viewer joins.
      session.openScreencast(ws, { sourceIp: ctx.sourceIp, link: kind });
    },
    true,
  );

  // WebRTC signalling; credentials are checked by the hub before the viewer joins.
  http.upgrade(
    '/live/:token/webrtc',
    async (ctx, up) => {
      // 404 without enable_rtc before a single-use link is taken.
      check(ctx, 'webrtc').session.requireWebRtc();
      const { session, kind, connected } = claim(ctx, 'webrtc', true);
      const ws = await up.accept();
      if (!accepted(ws, connected)) return;
      session.openWebRtc(ws, { sourceIp: ctx.sourceIp, link: kind });
    },
    true,
  );

  // noVNC in the page: the WebSocket's bytes go to the same RFB server as port 5901.
  http.upgrade(
    '/live/:token/vnc',
    async (ctx, up) => {
      const { session } = check(ctx, 'vnc');
      if (!session.params.enableVnc) throw new HandoffError('not_found', 'this session was not started with enable_vnc=true');
      const { connected } = claim(ctx, 'vnc', true);
      const ws = await up.accept();
      if (!accepted(ws, connected, false)) return;
      const stream = createWebSocketStream(ws);
      // The stream only ends its readable side when the socket closes; the RFB connection
      // waits for 'close', so end it whole (else the viewer would stay attached).
      ws.once('close', () => stream.destroy());
      stream.on('error', () => ws.terminate());
      s.vncBridge(stream, ctx.sourceIp, session.id);
    },
    true,
  );

  // A view link for the dashboard's Connect (kind=view) or a control link (the default);
  // single_use=true: it serves one viewer socket only.
  http.route('GET', '/session/:id/live', (ctx, res) => {
    const session = sessionById(s, ctx.params.id!, { live: true });
    const q = ctx.url.searchParams;
    const kind = q.get('kind') ?? 'control';
    if (kind !== 'control' && kind !== 'view') throw new HandoffError('bad_request', 'kind must be control or view');
    const singleUse = bool(q, 'single_use', false);
    sendJson(res, 200, s.liveLinks.issue(session, ctx.publicHost, kind, ctx.sourceIp, { singleUse }));
  });

  // Every link issued so far for the session stops working; its viewers are closed.
  http.route('DELETE', '/session/:id/live', (ctx, res) => {
    const session = sessionById(s, ctx.params.id!, { live: true });
    s.liveLinks.revoke(session, ctx.sourceIp);
    sendJson(res, 200, { revoked: true });
  });
}
