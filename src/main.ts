import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync, existsSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Config } from './config/config.js';
import type { Logger } from './util/logger.js';
import { isAlive } from './util/process.js';
import { hostForUrl } from './util/net.js';
import { openDatabase, type Db } from './audit/database.js';
import { AuditLog } from './audit/log.js';
import { AuditCheckpoints } from './audit/checkpoint.js';
import { SessionJournal } from './sessions/journal.js';
import { SessionRegistry } from './sessions/registry.js';
import { realFactories } from './sessions/real-parts.js';
import { LiveLinks } from './sessions/live-links.js';
import { loadLinkKey } from './liveview/tokens.js';
import { HttpServer } from './http/server.js';
import { DebugPorts } from './http/debug-port.js';
import { cdpRoutes } from './http/routes/cdp.js';
import { handoffRoutes, sessionRoutes } from './http/routes/sessions.js';
import { uploadRoutes } from './http/routes/uploads.js';
import { systemRoutes } from './http/routes/system.js';
import { liveRoutes } from './http/routes/live.js';
import { assetRoutes } from './http/routes/assets.js';
import { previewRoutes } from './http/routes/preview.js';
import { mcpRoutes } from './mcp/http.js';
import type { Services } from './http/routes/context.js';
import { VncServer } from './liveview/vnc/server.js';
import { WebhookSender } from './util/webhook.js';
import { writeChromiumPolicy } from './browser/policy.js';
import { ProfileStore } from './profiles/store.js';
import { loadProfileKey } from './profiles/key.js';
import { profileRoutes } from './http/routes/profiles.js';
import { setDownloadLimits } from './browser/download-quota.js';
import { setRecordingLimit } from './display/recorder.js';
import { startRetention } from './util/disk.js';

/**
 * The composition root: builds the parts in dependency order, starts them, and closes them
 * in exact reverse.
 */
export class Daemon {
  private closing?: Promise<void>;

  private constructor(
    readonly config: Readonly<Config>,
    readonly url: string,
    readonly port: number,
    readonly vncPort: number,
    private readonly db: Db,
    private readonly audit: AuditLog,
    private readonly checkpoints: AuditCheckpoints,
    private readonly http: HttpServer,
    private readonly debugPorts: DebugPorts,
    private readonly vnc: VncServer,
    readonly registry: SessionRegistry,
    private readonly webhook: WebhookSender | null,
    private readonly pidFile: string,
    private readonly logger: Logger,
  ) {}

  static async start(config: Readonly<Config>, logger: Logger): Promise<Daemon> {
    // Start is a disposable stack (DESIGN.md): each part built pushes its undo, and a failure
    // anywhere (the port is taken, say) unwinds them in reverse before the error goes on.
    const undo: { what: string; run: () => unknown }[] = [];
    try {
      return await Daemon.build(config, logger, undo);
    } catch (e) {
      for (const step of undo.reverse()) {
        try {
          await step.run();
        } catch (err) {
          logger.warn(`start failed; undoing ${step.what} failed too`, { error: (err as Error).message });
        }
      }
      throw e;
    }
  }

