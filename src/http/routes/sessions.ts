import { constants } from 'node:fs';
import { lstat, open, readdir, type FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream';
import { join } from 'node:path';
import { HandoffError } from '../../util/errors.js';
import { int, validSessionId } from '../../sessions/params.js';
import type { Session, SessionInfo } from '../../sessions/session.js';
import { parseHandoffRequest, parseHumanOutcome } from '../../sessions/handoff.js';
import { readJson, sendJson, sendJsonText, type HttpServer, type RequestContext } from '../server.js';
import { sessionById, type Services } from './context.js';
import type { DebugPorts } from '../debug-port.js';

// Chromium writes a download as GUID.crdownload, then GUID until we rename it on completion;
// neither is listed.
const IN_PROGRESS = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(\.crdownload)?$/;

/** API.md 4. */
export function sessionRoutes(http: HttpServer, s: Services, debugPorts: DebugPorts): void {
  const info = (session: Session, ctx: RequestContext): SessionInfo => session.info(hostOnly(ctx.publicHost));

  // The two most polled answers (dashboards, scripts): each session's JSON is reused until it changes.
  http.route('GET', '/sessions', (ctx, res) => {
    const host = hostOnly(ctx.publicHost);
    sendJsonText(res, 200, `{"sessions":[${s.registry.list().map((x) => x.infoJson(host)).join(',')}]}`);
  });

  http.route('GET', '/session/:id', (ctx, res) => {
    const id = validSessionId(ctx.params.id!);
    const session = s.registry.get(id);
    if (session) return sendJsonText(res, 200, session.infoJson(hostOnly(ctx.publicHost)));
    const stopped = s.registry.stoppedInfo(id);
    if (stopped) return sendJson(res, 200, stopped);
    throw new HandoffError('session_not_found', `no session ${id}`);
  });

  http.route('POST', '/session/:id/stop', async (ctx, res) => {
    const session = sessionById(s, ctx.params.id!);
    await session.stop('session stopped');
    sendJson(res, 200, { stopped: true });
  });

  // API.md 3.1 debug_port, for a session created without it: opens (or reports) its own port.
  http.route('POST', '/session/:id/port', async (ctx, res) => {
    const session = sessionById(s, ctx.params.id!, { live: true });
    sendJson(res, 200, { debug_port: await debugPorts.forSession(session) });
  });

  // Long poll: answers as soon as every given condition holds.
  http.route('GET', '/session/:id/wait', async (ctx, res) => {
    const session = sessionById(s, ctx.params.id!);
    const q = ctx.url.searchParams;
    const want = { attachment: q.get('attachment'), state: q.get('state') };
    if (want.attachment && !['none', 'agent', 'human'].includes(want.attachment)) throw new HandoffError('bad_request', 'attachment must be none, agent or human');
    if (want.state && !['starting', 'ready', 'stopped', 'crashed'].includes(want.state)) throw new HandoffError('bad_request', 'state must be starting, ready, stopped or crashed');
    const timeoutMs = int(q, 'timeout_ms', 30_000, 0, 600_000);
    const holds = () => {
      const i = info(session, ctx);
      return (!want.attachment || i.attachment === want.attachment) && (!want.state || i.state === want.state);
    };
    if (!holds()) {
      const met = await new Promise<boolean>((resolve) => {
        const check = () => holds() && finish(true);
        const finish = (v: boolean) => {
          clearTimeout(timer);
          session.off('change', check);
          ctx.req.off('close', gone);
          resolve(v);
          return true;
        };
        const gone = () => finish(false);
        const timer = setTimeout(() => finish(false), timeoutMs);
        session.on('change', check);
        ctx.req.on('close', gone);
      });
      if (!met) {
        if (ctx.req.destroyed) return;
        throw new HandoffError('timeout', `the condition did not hold within ${timeoutMs} ms`);
      }
    }
    sendJson(res, 200, info(session, ctx));
  });


  http.route('GET', '/session/:id/downloads', async (ctx, res) => {
    const session = sessionById(s, ctx.params.id!);
    session.checkNetwork(ctx.sourceIp, 'download');
    sendJson(res, 200, { files: await listDownloads(session.downloadDir) });
  });

  http.route('GET', '/session/:id/downloads/:name', async (ctx, res) => {
    const session = sessionById(s, ctx.params.id!);
    session.checkNetwork(ctx.sourceIp, 'download');
    const name = checkDownloadName(ctx.params.name!);
    await sendFile(res, join(session.downloadDir, name), name);
  });

  http.route('GET', '/session/:id/recording', async (ctx, res) => {
    const session = sessionById(s, ctx.params.id!);
    if (!session.params.debug) throw new HandoffError('not_found', 'this session was not started with debug=true');
    await sendFile(res, session.recordingPath, `${session.id}.mp4`, 'video/mp4');
  });
}

export function hostOnly(publicHost: string): string {
  const m = /^(\[[^\]]+\]|[^:]+)/.exec(publicHost);
  return m ? m[1]! : publicHost;
}

