import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, OPTIONS, loadConfig } from '../config/config.js';
import { createLogger } from '../util/logger.js';
import { Daemon } from '../main.js';
import { openDatabase } from '../audit/database.js';
import { AuditLog, verifyChain } from '../audit/log.js';
import { runDoctor } from './doctor.js';
import { sessionsCommand } from './sessions.js';

const HELP = `handoff: a self-hosted browser host (Chromium under Xvfb, CDP proxy, live view, VNC, audit)

Usage:
  handoff serve [options]            run the daemon
  handoff sessions [list]            list sessions of a running daemon
  handoff sessions stop ID           stop one
  handoff audit tail [-n N] [-f]     last audit events (-f keeps following)
  handoff audit export               every event as JSON lines on stdout
  handoff audit verify               check the hash chain; exit 1 and name the row if broken
  handoff doctor                     check chromium, Xvfb, ffmpeg, tmpfs, fonts, ports; print fixes

Options (flag, environment, or a JSON file given with --config):
${OPTIONS.map((o) => `  --${o.flag.padEnd(16)} ${o.env.padEnd(22)} ${o.help}`).join('\n')}

'sessions' talks to a running daemon: --url (default http://127.0.0.1:$HANDOFF_PORT or :9222)
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
      case 'audit':
        return await audit(rest, env);
      case 'doctor':
        return await runDoctor(config(stripKnown(rest, []), env));
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

async function audit(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [sub = 'tail', ...rest] = argv;
  let n = 20;
  let follow = false;
  const opts: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '-n') n = Number(rest[++i]);
    else if (a === '-f' || a === '--follow') follow = true;
    else opts.push(a);
  }
  const cfg = config(opts, env);
  const db = openDatabase(join(cfg.stateDir, 'handoff.db'));
  const log = new AuditLog(db);
  try {
    if (sub === 'verify') {
      const r = verifyChain(log.iterate());
      if (r.ok) {
        process.stdout.write(`audit chain OK: ${r.rows} rows verified\n`);
        return 0;
      }
      process.stdout.write(`audit chain BROKEN at row ${r.brokenAt!.id}: ${r.brokenAt!.reason}\n`);
      return 1;
    }
    if (sub === 'export') {
      for (const e of log.iterate()) process.stdout.write(JSON.stringify(e) + '\n');
      return 0;
    }
    if (sub !== 'tail') throw new ConfigError(`unknown audit command "${sub}" (tail, export, verify)`);
    if (!Number.isInteger(n) || n < 1) throw new ConfigError('-n takes a positive whole number');
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