  private static async build(config: Readonly<Config>, logger: Logger, undo: { what: string; run: () => unknown }[]): Promise<Daemon> {
    // First: a bad profile key refuses to start before anything is touched.
    const profileKey = loadProfileKey({ hex: config.profileKey, file: config.profileKeyFile });
    mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
    // An existing state dir others can read would show them the audit DB and the sessions' files.
    const mode = statSync(config.stateDir).mode & 0o777;
    if (mode & 0o077) {
      chmodSync(config.stateDir, 0o700);
      logger.warn(`state dir ${config.stateDir} was mode ${mode.toString(8)}; narrowed to 700`);
    }
    const pidFile = lockStateDir(config.stateDir);
    undo.push({ what: 'pid file', run: () => rmSync(pidFile, { force: true }) });
    const db = openDatabase(join(config.stateDir, 'handoff.db'), { busyTimeoutMs: DAEMON_BUSY_TIMEOUT_MS });
    undo.push({ what: 'database', run: () => db.close() });
    const audit = new AuditLog(db, { logger: logger.child({ component: 'audit' }) });
    undo.push({ what: 'audit', run: () => (audit.flush(), audit.close()) });
    // Checked before anything is appended: does the chain still reach the last checkpoint?
    const checkpoints = new AuditCheckpoints(audit, join(config.stateDir, 'audit.head'), logger.child({ component: 'audit' }));
    const journal = new SessionJournal(db, logger.child({ component: 'journal' }));

    const orphans = journal.reapOrphans();
    for (const s of orphans.sessions) {
      audit.append({ type: 'session_stopped', session_id: s.session_id, run_id: s.run_id, detail: { reason: 'daemon restarted' } });
    }
    if (orphans.killed.length || orphans.sessions.length) {
      logger.warn('cleaned up after a previous daemon', { killed_pids: orphans.killed, dirs: orphans.removedDirs.length, sessions: orphans.sessions.length });
    }

    const webhook = config.webhook ? new WebhookSender({ url: config.webhook, secret: config.webhookSecret, logger: logger.child({ component: 'webhook' }) }) : null;
    if (webhook) undo.push({ what: 'webhook', run: () => webhook.close() });
    const notify = webhook ? (event: Record<string, unknown>) => webhook.send(event) : undefined;
    const profiles = await ProfileStore.open({ root: join(config.stateDir, 'profiles'), key: profileKey, audit, logger: logger.child({ component: 'profiles' }) });
    const registry = new SessionRegistry({ config, audit, journal, logger, notify, profiles, parts: realFactories(config) });
    // Disk limits (README "Disk"): quotas and the recording cap are read by the code that writes.
    const MB = 1024 * 1024;
    setDownloadLimits({
      perSessionBytes: config.maxDownloadMb * MB,
      totalBytes: config.maxDownloadTotalMb * MB,
      onCancelled: (e) => audit.append({ type: 'download_cancelled', session_id: e.sessionId, detail: { name: e.name, received_bytes: e.receivedBytes, limit: e.limit, limit_bytes: e.limitBytes } }),
    });
    setRecordingLimit(config.maxRecordingMb * MB);
    undo.push({ what: 'retention', run: startRetention({ stateDir: config.stateDir, retentionMs: config.retentionMs, isLive: (id) => !!registry.get(id)?.live, logger }) });
    const liveLinks = new LiveLinks(loadLinkKey(join(config.stateDir, 'live-link.key'), (m) => logger.warn(m)), registry, config.liveLinkTtlMs, config.publicUrl);
    const http = new HttpServer({
      apiKey: config.apiKey,
      logger,
      onAuthFailed: (ctx) => audit.append({ type: 'auth_failed', source_ip: ctx.sourceIp, transport: 'http', detail: { path: ctx.url.pathname.slice(0, 200) } }),
      allowedOrigins: config.allowedOrigins,
      publicUrl: config.publicUrl,
      trustedProxies: config.trustedProxies,
    });
    undo.push({ what: 'sessions', run: () => registry.close() });
    undo.push({ what: 'http', run: () => http.close() });
    const services: Services = {
      config,
      registry,
      audit,
      liveLinks,
      logger,
      startedAt: Date.now(),
      vncBridge: (stream, ip, sessionId) => vnc.handleSocket(stream, ip, sessionId),
      browserVersion: await browserVersion(config.chromiumPath, logger),
      mainHost: '',
    };
    const debugPorts = new DebugPorts(services, logger.child({ component: 'debug-port' }));
    registry.onCreated((session) => {
      if (session.params.debugPort) debugPorts.forSession(session).catch((e: Error) => logger.error('cannot open a debug port', { session_id: session.id, error: e.message }));
    });
    systemRoutes(http, services, { webhook, checkpoints, uncaughtErrors: uncaughtErrorCount });
    cdpRoutes(http, services);
    sessionRoutes(http, services, debugPorts);
    uploadRoutes(http, services);
    handoffRoutes(http, services);
    liveRoutes(http, services);
    assetRoutes(http);
    previewRoutes(http, services);
    mcpRoutes(http, services);
    profileRoutes(http, profiles);

    // One RFB server for the TCP port and for noVNC's WebSockets alike.
    const vnc = new VncServer({
      logger: logger.child({ component: 'vnc' }),
      directory: {
        vncSessions: () =>
          registry.list().filter((x) => x.state === 'ready' && x.params.enableVnc).map((x) => ({ password: x.params.vncPassword!, session: x })),
        authFailed: (ip, detail) => audit.append({ type: 'auth_failed', transport: 'vnc', source_ip: ip, actor: 'human', detail }),
      },
    });
    undo.push({ what: 'vnc', run: () => vnc.close() });

    const addr = await http.listen(config.port, config.host);
    // Before any session can start: its browser is barred from this port (README "What a session can see").
    writeChromiumPolicy(config.stateDir, addr.port, config.publicUrl);
    registry.startWarmPool(); // spares read that policy when they start
    const vncPort = config.vncPort ? await vnc.listen(config.vncPort, config.host) : 0;
    const url = `http://${hostForUrl(addr.address)}:${addr.port}`;
    services.mainHost = config.publicUrl?.host ?? new URL(url).host;
    checkpoints.start();
    const daemon = new Daemon(config, url, addr.port, vncPort, db, audit, checkpoints, http, debugPorts, vnc, registry, webhook, pidFile, logger);
    logger.info(`handoff listening on ${url}`, { url, port: addr.port, vnc_port: vncPort || 'off', state_dir: config.stateDir, api_key: config.apiKey ? 'required' : 'off (loopback)' });
    return daemon;
  }

