import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { HandoffError } from '../util/errors.js';
import { parseSessionParams, validSessionId } from '../sessions/params.js';
import type { HandoffCompleted, Session } from '../sessions/session.js';
import { hostOnly } from '../http/routes/sessions.js';
import { errorBody, toPublicError } from '../http/errors.js';
import type { Logger } from '../util/logger.js';
import { sessionById, type Services } from '../http/routes/context.js';

/** Where the MCP request came from: the hosts in URLs we hand back, and the audit's source. */
export interface McpCaller {
  publicHost: string;
  wsOrigin: string;
  sourceIp: string;
}

/** While a human is awaited, a progress notification this often (clients reset their timeout on it). */
export const PROGRESS_EVERY_MS = 5000;
const DEFAULT_HUMAN_TIMEOUT_S = 600;

const sessionId = z.string().max(128).describe('the session id');

/**
 * The MCP tools of API.md 7, in-process: one server per MCP connection (`/mcp` is stateless,
 * so one per request). `handoff mcp` (stdio) forwards to these over `/mcp`, so this is the
 * only implementation.
 */
export function createMcpServer(s: Services, caller: McpCaller, version = '0.1.0'): McpServer {
  // Our tools take a dozen flat arguments at most: anything much larger is refused before zod sees it.
  const server = new McpServer({ name: 'handoff', version }, { maxToolInputElements: 64 });
  const tool = toolResult(s.logger);

  server.registerTool(
    'session_create',
    {
      title: 'Create a browser session',
      description:
        'Starts a headful Chromium session (or returns the live one with that session_id). Give cdp_url to a browser tool ' +
        '(Playwright MCP --cdp-endpoint, Puppeteer browserWSEndpoint, Playwright connectOverCDP). With auto_close=false ' +
        '(the default) the session outlives the browser tool\'s connection until session_stop or timeout_s idle seconds.',
      inputSchema: {
        session_id: z.string().max(128).optional().describe('[A-Za-z0-9._-]{1,128}; a new id when absent'),
        width: z.number().int().optional().describe('framebuffer width, 320-3840 (default 1280)'),
        height: z.number().int().optional().describe('framebuffer height, 240-2160 (default 720)'),
        auto_close: z.boolean().optional().describe('stop the session when the CDP client disconnects (default false)'),
        timeout_s: z.number().int().optional().describe('idle seconds before an unattached session stops, 1-3600 (default 900)'),
        enable_vnc: z.boolean().optional(),
        vnc_password: z.string().max(1024).optional(),
        enable_rtc: z.boolean().optional(),
        rtc_username: z.string().max(1024).optional(),
        rtc_password: z.string().max(1024).optional(),
        debug: z.boolean().optional().describe('record the session to a video'),
        hitl_allowed_networks: z.string().max(1024).optional().describe('CIDR[,CIDR]: networks the human transports accept'),
      },
    },
    tool(async (a) => {
      const id = a.session_id === undefined ? randomUUID() : validSessionId(a.session_id);
      let session = s.registry.get(id);
      const created = !session?.live;
      if (created) {
        const q = new URLSearchParams();
        const rename: Record<string, string> = { timeout_s: 'timeout' };
        for (const [k, v] of Object.entries(a)) if (v !== undefined && k !== 'session_id' && k !== 'auto_close') q.set(rename[k] ?? k, String(v));
        session = s.registry.create(id, parseSessionParams(q), a.auto_close ?? false);
      }
      await session!.ready;
      // Never the API key: a tool result lands in the model's context, where a prompt-injected
      // page could ask for it (security review). The browser tool is given the key by its own
      // config (Playwright MCP --cdp-header "Authorization: Bearer KEY").
      const auth = s.config.apiKey ? { cdp_auth: 'send the daemon API key: Authorization: Bearer KEY (configured in the browser tool, not given here)' } : {};
      return { session_id: id, created, cdp_url: `${caller.wsOrigin}/devtools/browser/${id}`, ...auth, session: info(session!) };
    }),
  );

  server.registerTool(
    'session_status',
    { title: 'Session status', description: 'The session (state, attachment, viewers, active handoff...), as GET /session/ID.', inputSchema: { session_id: sessionId } },
    tool(async (a) => {
      const id = validSessionId(a.session_id);
      const session = s.registry.get(id);
      if (session) return info(session);
      const stopped = s.registry.stoppedInfo(id);
      if (stopped) return stopped;
      throw new HandoffError('session_not_found', `no session ${id}`);
    }),
  );

  server.registerTool(
    'request_human',
    {
      title: 'Ask a human for help',
      description:
        'Hands the session to a human (a login, an MFA code, a captcha, an approval) and waits until they press Done or ' +
        '"Can\'t do it", or timeout_s passes. Send the human the live URL: it is in the first progress notification\'s ' +
        'message (pass a progressToken), or call live_url. The browser tool may stay connected; leave the page to the ' +
        'human until this returns. Returns {outcome: done|failed|timeout|cancelled, by, duration_ms, changes: {urls, downloads}}.',
      inputSchema: {
        session_id: sessionId,
        reason: z.string().min(1).max(1000).describe('what the human should do, shown to them'),
        timeout_s: z.number().int().min(1).max(86_400).optional().describe(`seconds to wait for the human (default ${DEFAULT_HUMAN_TIMEOUT_S})`),
      },
    },
    tool(async (a, extra) => {
      const session = sessionById(s, a.session_id, { live: true });
      const timeoutMs = (a.timeout_s ?? DEFAULT_HUMAN_TIMEOUT_S) * 1000;
      const link = s.liveLinks.issue(session, caller.publicHost, 'control', caller.sourceIp);
      const ours = !session.handoff;
      const h = session.requestHandoff({ reason: a.reason, timeoutMs, holdAgentInput: true }, 'mcp', { liveUrl: link.url });
      const progressToken = extra._meta?.progressToken;
      const started = Date.now();
      const progress = (message: string) => {
        if (progressToken === undefined) return;
        const elapsed = Math.round((Date.now() - started) / 1000);
        extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: elapsed, total: timeoutMs / 1000, message } }).catch(() => {});
      };
      progress(`waiting for a human; send them this link (open within 5 minutes): ${link.url}`);
      const result = await awaitHandoff(session, h.id, extra.signal, () => progress('still waiting for the human'));
      // The agent went away (cancelled the call, or its connection closed): nobody waits for this handoff.
      if (!result && ours) session.completeHandoff('cancelled', 'mcp');
      if (!result) throw new HandoffError('bad_request', 'request_human was cancelled');
      return { outcome: result.outcome, by: result.by, duration_ms: result.durationMs, changes: result.changes, handoff_id: result.handoffId, live_url: link.url };
    }),
  );

  server.registerTool(
    'live_url',
    {
      title: 'Live view link',
      description: 'A fresh control link to the session\'s live view, for a human (to be opened within 5 minutes). Opening it while the browser tool is connected starts a handoff.',
      inputSchema: { session_id: sessionId },
    },
    tool(async (a) => s.liveLinks.issue(sessionById(s, a.session_id, { live: true }), caller.publicHost, 'control', caller.sourceIp)),
  );

  server.registerTool(
    'session_stop',
    { title: 'Stop a session', description: 'Stops the session and its browser.', inputSchema: { session_id: sessionId } },
    tool(async (a) => {
      await sessionById(s, a.session_id, { live: true }).stop('session stopped');
      return { stopped: true };
    }),
  );

  const info = (session: Session) => session.info(hostOnly(caller.publicHost));
  return server;
}

