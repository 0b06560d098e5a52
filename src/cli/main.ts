import { createReadStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ConfigError, OPTIONS, flagError, loadConfig, parseCommandArgs } from '../config/config.js';
import { createLogger } from '../util/logger.js';
import { Daemon, installLastResortHandlers } from '../main.js';
import { openDatabase } from '../audit/database.js';
import { AuditLog, verifyChain, type AuditHead } from '../audit/log.js';
import { CHECKPOINT_MSG, checkpointFromLogLine, checkpointProblem, parseCheckpoint } from '../audit/checkpoint.js';
import { runDoctor } from './doctor.js';
import { sessionsCommand } from './sessions.js';
import { runStdioMcp } from '../mcp/stdio.js';

const HELP = `handoff: a self-hosted browser host (Chromium under Xvfb, CDP proxy, live view, VNC, audit)

Usage:
  handoff serve [options]            run the daemon
  handoff sessions [list]            list sessions of a running daemon
  handoff sessions stop ID           stop one
  handoff mcp                        MCP server on stdio (session_create, request_human...) for a running daemon
  handoff audit tail [-n N] [-f]     last audit events (-f keeps following)
  handoff audit export               every event as JSON lines on stdout
         [--since ID|TIME]           ... only those after this row id or ISO time (collect incrementally)
  handoff audit verify               check the hash chain; exit 1 and name the row if broken
         [--checkpoint ID:HASH]      ... and that it still reaches this logged checkpoint
         [--from-log FILE]           ... and the last checkpoint in a daemon's log (JSON lines)
  handoff doctor                     check chromium, Xvfb, ffmpeg, sandbox, /dev/shm, disk, API key, ports, bundle; print fixes

Options (flag, environment, or a JSON file given with --config):
${OPTIONS.map((o) => `  --${o.flag.padEnd(16)} ${o.env.padEnd(22)} ${o.help}`).join('\n')}

'sessions' and 'mcp' talk to a running daemon: --url (default http://127.0.0.1:$HANDOFF_PORT or :9222)
and --api-key. 'audit' reads the database in --state-dir directly, so it works while the
daemon is down too.`;

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP + '\n');
    return command ? 0 : 2;
  }
  try {
    switch (command) {
      case 'serve':
        return await serve(rest, env);
      case 'sessions':
        return await sessionsCommand(rest, env);
      case 'mcp':
        return await mcp(rest, env);
      case 'audit':
        return await audit(rest, env);
      case 'doctor':
        return await runDoctor((extra) => config(stripKnown(rest, []), { ...env, ...extra }));
      default:
        process.stderr.write(`handoff: unknown command "${command}"\n\n${HELP}\n`);
        return 2;
    }
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`handoff: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`handoff: ${(e as Error).message}\n`);
    return 1;
  }
}

function config(argv: string[], env: NodeJS.ProcessEnv) {
  return loadConfig(argv, env, (p) => readFileSync(p, 'utf8'));
}

/** Pulls command-specific flags out of argv; the rest are config options. */
function stripKnown(argv: string[], flags: string[]): string[] {
  return argv.filter((a) => !flags.includes(a));
}

async function serve(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const cfg = config(argv, env);
  const logger = createLogger(cfg.logLevel, { component: 'handoff' });
  // No exception from a socket handler may end the daemon and every browser with it.
  installLastResortHandlers(logger);
  const daemon = await Daemon.start(cfg, logger);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info('signal received', { signal });
      daemon.close().then(resolve, (e) => {
        logger.error('error while stopping', { error: String(e) });
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

/** `handoff mcp [--url URL] [--api-key KEY]`: stdout carries MCP only, so errors go to stderr. */
async function mcp(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let values: { url?: string; 'api-key'?: string };
  try {
    ({ values } = parseArgs({ args: argv, strict: true, allowPositionals: false, options: { url: { type: 'string' }, 'api-key': { type: 'string' } } }));
  } catch (e) {
    throw new ConfigError(`mcp: ${flagError(e as Error)} (--url URL, --api-key KEY)`);
  }
  const url = values.url || `http://127.0.0.1:${env.HANDOFF_PORT ?? 9222}`;
  const apiKey = values['api-key'] ?? env.HANDOFF_API_KEY ?? '';
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) throw new ConfigError(`mcp: --url must be an http(s) URL, got "${url.slice(0, 100)}"`);
  await runStdioMcp({ url, apiKey, version: '0.1.0' });
  return 0;
}