  /** Refuse new work, stop sessions (their sockets close with 4000), stop listening, close the DB. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.logger.info('stopping');
      this.http.refuseNewWork();
      await this.vnc.close();
      await this.registry.close();
      await this.debugPorts.close();
      // After the sessions: their last handoff_completed events get a short grace to go out.
      await this.webhook?.close();
      await this.http.close();
      // One last try for queued rows, so the stop checkpoint covers them; what still cannot
      // be written goes to the log in full (AuditLog.close).
      this.audit.flush();
      this.checkpoints.close();
      this.audit.close();
      this.db.close();
      rmSync(this.pidFile, { force: true });
      this.logger.info('stopped');
    })();
    return this.closing;
  }
}

/**
 * How long one write waits for another process's lock before the row is queued (README
 * "Fault policy"). Writes are synchronous, so this is also how long the daemon can stall.
 */
const DAEMON_BUSY_TIMEOUT_MS = 500;

/** Errors that reached the last-resort handlers (`handoff_uncaught_errors_total`). */
let uncaughtErrors = 0;
export const uncaughtErrorCount = (): number => uncaughtErrors;

/**
 * Last resort for an exception no handler caught, or a rejection nobody awaited: log it with
 * its stack, count it, and keep serving (README "Fault policy"). A bug shows up here; it is
 * not how errors are handled. Installed once, by `handoff serve`.
 */
export function installLastResortHandlers(logger: Logger): void {
  const report = (kind: string) => (e: unknown) => {
    uncaughtErrors++;
    const err = e instanceof Error ? e : new Error(String(e));
    logger.error(`${kind}: ${err.message} (the daemon keeps running; this is a bug, please report it)`, { kind, error: err.message, stack: err.stack });
  };
  // A log reader that went away (EPIPE) is no bug: without these, each log line became an
  // uncaught exception whose report was one more line, a loop that kept SIGTERM from stopping.
  for (const out of [process.stdout, process.stderr]) out.on('error', () => {});
  process.on('uncaughtException', report('uncaught exception'));
  process.on('unhandledRejection', report('unhandled rejection'));
}

/** One daemon per state dir: a second one would reap the first one's browsers. */
function lockStateDir(stateDir: string): string {
  const pidFile = join(stateDir, 'handoff.pid');
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8'));
    if (pid && pid !== process.pid && isAlive(pid)) {
      throw new Error(`another handoff daemon (pid ${pid}) is using ${stateDir}; stop it or pass a different --state-dir`);
    }
  }
  writeFileSync(pidFile, String(process.pid));
  return pidFile;
}

async function browserVersion(binary: string, logger: Logger): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(binary, ['--version'], { timeout: 10_000 });
    const m = /(\d+\.\d+\.\d+\.\d+)/.exec(stdout);
    return `Chrome/${m ? m[1] : 'unknown'}`;
  } catch (e) {
    logger.error(`cannot run ${binary}: install chromium (apt-get install chromium) or pass --chromium`, { error: (e as Error).message });
    return 'Chrome/unknown';
  }
}