/** A name inside the downloads dir, never a path; partial downloads are not served. */
export function checkDownloadName(name: string): string {
  if (name.includes('/') || name.includes('\\') || name === '.' || name === '..' || name.includes('\0')) {
    throw new HandoffError('bad_request', 'bad file name');
  }
  if (IN_PROGRESS.test(name)) throw new HandoffError('not_found', `no file ${name.slice(0, 200)}`);
  return name;
}

/**
 * The completed downloads. A session's downloads dir is writable from inside its sandbox, so
 * only regular files count: a symlink (to the daemon's keys, say) or a FIFO is not listed.
 */
export async function listDownloads(dir: string): Promise<{ name: string; size: number; completed_at: string }[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const files = [];
  for (const name of names) {
    if (IN_PROGRESS.test(name)) continue;
    const st = await lstat(join(dir, name)).catch(() => null);
    if (st?.isFile()) files.push({ name, size: st.size, completed_at: st.mtime.toISOString() });
  }
  return files.sort((a, b) => a.completed_at.localeCompare(b.completed_at));
}

/**
 * Opens `path` only if it is a regular file and not a symlink (O_NOFOLLOW), and checks what
 * was opened (fstat), so a name swapped between a check and the open serves nothing either.
 * O_NONBLOCK: opening a planted FIFO must not hang.
 */
async function openRegularFile(path: string): Promise<{ file: FileHandle; size: number } | null> {
  const file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => null);
  if (!file) return null;
  const st = await file.stat().catch(() => null);
  if (st?.isFile()) return { file, size: st.size };
  await file.close().catch(() => {});
  return null;
}

export async function sendFile(res: import('node:http').ServerResponse, path: string, name: string, contentType = 'application/octet-stream'): Promise<void> {
  const opened = await openRegularFile(path);
  if (!opened) throw new HandoffError('not_found', `no file ${name.slice(0, 200)}`);
  res.writeHead(200, {
    'content-type': contentType,
    'content-length': opened.size,
    'content-disposition': `attachment; filename*=UTF-8''${encodeURIComponent(name)}`,
  });
  if (opened.size === 0) {
    res.end();
    await opened.file.close().catch(() => {});
    return;
  }
  // Streams from the descriptor we checked, no more than the length announced (a recording
  // may still grow); pipeline closes it however the answer ends.
  pipeline(opened.file.createReadStream({ end: opened.size - 1 }), res, () => {});
}

/** API.md 7, REST side: an agent asks a human for help and waits for the outcome. */
export function handoffRoutes(http: HttpServer, s: Services): void {
  http.route('POST', '/session/:id/handoff', async (ctx, res) => {
    const session = sessionById(s, ctx.params.id!, { live: true });
    const req = parseHandoffRequest(await readJson(ctx), 'rest');
    const link = s.liveLinks.issue(session, ctx.publicHost, 'control', ctx.sourceIp, { singleUse: req.singleUse });
    const h = session.requestHandoff(req, 'rest', { liveUrl: link.url });
    sendJson(res, 200, { handoffId: h.id, liveUrl: link.url, expiresAt: link.expires_at });
  });

  http.route('POST', '/session/:id/handoff/complete', async (ctx, res) => {
    await completeHandoff(sessionById(s, ctx.params.id!), ctx, res, 'rest');
  });

  http.route('DELETE', '/session/:id/handoff', (ctx, res) => {
    const session = sessionById(s, ctx.params.id!);
    if (!session.completeHandoff('cancelled', 'rest')) throw new HandoffError('not_found', 'no handoff is active');
    sendJson(res, 200, { completed: true, outcome: 'cancelled' });
  });
}

/** Done / Can't do it, from REST or the viewer: body `{outcome: "done"|"failed"}` (done when absent). */
export async function completeHandoff(session: Session, ctx: RequestContext, res: import('node:http').ServerResponse, by: string): Promise<void> {
  const outcome = parseHumanOutcome((await readJson(ctx)).outcome);
  if (!session.completeHandoff(outcome, by)) throw new HandoffError('not_found', 'no handoff is active');
  sendJson(res, 200, { completed: true, outcome });
}
