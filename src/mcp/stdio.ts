import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { CallToolRequestSchema, ListToolsRequestSchema, McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';

/** A call waits this long without a progress notification (request_human sends one every few seconds). */
const SILENCE_TIMEOUT_MS = 120_000;

/**
 * `handoff mcp`: an MCP server on stdin/stdout that forwards tool listings and calls to a
 * running daemon's `/mcp` (the tools live in one place, tools.ts), progress included.
 * Each request gets its own connection to the daemon: `/mcp` is stateless, so a cancelled
 * call is ended by closing its connection (the daemon then cancels a pending handoff), and
 * the daemon may start after the MCP host starts this. Resolves when stdin closes.
 */
export async function runStdioMcp(opts: { url: string; apiKey: string; version: string }): Promise<void> {
  const withDaemon = async <T>(fn: (client: Client) => Promise<T>): Promise<T> => {
    const client = new Client({ name: 'handoff-mcp-stdio', version: opts.version });
    const headers: Record<string, string> = opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {};
    try {
      await client.connect(new StreamableHTTPClientTransport(new URL('/mcp', opts.url), { requestInit: { headers } }));
    } catch (e) {
      throw new Error(`cannot reach the handoff daemon at ${opts.url} (is 'handoff serve' running? check --url and --api-key): ${(e as Error).message}`);
    }
    try {
      return await fn(client);
    } finally {
      await client.close().catch(() => {});
    }
  };

  const server = new Server({ name: 'handoff', version: opts.version }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, (req) => withDaemon((c) => c.listTools(req.params)));
  server.setRequestHandler(CallToolRequestSchema, async (req, extra): Promise<CallToolResult> => {
    const token = req.params._meta?.progressToken;
    try {
      return await withDaemon(
        async (c) =>
          (await c.callTool({ name: req.params.name, arguments: req.params.arguments }, undefined, {
            signal: extra.signal,
            timeout: SILENCE_TIMEOUT_MS,
            resetTimeoutOnProgress: true,
            onprogress: (p) => {
              if (token !== undefined) void extra.sendNotification({ method: 'notifications/progress', params: { ...p, progressToken: token } }).catch(() => {});
            },
          })) as CallToolResult,
      );
    } catch (e) {
      // The daemon's own answer (an unknown tool, say) and a cancel pass through as they are.
      if (extra.signal.aborted || e instanceof McpError) throw e;
      const error = { code: 'daemon_unreachable', message: (e as Error).message };
      return { isError: true, content: [{ type: 'text', text: JSON.stringify({ error }) }], structuredContent: { error } };
    }
  });

  const closed = new Promise<void>((resolve) => {
    server.onclose = () => resolve();
    process.stdin.once('end', () => resolve());
  });
  await server.connect(new StdioServerTransport());
  await closed;
  await server.close().catch(() => {});
}
