import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { AgentSocket, acceptAgentSocket, checkUpgrade } from '../cdp/agent-socket.js';
import type { AgentChannel } from '../cdp/pipe-mux.js';
import { HandoffError } from '../util/errors.js';
import { SESSION_ENDED_CLOSE_CODE, type Session } from './session.js';
import type { AgentSlot } from './attachment.js';
import { CdpHandoffDomain } from './handoff-cdp.js';
import { AgentInputHold } from './input-hold.js';
import type { IssuedLink } from './live-links.js';
export { upgradeHeaders } from '../cdp/agent-socket.js';

export interface AgentUpgrade {
  req: IncomingMessage;
  socket: Duplex;
  head: Buffer;
  sourceIp: string;
  /** --agent-keepalive: a silent agent is detached after this long. */
  keepaliveMs: number;
  /** Mints a control link for this session as the agent would reach it (Handoff domain). */
  liveLink: (opts?: { singleUse?: boolean }) => IssuedLink;
  /** Where the agent came in, when not the main port (`{debug_port: N}`), for the attach row. */
  via?: Record<string, unknown>;
}

/**
 * Runs an agent's CDP connection for its whole life. The agent already holds the session's
 * lease; this waits for the browser, opens the agent's own DevTools session on the browser's
 * pipe (`targetId`: a page-level socket, else the browser's) before answering the upgrade,
 * and gives the lease back when the agent goes, or if the browser fails or the client leaves
 * before the upgrade completes.
 */
export async function runAgent(session: Session, slot: AgentSlot, up: AgentUpgrade, targetId?: string): Promise<void> {
  let settled = false;
  const giveBack = () => {
    if (settled) return;
    settled = true;
    slot.release();
    if (session.autoClose && session.live) void session.stop('client disconnected');
  };
  up.socket.once('close', giveBack);
  let channel: AgentChannel | undefined;
  let ws: WebSocket;
  try {
    checkUpgrade(up.req);
    await session.ready;
    if (!session.live) throw new HandoffError('session_not_found', 'the session stopped');
    channel = await session.openAgentChannel(targetId).catch((e: Error) => {
      if (e instanceof HandoffError) throw e;
      throw targetId
        ? new HandoffError('not_found', `no page ${targetId.slice(0, 64)} in this session`)
        : new HandoffError('browser_failed', 'the browser did not accept the connection', {}, e.message);
    });
    ws = await acceptAgentSocket(up.req, up.socket, up.head);
  } catch (e) {
    channel?.close();
    giveBack();
    throw e;
  }
  up.socket.off('close', giveBack);
  if (settled) {
    channel.close();
    return void ws.terminate();
  }
  settled = true;

  let handoff: CdpHandoffDomain | undefined;
  let hold: AgentInputHold | undefined;
  const agent: AgentSocket = new AgentSocket(ws, channel, {
    keepaliveMs: up.keepaliveMs,
    onActivity: () => session.touch(),
    onCommand: (cmd) => {
      // Marked before Chromium sees it: the exit that follows is a stop, not a crash.
      if (cmd?.method === 'Browser.close') session.browserCloseRequested();
      return (handoff?.handle(cmd) ?? false) || (hold?.take(cmd) ?? false);
    },
    onClose: (who) => onClose(who),
  });
  // The Handoff domain lives on the browser connection only (API.md 7).
  if (!targetId) handoff = new CdpHandoffDomain(session, (m) => agent.sendToClient(m), up.liveLink);
  // After the domain: Handoff.completed reaches the agent before the answers to what was held.
  hold = new AgentInputHold(session, (cmd) => agent.forward(cmd), (m) => agent.sendToClient(m));
  slot.connected({ actor: 'agent', transport: 'cdp', sourceIp: up.sourceIp, detail: { ...(targetId ? { target: `/devtools/page/${targetId}` } : {}), ...up.via } });
  const detachFromSession = session.attach(agent);

  function onClose(who: 'client' | 'browser'): void {
    handoff?.close();
    hold?.close();
    detachFromSession();
    slot.release();
    if (who === 'client') {
      if (session.autoClose && session.live) void session.stop('client disconnected');
      return;
    }
    // The browser side went first: tell the agent why, once the session knows (a crash is
    // noticed when the process exit arrives, a moment after the pipe closes).
    const tell = () => agent.close(SESSION_ENDED_CLOSE_CODE, session.endReason ?? 'browser connection lost');
    if (!session.live) return tell();
    const timer = setTimeout(() => (session.live ? agent.close(1011, 'browser connection lost') : tell()), 2000);
    session.once('ended', () => {
      clearTimeout(timer);
      tell();
    });
  }
}