async function audit(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  // The audit flags, plus every config option (passed on to loadConfig as --flag value).
  const parsed = parseCommandArgs(argv, {
    n: { type: 'string', short: 'n' },
    follow: { type: 'boolean', short: 'f' },
    checkpoint: { type: 'string', multiple: true },
    'from-log': { type: 'string' },
    since: { type: 'string' },
    ...Object.fromEntries(OPTIONS.map((o) => [o.flag, { type: 'string' as const }])),
  });
  const { values, positionals } = parsed;
  const [sub = 'tail', ...extra] = positionals;
  if (extra.length) throw new ConfigError(`unexpected argument "${extra[0]}"`);
  const given = values as Record<string, unknown>;
  const configArgs = OPTIONS.flatMap((o) => (typeof given[o.flag] === 'string' ? [`--${o.flag}`, given[o.flag] as string] : []));
  const cfg = config(configArgs, env);
  const n = values.n === undefined ? 20 : Number(values.n);
  const follow = values.follow === true;
  // Read the checkpoints before opening the database, so a bad argument changes nothing.
  const checkpoints: AuditHead[] = [];
  for (const text of values.checkpoint ?? []) {
    const cp = parseCheckpoint(text);
    if (!cp) throw new ConfigError(`--checkpoint takes ID:HASH (a row id, a colon, 64 hex digits), got "${text.slice(0, 100)}"`);
    checkpoints.push(cp);
  }
  if (values['from-log'] !== undefined) checkpoints.push(await lastCheckpointIn(values['from-log']));
  if (sub !== 'verify' && checkpoints.length) throw new ConfigError('--checkpoint and --from-log go with `audit verify`');
  if (!['tail', 'export', 'verify'].includes(sub)) throw new ConfigError(`unknown audit command "${sub}" (tail, export, verify)`);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError('-n takes a positive whole number');
  const after = exportAfter(values.since);
  if (after && sub !== 'export') throw new ConfigError('--since goes with `audit export`');

  const db = openDatabase(join(cfg.stateDir, 'handoff.db'));
  const log = new AuditLog(db);
  try {
    if (sub === 'verify') {
      const r = verifyChain(log.iterate());
      if (!r.ok) {
        process.stdout.write(`audit chain BROKEN at row ${r.brokenAt!.id}: ${r.brokenAt!.reason}\n`);
        return 1;
      }
      process.stdout.write(`audit chain OK: ${r.rows} rows verified\n`);
      let failed = false;
      for (const cp of checkpoints) {
        const problem = checkpointProblem(log, cp);
        if (problem) process.stdout.write(`checkpoint ${cp.id} NOT REACHED: ${problem}\n`);
        else process.stdout.write(`checkpoint ${cp.id}:${cp.hash} reached\n`);
        failed ||= !!problem;
      }
      return failed ? 1 : 0;
    }
    if (sub === 'export') {
      for (const e of log.iterate()) if (!after || after(e)) process.stdout.write(JSON.stringify(e) + '\n');
      return 0;
    }
    let last = 0;
    const print = (events: ReturnType<AuditLog['query']>) => {
      for (const e of events) {
        process.stdout.write(`${e.id}\t${e.ts}\t${e.type}\t${e.session_id ?? '-'}\t${e.transport ?? '-'}\t${e.source_ip ?? '-'}\t${JSON.stringify(e.detail)}\n`);
        last = e.id;
      }
    };
    print(log.query({ limit: n }));
    while (follow) {
      await new Promise((r) => setTimeout(r, 500));
      print(log.query({ since: String(last), limit: 1000 }));
    }
    return 0;
  } finally {
    db.close();
  }
}

/**
 * `audit export --since`: a row id (rows after it: a collector passes the last id it has) or
 * an ISO time (rows written after it). Rows are compared as stored (ids grow; ts is UTC ISO).
 */
function exportAfter(since: string | undefined): ((e: { id: number; ts: string }) => boolean) | null {
  if (since === undefined) return null;
  if (/^\d{1,15}$/.test(since)) return (e) => e.id > Number(since);
  const t = Date.parse(since);
  if (since.length > 64 || Number.isNaN(t)) throw new ConfigError(`--since takes a row id or an ISO time, got "${since.slice(0, 64)}"`);
  const iso = new Date(t).toISOString();
  return (e) => e.ts > iso;
}

/** The last checkpoint line in a daemon's log (JSON lines, e.g. `journalctl -u handoff -o cat`). */
async function lastCheckpointIn(file: string): Promise<AuditHead> {
  let last: AuditHead | null = null;
  let stream;
  try {
    stream = createReadStream(file, { encoding: 'utf8' });
    for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
      // Log lines are short; a huge line is not ours (and not worth parsing).
      if (line.length > 4096) continue;
      last = checkpointFromLogLine(line) ?? last;
    }
  } catch (e) {
    throw new ConfigError(`--from-log ${file}: ${(e as Error).message}`);
  } finally {
    stream?.destroy();
  }
  if (!last) throw new ConfigError(`--from-log ${file}: no "${CHECKPOINT_MSG}" line in it`);
  process.stdout.write(`last checkpoint in ${file}: ${last.id}:${last.hash}\n`);
  return last;
}