/**
 * Resolves with the handoff's completion; when the session ends first, as cancelled by the
 * daemon; with null when `signal` aborts. Calls `tick` every PROGRESS_EVERY_MS meanwhile.
 */
function awaitHandoff(session: Session, handoffId: string, signal: AbortSignal, tick: () => void): Promise<HandoffCompleted | null> {
  return new Promise((resolve) => {
    const started = Date.now();
    const finish = (r: HandoffCompleted | null) => {
      clearInterval(timer);
      session.off('handoffCompleted', completed);
      session.off('ended', ended);
      signal.removeEventListener('abort', aborted);
      resolve(r);
    };
    const completed = (e: HandoffCompleted) => e.handoffId === handoffId && finish(e);
    const ended = () =>
      finish({ handoffId, outcome: 'cancelled', by: 'daemon', durationMs: Date.now() - started, changes: { urls: [], downloads: [] } });
    const aborted = () => finish(null);
    const timer = setInterval(tick, PROGRESS_EVERY_MS);
    session.on('handoffCompleted', completed);
    session.once('ended', ended);
    signal.addEventListener('abort', aborted);
    if (signal.aborted) aborted();
    else if (!session.live) ended();
  });
}

/** A tool's JSON result as text and structured content; errors as `{error: {code, message}}` with isError. */
function toolResult(logger: Logger) {
  return <A, E>(fn: (args: A, extra: E) => Promise<object>) =>
    async (args: A, extra: E): Promise<CallToolResult> => {
      try {
        const value = await fn(args, extra);
        return { content: [{ type: 'text', text: JSON.stringify(value) }], structuredContent: value as Record<string, unknown> };
      } catch (e) {
        const body = errorBody(toPublicError(e, logger));
        return { isError: true, content: [{ type: 'text', text: body }], structuredContent: JSON.parse(body) as Record<string, unknown> };
      }
    };
}
