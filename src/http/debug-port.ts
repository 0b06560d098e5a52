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
 * No API key on it: chromedriver cannot send one. Like Chrome's own --remote-debugging-port,
 * the port is the capability: it listens on loopback only, is opened only by a request that
 * passed the main port's key check (or a key-less loopback daemon), and is reported only to
 * holders of the key (`Session.debug_port`).
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
    const { config } = this.services;
    const http = new HttpServer({
      apiKey: null,
      logger: this.logger,
      onAuthFailed: () => {},
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
