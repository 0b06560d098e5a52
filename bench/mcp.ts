/**
 * MCP request_human (issue 15 figure): a blocking call that ends on the daemon's own timer,
 * measured end to end, minus that timer: over `/mcp` (streamable HTTP, connection already
 * initialised), through `handoff mcp` (stdio, which opens a connection to /mcp per call), and
 * the REST long poll `GET /session/ID/wait` ending the same way (408), same daemon, same run.
 * Run alone with `node --import tsx bench/mcp.ts`.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { BIN, startDaemon } from '../test/helpers/daemon.js';
import { fmt, stats } from './lib.js';
import type { Row } from './core.js';

const WAIT_MS = 1000;

export async function benchMcp(log: (s: string) => void, n = 15): Promise<Row[]> {
  const daemon = await startDaemon();
  const http = new Client({ name: 'bench', version: '1' });
  const stdio = new Client({ name: 'bench-stdio', version: '1' });
  try {
    await http.connect(new StreamableHTTPClientTransport(new URL('/mcp', daemon.url)));
    await stdio.connect(new StdioClientTransport({ command: process.execPath, args: [BIN, 'mcp', '--url', daemon.url] }));
    await http.callTool({ name: 'session_create', arguments: { session_id: 'bench-mcp' } });
    const timed = async (fn: () => Promise<unknown>) => {
      const t = performance.now();
      await fn();
      return performance.now() - t - WAIT_MS;
    };
    const ask = (c: Client) => () => c.callTool({ name: 'request_human', arguments: { session_id: 'bench-mcp', reason: 'bench', timeout_s: WAIT_MS / 1000 } });
    const poll = () => fetch(`${daemon.url}/session/bench-mcp/wait?attachment=human&timeout_ms=${WAIT_MS}`).then((r) => r.text());
    const samples = { http: [] as number[], stdio: [] as number[], rest: [] as number[] };
    log(`request_human timeouts and REST long polls, ${n} x ${WAIT_MS} ms each...`);
    for (let i = 0; i < n; i++) {
      samples.http.push(await timed(ask(http)));
      samples.stdio.push(await timed(ask(stdio)));
      samples.rest.push(await timed(poll));
    }
    const [h, s, r] = [stats(samples.http), stats(samples.stdio), stats(samples.rest)];
    const row = (figure: string, x: ReturnType<typeof stats>): Row => ({
      figure,
      handoff: `${fmt(x.p50, 1)} / ${fmt(x.p95, 1)}`,
      reference: `${fmt(r.p50, 1)} / ${fmt(r.p95, 1)} (REST /wait, 408)`,
      ratio: `+${fmt(x.p50 - r.p50, 1)} ms`,
      target: 'overhead small next to a human',
      ok: null,
    });
    return [
      row('request_human over /mcp, overhead beyond the wait, ms p50 / p95', h),
      row('request_human through `handoff mcp` (stdio), overhead beyond the wait, ms p50 / p95', s),
    ];
  } finally {
    await http.close().catch(() => {});
    await stdio.close().catch(() => {});
    await daemon.cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await benchMcp((s) => process.stdout.write(`bench: ${s}\n`));
  for (const r of rows) process.stdout.write(`${r.figure}: ${r.handoff} vs ${r.reference} (${r.ratio})\n`);
}
