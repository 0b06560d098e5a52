import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { readJson, type HttpServer, type RequestContext } from '../http/server.js';
import type { Services } from '../http/routes/context.js';
import { createMcpServer } from './tools.js';

/**
 * `/mcp` (API.md 7): MCP over streamable HTTP, stateless (a server and transport per request;
 * progress goes out on the request's own SSE stream). Registered in the route table, so the
 * API key and the Origin/Host guard apply as to every route.
 */
export function mcpRoutes(http: HttpServer, s: Services): void {
  const handle = async (ctx: RequestContext, res: import('node:http').ServerResponse) => {
    // JSON objects only (64 KiB, application/json): JSON-RPC batches left the protocol in 2025-06-18.
    const body = ctx.req.method === 'POST' ? await readJson(ctx) : undefined;
    const server = createMcpServer(s, ctx);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    // Closing aborts a tool still running (request_human cancels its handoff).
    res.once('close', () => void server.close().catch(() => {}));
    await server.connect(transport);
    await transport.handleRequest(ctx.req, res, body);
  };
  for (const method of ['POST', 'GET', 'DELETE']) http.route(method, '/mcp', handle);
}
