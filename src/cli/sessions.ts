import { ConfigError } from '../config/config.js';

/** `handoff sessions [list] | stop ID`, against a running daemon's REST API. */
export async function sessionsCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let url = `http://127.0.0.1:${env.HANDOFF_PORT ?? 9222}`;
  let apiKey = env.HANDOFF_API_KEY ?? '';
  let json = false;
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--url') url = argv[++i] ?? url;
    else if (a === '--api-key') apiKey = argv[++i] ?? '';
    else if (a === '--json') json = true;
    else words.push(a);
  }
  const [sub = 'list', id] = words;
  const call = async (method: string, path: string) => {
    let res: Response;
    try {
      res = await fetch(url.replace(/\/$/, '') + path, { method, headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {} });
    } catch {
      throw new Error(`cannot reach the daemon at ${url} (is 'handoff serve' running? pass --url)`);
    }
    const body = (await res.json()) as { error?: { code: string; message: string } } & Record<string, unknown>;
    if (!res.ok) throw new Error(`${body.error?.code ?? res.status}: ${body.error?.message ?? ''}`);
    return body;
  };
  if (sub === 'list') {
    const { sessions } = (await call('GET', '/sessions')) as unknown as { sessions: Record<string, unknown>[] };
    if (json) {
      process.stdout.write(JSON.stringify(sessions, null, 2) + '\n');
      return 0;
    }
    if (!sessions.length) {
      process.stdout.write('no sessions\n');
      return 0;
    }
    const rows = sessions.map((s) => [s.session_id, s.state, s.attachment, `${s.width}x${s.height}`, s.created_at, s.expires_at ?? '-'].map(String));
    const head = ['SESSION', 'STATE', 'ATTACHMENT', 'SIZE', 'CREATED', 'EXPIRES'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    for (const r of [head, ...rows]) process.stdout.write(r.map((c, i) => c.padEnd(widths[i]!)).join('  ') + '\n');
    return 0;
  }
  if (sub === 'stop') {
    if (!id) throw new ConfigError('usage: handoff sessions stop SESSION_ID');
    await call('POST', `/session/${encodeURIComponent(id)}/stop`);
    process.stdout.write(`stopped ${id}\n`);
    return 0;
  }
  throw new ConfigError(`unknown sessions command "${sub}" (list, stop)`);
}
