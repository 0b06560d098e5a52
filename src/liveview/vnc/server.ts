import net from 'node:net';
import type { Duplex } from 'node:stream';
import { silentLogger, type Logger } from '../../util/logger.js';
import { CredentialThrottle } from '../../util/throttle.js';
import { VncConnection } from './connection.js';
import type { VncDirectory } from './types.js';

/** Connections refused on arrival still waiting for the client's version; past this they are cut at once. */
const MAX_REFUSED_PENDING = 256;

export interface VncServerOptions {
  directory: VncDirectory;
  logger?: Logger;
  /** Per-source password guessing limits; the defaults of util/throttle.ts otherwise. */
  throttle?: CredentialThrottle;
}

/**
 * The RFB listener for every session (API.md 6): the VNC password picks the session. Sockets
 * from elsewhere (a WebSocket bridged for noVNC) enter through handleSocket().
 */
export class VncServer {
  private readonly log: Logger;
  /** One for the TCP port and the live links' WebSockets: a guesser gains nothing by switching. */
  readonly throttle: CredentialThrottle;
  private readonly connections = new Set<VncConnection>();
  private refusedPending = 0;
  private server: net.Server | null = null;
  private closing: Promise<void> | null = null;

  constructor(private readonly opts: VncServerOptions) {
    this.log = (opts.logger ?? silentLogger).child({ component: 'vnc' });
    this.throttle = opts.throttle ?? new CredentialThrottle();
  }

  /** Resolves with the bound port (useful with port 0). */
  async listen(port: number, host: string): Promise<number> {
    if (this.server || this.closing) throw new Error('VncServer.listen called twice or after close');
    const server = net.createServer((socket) => this.handleSocket(socket, socket.remoteAddress ?? 'unknown'));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error('vnc listener error', { error: err.message }));
    const bound = (server.address() as net.AddressInfo).port;
    this.log.info('vnc listening', { host, port: bound });
    return bound;
  }

  /**
   * Speaks RFB on any byte stream; `sourceIp` is used for the throttle, audit and network
   * checks. Every connection takes its place in the throttle before it says anything. `onlySessionId` (a live view link's session) limits which password is accepted.
   */
  handleSocket(socket: Duplex, sourceIp: string, onlySessionId?: string): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const all = this.opts.directory;
    const directory: VncDirectory = onlySessionId
      ? { vncSessions: () => all.vncSessions().filter((s) => s.session.sessionId === onlySessionId), authFailed: (ip, detail) => all.authFailed(ip, detail) }
      : all;
    const admission = this.throttle.begin(sourceIp);
    if (!admission.ok && this.refusedPending >= MAX_REFUSED_PENDING) {
      socket.destroy();
      return;
    }
    const conn = new VncConnection({
      socket,
      sourceIp,
      directory,
      admission,
      logger: this.log,
      onClose: (c) => {
        this.connections.delete(c);
        if (c.refused) this.refusedPending--;
      },
    });
    if (conn.refused) this.refusedPending++;
    this.connections.add(conn);
  }

  /** Authenticated VNC viewers of `sessionId`. */
  viewerCount(sessionId: string): number {
    let n = 0;
    for (const c of this.connections) if (c.sessionId === sessionId) n++;
    return n;
  }

  /** Idempotent: stops listening and ends every connection. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const server = this.server;
      const stopped = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
      await Promise.all([...this.connections].map((c) => c.close()));
      await stopped;
    })();
    return this.closing;
  }
}
