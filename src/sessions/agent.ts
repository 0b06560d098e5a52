import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { CdpRelay } from '../cdp/relay.js';
import { HandoffError } from '../util/errors.js';
import { SESSION_ENDED_CLOSE_CODE, type Session } from './session.js';
import { CdpHandoffDomain } from './handoff-cdp.js';
import type { IssuedLink } from './live-links.js';

// Cheap test for the one command whose effect we must know: the agent quitting the browser.
const BROWSER_CLOSE = Buffer.from('"Browser.close"');

export interface AgentUpgrade {
  req: IncomingMessage;
  socket: Duplex;
  head: Buffer;
  sourceIp: string;
  /** Mints a control link for this session as the agent would reach it (Handoff domain). */
  liveLink: (opts?: { singleUse?: boolean }) => IssuedLink;
}

/**
 * Runs an agent's CDP connection for its whole life. The agent already holds the session's
 * lease; this waits for the browser, relays the socket to it (`targetPath` is a page-level
 * endpoint, else the browser's), and gives the lease back when the agent goes, or if the
 * browser fails or the client leaves before the upgrade completes.
 */
export async function runAgent(session: Session, up: AgentUpgrade, targetPath?: string): Promise<void> {
  let settled = false;
  const giveBack = () => {
    if (settled) return;
    settled = true;
    session.lease.detachAgent();
    if (session.autoClose && session.live) void session.stop('client disconnected');
  };
  up.socket.once('close', giveBack);
  let relay: CdpRelay;
  let handoff: CdpHandoffDomain | undefined;
  let attached = false;
  try {
    await session.ready;
    if (!session.live) throw new HandoffError('session_not_found', 'the session stopped');
    const chromium = session.chromium!;
    const upstream = targetPath ? `ws://${chromium.devtoolsHost}${targetPath}` : chromium.wsEndpoint;
    relay = await CdpRelay.open(up.req, up.socket, up.head, upstream, {
      onClientActivity: () => session.touch(),
      onClientText: (payload) => {
        if (payload.includes(BROWSER_CLOSE)) session.browserCloseRequested();
        return handoff?.handle(payload) ?? false;
      },
      onClose: (who) => onClose(who),
    });
  } catch (e) {
    giveBack();
    throw e;
  }
  up.socket.off('close', giveBack);
  if (settled) return relay.close(1001, 'client went away');
  settled = true;

  attached = true;
  // The Handoff domain lives on the browser connection only (API.md 7).
  if (!targetPath) handoff = new CdpHandoffDomain(session, (m) => relay.sendToClient(m), up.liveLink);
  const since = Date.now();
  session.audit({ type: 'cloud_browser_agent_attach', transport: 'cdp', source_ip: up.sourceIp, actor: 'agent', detail: targetPath ? { target: targetPath } : {} });
  const detachFromSession = session.attach(relay);

  function onClose(who: 'client' | 'browser'): void {
    if (!attached) return; // closed before it was ever attached: giveBack handled it
    handoff?.close();
    detachFromSession();
    session.lease.detachAgent();
    session.audit({ type: 'cloud_browser_agent_detach', transport: 'cdp', source_ip: up.sourceIp, actor: 'agent', detail: { duration_ms: Date.now() - since } });
    if (who === 'client') {
      if (session.autoClose && session.live) void session.stop('client disconnected');
      return;
    }
    // The browser side went first: tell the agent why, once the session knows (a crash is
    // noticed when the process exit arrives, a moment after the socket drops).
    const tell = () => relay.close(SESSION_ENDED_CLOSE_CODE, session.endReason ?? 'browser connection lost');
    if (!session.live) return tell();
    const timer = setTimeout(() => (session.live ? relay.close(1011, 'browser connection lost') : tell()), 2000);
    session.once('ended', () => {
      clearTimeout(timer);
      tell();
    });
  }
}
