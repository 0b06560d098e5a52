import { ConfigError, parseCommandArgs } from '../config/config.js';

type Call = (method: string, path: string) => Promise<Record<string, unknown>>;

/**
 * `handoff sessions [list] | stop ID`, against running daemons' REST API. `--url` may be given
 * more than once (a fleet, deploy/README.md): `list` shows every host's sessions in one table
 * with a HOST column; `stop` asks each host and stops the session where it lives.
 */
export async function sessionsCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = parseCommandArgs(argv, {
    url: { type: 'string', multiple: true },
    'api-key': { type: 'string' },
    json: { type: 'boolean' },
  });
  const { values, positionals } = parsed;
  const urls = values.url?.length ? values.url : [`http://127.0.0.1:${env.HANDOFF_PORT ?? 9222}`];
  for (const u of urls) {
    if (!URL.canParse(u) || !/^https?:$/.test(new URL(u).protocol)) throw new ConfigError(`--url must be an http(s) URL, got "${u.slice(0, 100)}"`);
  }
  const apiKey = values['api-key'] ?? env.HANDOFF_API_KEY ?? '';
  const [sub = 'list', id, ...extra] = positionals;
  if (extra.length) throw new ConfigError(`unexpected argument "${extra[0]!.slice(0, 100)}"`);
  const hosts = urls.map((url) => ({ url: url.replace(/\/$/, ''), call: caller(url, apiKey) }));

  if (sub === 'list') {
    // Every host is asked at once; one that does not answer is reported, the others listed.
    const answers = await Promise.allSettled(hosts.map((h) => h.call('GET', '/sessions')));
    const sessions: Record<string, unknown>[] = [];
    let failed = 0;
    answers.forEach((a, i) => {
      if (a.status === 'fulfilled') {
        for (const s of (a.value.sessions as Record<string, unknown>[] | undefined) ?? []) sessions.push(hosts.length > 1 ? { host: hosts[i]!.url, ...s } : s);
      } else {
        failed++;
        process.stderr.write(`handoff: ${(a.reason as Error).message}\n`);
      }
    });
    if (failed === hosts.length) return 1;
    if (values.json) process.stdout.write(JSON.stringify(sessions, null, 2) + '\n');
    else printTable(sessions, hosts.length > 1);
    return failed ? 1 : 0;
  }
  if (sub === 'stop') {
    if (!id) throw new ConfigError('usage: handoff sessions stop SESSION_ID');
    const path = `/session/${encodeURIComponent(id)}/stop`;
    if (hosts.length === 1) {
      await hosts[0]!.call('POST', path);
      process.stdout.write(`stopped ${id}\n`);
      return 0;
    }
    // A session lives on one host: ask each; session_not_found elsewhere is expected.
    const answers = await Promise.allSettled(hosts.map((h) => h.call('POST', path)));
    const on = hosts.filter((_, i) => answers[i]!.status === 'fulfilled').map((h) => h.url);
    for (const a of answers) {
      if (a.status === 'rejected' && !(a.reason as Error).message.startsWith('session_not_found')) process.stderr.write(`handoff: ${(a.reason as Error).message}\n`);
    }
    if (!on.length) throw new Error(`session_not_found: no host has a session ${id.slice(0, 128)}`);
    process.stdout.write(`stopped ${id} on ${on.join(', ')}\n`);
    return 0;
  }
  throw new ConfigError(`unknown sessions command "${sub.slice(0, 100)}" (list, stop)`);
}

function caller(url: string, apiKey: string): Call {
  const base = url.replace(/\/$/, '');
  return async (method, path) => {
    let res: Response;
    try {
      res = await fetch(base + path, { method, headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {}, signal: AbortSignal.timeout(10_000) });
    } catch {
      throw new Error(`cannot reach the daemon at ${base} (is 'handoff serve' running? pass --url)`);
    }
    const body = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string } } & Record<string, unknown>;
    if (!res.ok) throw new Error(`${body.error?.code ?? res.status}: ${body.error?.message ?? ''} (${base})`);
    return body;
  };
}

function printTable(sessions: Record<string, unknown>[], withHost: boolean): void {
  if (!sessions.length) {
    process.stdout.write('no sessions\n');
    return;
  }
  const rows = sessions.map((s) => [...(withHost ? [s.host] : []), s.session_id, s.state, s.attachment, `${s.width}x${s.height}`, s.created_at, s.expires_at ?? '-'].map(String));
  const head = [...(withHost ? ['HOST'] : []), 'SESSION', 'STATE', 'ATTACHMENT', 'SIZE', 'CREATED', 'EXPIRES'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) process.stdout.write(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd() + '\n');
}
