import type { Session } from '../sessions/session.js';
import type { Logger } from '../util/logger.js';
import { HttpServer } from './server.js';
import { debugPortRoutes } from './routes/cdp.js';
import type { Services } from './routes/context.js';

/**
 * API.md 3.1 `debug_port`: a session's own Chrome-compatible endpoint on 127.0.0.1, for
 * clients that take only `host:port` (Selenium's debuggerAddress, chrome://inspect). It is a
 * second HttpServer with the same guard (Host, Origin), connection caps, lease and audit, and
 * the discovery routes bound to that one session; it closes when the session ends.
 *
 * It takes the daemon's API key like the main port (API.md 3.1 "through the same key"): any
 * local user can connect to a loopback port, so without the key the port would hand them the
 * session (security review). chromedriver cannot send a key, so Selenium's debuggerAddress
 * works against a key-less (loopback) daemon only (README).
 */
export class DebugPorts {
  private readonly open = new Map<Session, Promise<number>>();
  private readonly servers = new Set<HttpServer>();

  constructor(
    private readonly services: Services,
    private readonly logger: Logger,
  ) {}

  /** The session's port, opened on first use; the same port on later calls. */
  forSession(session: Session): Promise<number> {
    let port = this.open.get(session);
    if (!port) {
      port = this.listen(session);
      this.open.set(session, port);
      port.catch(() => this.open.delete(session));
    }
    return port;
  }

  private async listen(session: Session): Promise<number> {
    const { config, audit } = this.services;
    const http = new HttpServer({
      apiKey: config.apiKey,
      logger: this.logger,
      onAuthFailed: (ctx) =>
        audit.append({ type: 'auth_failed', source_ip: ctx.sourceIp, transport: 'http', detail: { path: ctx.url.pathname.slice(0, 200), debug_port: ctx.req.socket.localPort } }),
      allowedOrigins: config.allowedOrigins,
      publicUrl: null,
    });
    debugPortRoutes(http, this.services, session);
    this.servers.add(http);
    const { port } = await http.listen(0, '127.0.0.1');
    const close = () => {
      session.setDebugPort(null);
      this.open.delete(session);
      this.servers.delete(http);
      void http.close();
    };
    if (!session.live) {
      close();
      return port;
    }
    session.once('ended', close);
    session.setDebugPort(port);
    return port;
  }

  /** Daemon stop (after the sessions, which close theirs): anything left closes. */
  async close(): Promise<void> {
    await Promise.all([...this.servers].map((h) => h.close()));
    this.servers.clear();
  }
}
